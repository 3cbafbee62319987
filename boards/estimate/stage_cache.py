"""A stage's Yosys result known without elaborating it: two small caches in front of Yosys'.

Elaborating a stage with Amaranth and writing its Verilog takes longer than
reading its cached Yosys result (a warm measured search spent almost all its
time there). So a measured search keeps, in ``$QNNFAB_CACHE/stages``:

* ``stage-<hash>.json``: a stage's description (:func:`stage_description`: its
  plan stage, its layer's config fields, weights and thresholds, the network's
  fields, and the hash of the sources the Verilog is made by, :func:`source_hash`;
  the parts shared with the simulation's cache, :mod:`qnnfab.sim.stage_identity`)
  -> the key of its Verilog (:func:`verilog_key`, the Synthesis pool's key);
* ``verilog-<top>-<key>.json``: that Verilog's :class:`~.yosys.Resources` and the
  Yosys cache entries (``$QNNFAB_CACHE/yosys``) they were read from.

A result is taken from here only while every Yosys entry it names is in the
Yosys cache, so clearing that cache clears this one too. Entries are written
atomically (:func:`qnnfab.cache.atomic_write_text`); a damaged one is a miss.
Any change to the sources changes every description: the stages are then
elaborated again (their Yosys results, keyed by the Verilog, stay valid).
"""

import functools
import hashlib
import json

from qnnfab.cache import atomic_write_text, cache_dir, read_entry
from qnnfab.sim.stage_identity import description_of, hash_sources, network_parts, plan_stage_parts, verilog_source_hash

from .yosys import Resources

__all__ = ["source_hash", "stage_description", "verilog_key", "known_verilog", "remember_verilog",
           "known_result", "remember_result"]

#: what a stage's counted Yosys result depends on beyond its Verilog's sources: the Yosys script
#: and the cell counting
_RESULT_SOURCES = (("qnnfab.boards.estimate", "report.py"), ("qnnfab.boards.estimate", "yosys.py"))
_FORMAT = "qnnfab-stage-cache-v2"


@functools.cache
def source_hash():
    """SHA-256 (hex) of every source file a stage's Verilog or its counted result depends on:
    :func:`~qnnfab.sim.stage_identity.verilog_source_hash` and ``boards/estimate/report.py``
    and ``yosys.py``."""
    h = hashlib.sha256(f"{_FORMAT}\0{verilog_source_hash()}\0".encode())
    hash_sources(h, _RESULT_SOURCES)
    return h.hexdigest()


def stage_description(plan, stage, timing=True):
    """The hash (hex) of everything stage ``stage``'s synthesis result is made from (a name of
    :func:`~.report.stage_owners`): the network's and the plan stage's parts
    (:func:`~qnnfab.sim.stage_identity.network_parts`, :func:`~qnnfab.sim.stage_identity.plan_stage_parts`),
    whether the synthesis runs static timing (``timing``), and :func:`source_hash`; None when a part
    has no stable text (an object printed by its address)."""
    parts = [source_hash(), *network_parts(plan), stage, bool(timing)]
    if stage == "weight_loader":
        parts += [repr(plan.groups), plan.topology_hash]
    else:
        parts += plan_stage_parts(next(s for s in plan.stages if s.name == stage))
    return description_of(parts)


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
