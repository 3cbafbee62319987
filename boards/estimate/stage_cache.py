"""A stage's Yosys result known without elaborating it: two small caches in front of Yosys'.

Elaborating a stage with Amaranth and writing its Verilog takes longer than
reading its cached Yosys result (a warm measured search spent almost all its
time there). So a measured search keeps, in ``$QNNFAB_CACHE/stages``:

* ``stage-<hash>.json``: a stage's description (:func:`stage_description`: its
  plan stage, its layer's config fields, weights and thresholds, the network's
  fields, and the hash of the sources the Verilog is made by, :func:`source_hash`)
  -> the key of its Verilog (:func:`verilog_key`, the Synthesis pool's key);
* ``verilog-<top>-<key>.json``: that Verilog's :class:`~.yosys.Resources` and the
  Yosys cache entries (``$QNNFAB_CACHE/yosys``) they were read from.

A result is taken from here only while every Yosys entry it names is in the
Yosys cache, so clearing that cache clears this one too. Entries are written
atomically (:func:`qnnfab.cache.atomic_write_text`); a damaged one is a miss.
Any change to the sources changes every description: the stages are then
elaborated again (their Yosys results, keyed by the Verilog, stay valid).
"""

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from qnnfab.cache import atomic_write_text, cache_dir, read_entry

from .yosys import Resources

__all__ = ["source_hash", "stage_description", "verilog_key", "known_verilog", "remember_verilog",
           "known_result", "remember_result"]

#: the folders (below the installed packages) and files whose sources make a stage's Verilog
_SOURCES = (("qnnfab", "*.py"), ("qnnfab.rtl", "**/*.py"), ("qnnfab.golden", "**/*.py"),
            ("qnnfab.sim", "build.py"), ("qnnfab.boards.estimate", "report.py"),
            ("qnnfab.boards.estimate", "yosys.py"))
_FORMAT = "qnnfab-stage-cache-v1"


@functools.cache
def source_hash():
    """SHA-256 (hex) of every source file a stage's Verilog or its counted result depends on
    (the ground modules, ``rtl``, ``golden``, ``sim/build.py``, ``boards/estimate/report.py``,
    and ``boards/estimate/yosys.py``: the Yosys script and the cell counting) and of Amaranth's
    and NumPy's versions."""
    import importlib

    import amaranth

    h = hashlib.sha256(f"{_FORMAT}\0amaranth {amaranth.__version__}\0numpy {np.__version__}\0".encode())
    for package, pattern in _SOURCES:
        folder = Path(importlib.import_module(package).__file__).parent
        for path in sorted(folder.glob(pattern)):
            h.update(f"{path.relative_to(folder).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _config_fields(obj):
    """``[(field, repr)]`` of ``obj``'s config fields (those a TOML file sets)."""
    return [(f.name, repr(getattr(obj, f.name))) for f in dataclasses.fields(obj) if "config" in f.metadata
            and f.name != "layers"]


def _array_hash(a):
    if a is None:
        return "none"
    a = np.ascontiguousarray(np.asarray(a), dtype="<i8")
    return f"{a.shape}:" + hashlib.sha256(a.tobytes()).hexdigest()


def stage_description(plan, stage, timing=True):
    """The hash (hex) of everything stage ``stage``'s synthesis result is made from (a name of
    :func:`~.report.stage_owners`): the plan's stage (kind, name, links, FIFO depth,
    memories, what it reads, a fork's outputs), its layer's config fields, input shape,
    weights and thresholds, the network's config fields and weights mode, whether the
    synthesis runs static timing (``timing``), and :func:`source_hash`; None when a part
    has no stable text (an object printed by its address)."""
    cfg = plan.cfg
    parts = [source_hash(), plan.weights_mode, _config_fields(cfg), stage, bool(timing)]
    if stage == "weight_loader":
        parts += [repr(plan.groups), plan.topology_hash]
    else:
        s = next(s for s in plan.stages if s.name == stage)
        L = s.layer
        parts += [s.kind, repr(s.i), repr(s.o), s.cycles, s.fifo_depth, repr(s.memories), s.where,
                  repr(s.reads), s.fanout, _config_fields(L), repr((L.in_shape, L.in_kind, L.in_bits, L.in_shapes))]
        if s.kind not in ("fifo", "width"):
            parts += [_array_hash(L.weights), _array_hash(L.thresholds)]
    text = repr(parts)
    if " at 0x" in text:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def verilog_key(text, top, timing):
    """The key of synthesizing Verilog ``text`` (module ``top``) with or without timing."""
    return hashlib.sha256(f"{top}\0{timing}\0{text}".encode()).hexdigest()[:24]


def _folder():
    return cache_dir("stages")


def _parse(text, fields):
    entry = json.loads(text)
    if not isinstance(entry, dict) or any(f not in entry for f in fields):
        raise ValueError("not a stage cache entry")
    return entry


def known_verilog(description):
    """``(top, verilog key)`` remembered for a :func:`stage_description`, or None."""
    if description is None:
        return None
    entry = read_entry(_folder() / f"stage-{description}.json", lambda t: _parse(t, ("top", "verilog")))
    return None if entry is None else (entry["top"], entry["verilog"])


def remember_verilog(description, top, key):
    """Remember that the stage described by ``description`` has Verilog ``key`` as module ``top``."""
    if description is not None:
        atomic_write_text(_folder() / f"stage-{description}.json", json.dumps({"top": top, "verilog": key}))


def known_result(top, key):
    """The :class:`Resources` remembered for Verilog ``key`` (module ``top``) while the Yosys
    cache still holds every entry it was read from; else None."""
    entry = read_entry(_folder() / f"verilog-{top}-{key}.json", lambda t: _parse(t, ("resources", "entries")))
    if entry is None:
        return None
    yosys = cache_dir("yosys")
    if not entry["entries"] or not all((yosys / name).is_file() for name in entry["entries"]):
        return None
    return Resources(**entry["resources"])


def remember_result(top, key, res, entries):
    """Remember Verilog ``key``'s result ``res``, read from the Yosys cache entries ``entries`` (names)."""
    if entries:
        atomic_write_text(_folder() / f"verilog-{top}-{key}.json",
                          json.dumps({"resources": res.as_dict(), "entries": sorted(entries)}))
