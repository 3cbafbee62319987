"""What a stage's Verilog is made from, as a hash: the key under which its Verilog is known
without elaborating it.

Elaborating a stage with Amaranth and writing its Verilog takes longer than
anything else a rebuild does when the stage did not change (cnv_w1a1_fast:
minutes for its largest layers). So the caches that need a stage's Verilog
(the per-stage compiled engine, :func:`qnnfab.sim.build.known_stage_verilog`;
the measured folding search, :mod:`qnnfab.boards.estimate.stage_cache`) first
look it up by a description of everything it is made from:

* :func:`verilog_source_hash`: the source files that write Verilog (the ground
  modules, ``rtl``, ``golden``, ``sim/build.py``: :func:`qnnfab.sim.build.to_verilog`,
  and this file: :func:`chain_verilog`, the recipe of a stage's Verilog), the versions
  of Amaranth and NumPy, and the name and version of the Yosys Amaranth writes Verilog
  with (:func:`amaranth_yosys`: its built-in one or a system ``yosys``);
* :func:`plan_stage_parts`: a plan stage's facts (kind, name, links, cycles, FIFO
  depth and least depth, memories, what it reads, a fork's outputs, a concat's
  inputs), its layer's config fields and input shape, weights and thresholds;
* the network's config fields and weights mode (:func:`network_parts`).

A description is None when a part has no stable text (an object printed by its address).
"""

import dataclasses
import functools
import hashlib
import importlib
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from amaranth._toolchain.yosys import YosysError, find_yosys

__all__ = ["verilog_source_hash", "hash_sources", "config_fields", "array_hash", "plan_stage_parts", "network_parts",
           "description_of", "chain_description", "chain_verilog", "chain_toplevel",
           "amaranth_yosys"]

#: the folders (below the installed packages) and files whose sources make a stage's Verilog
VERILOG_SOURCES = (("qnnfab", "*.py"), ("qnnfab.rtl", "**/*.py"), ("qnnfab.golden", "**/*.py"),
                   ("qnnfab.sim", "build.py"), ("qnnfab.sim", "stage_identity.py"))
#: the distributions whose versions change the Verilog: Amaranth and its built-in Yosys (the Yosys
#: it uses is hashed too: :func:`amaranth_yosys`), NumPy
VERILOG_PACKAGES = ("amaranth", "amaranth-yosys", "numpy")
#: the least Yosys version Amaranth's Verilog back end accepts (``amaranth.back.verilog``)
AMARANTH_YOSYS_VERSION = (0, 40)


def _installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def hash_sources(h, sources):
    """Feed ``h`` (a hashlib object) every file of ``sources`` (``(package, glob pattern)`` pairs,
    the pattern below the package's folder), path and content, in a stable order."""
    for package, pattern in sources:
        folder = Path(importlib.import_module(package).__file__).parent
        for path in sorted(folder.glob(pattern)):
            h.update(f"{path.relative_to(folder).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")


def amaranth_yosys():
    """``"<name> <version>"`` of the Yosys Amaranth writes Verilog with (found as its Verilog
    back end finds it: ``AMARANTH_USE_YOSYS``, a system ``yosys`` first by default), or
    ``"none"`` when there is none (no Verilog can be written then)."""
    try:
        yosys = find_yosys(lambda v: v >= AMARANTH_YOSYS_VERSION)
    except YosysError:
        return "none"
    return f"{yosys.__name__} {yosys.version()}"


@functools.cache
def verilog_source_hash():
    """SHA-256 (hex) of every source file a stage's Verilog depends on (:data:`VERILOG_SOURCES`),
    of the versions of :data:`VERILOG_PACKAGES` and of :func:`amaranth_yosys`."""
    h = hashlib.sha256("".join(f"{p} {_installed(p)}\0" for p in VERILOG_PACKAGES).encode())
    h.update(f"yosys {amaranth_yosys()}\0".encode())
    hash_sources(h, VERILOG_SOURCES)
    return h.hexdigest()


def config_fields(obj):
    """``[(field, repr)]`` of ``obj``'s config fields (those a TOML file sets), but its layers."""
    return [(f.name, repr(getattr(obj, f.name))) for f in dataclasses.fields(obj) if "config" in f.metadata
            and f.name != "layers"]


def array_hash(a):
    """A stable text of array ``a`` (shape and the SHA-256 of its values as int64), or ``"none"``."""
    if a is None:
        return "none"
    a = np.ascontiguousarray(np.asarray(a), dtype="<i8")
    return f"{a.shape}:" + hashlib.sha256(a.tobytes()).hexdigest()


def network_parts(plan):
    """What every stage's Verilog may read of the network: its weights mode and config fields."""
    return [plan.weights_mode, config_fields(plan.cfg)]


def plan_stage_parts(s):
    """What plan stage ``s``'s Verilog is made from: its plan facts and its layer's config fields,
    input shape, weights and thresholds."""
    L = s.layer
    parts = [s.kind, s.name, repr(s.i), repr(s.o), s.cycles, s.fifo_depth, s.min_depth, repr(s.memories), s.where,
             repr(s.reads), s.fanout, repr(s.ins), config_fields(L),
             repr((L.in_shape, L.in_kind, L.in_bits, L.in_shapes))]
    if s.kind not in ("fifo", "width"):
        parts += [array_hash(L.weights), array_hash(L.thresholds)]
    return parts


def description_of(parts):
    """The hash (hex, 32 digits) of ``parts``, or None when their text is not stable."""
    text = repr(parts)
    if " at 0x" in text:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def chain_description(plan, layer, toplevel, pipeline=None):
    """The description of the Verilog module ``toplevel`` of layer ``layer``'s stages (the layer with
    the width converter and FIFO in front of it: every plan stage of that layer, as
    :func:`qnnfab.rtl.dataflow.layer_chain` makes them), its fc/conv layers' ``pipeline``
    overridden by ``pipeline`` unless None."""
    parts = [verilog_source_hash(), "layer chain", toplevel, repr(pipeline), *network_parts(plan)]
    parts += [plan_stage_parts(s) for s in plan.stages if s.layer.name == layer]
    return description_of(parts)


def chain_toplevel(layer):
    """The Verilog module name of layer ``layer``'s stages: ``stage_`` and the name, every
    character but letters, digits and ``_`` replaced by ``_``."""
    return "stage_" + re.sub(r"\W", "_", layer)


def chain_verilog(plan, layer, toplevel, pipeline=None):
    """The Verilog (:func:`qnnfab.sim.build.to_verilog`, module ``toplevel``) of layer ``layer``'s
    stages, :func:`qnnfab.rtl.dataflow.layer_chain` of ``plan``, its fc/conv layers' ``pipeline``
    overridden by ``pipeline`` unless None: the text :func:`chain_description` describes (this
    file is one of :data:`VERILOG_SOURCES`: a change of this recipe changes every description)."""
    from qnnfab.rtl.dataflow import layer_chain

    from .build import to_verilog
    return to_verilog(layer_chain(plan, layer, pipeline), toplevel)
