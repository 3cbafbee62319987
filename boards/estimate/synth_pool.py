"""Yosys runs of dataflow stages as Dask tasks, with the content-addressed cache in front.

:class:`SynthesisPool` takes a stage's Verilog (the text ``qnnfab report``
synthesizes for it, so the cache entries are shared with ``report``) and
gives its :class:`~qnnfab.boards.estimate.yosys.Resources`:

* a result the cache (``$QNNFAB_CACHE/yosys``) holds is read at once, no
  Dask involved (a warm search starts no cluster at all);
* a miss becomes a task ``synthesize_stage(text, top)`` on a
  ``dask.distributed`` cluster: a :class:`distributed.LocalCluster` with one
  single-threaded worker process per core (default), or the scheduler at
  ``scheduler`` (``tcp://HOST:PORT``), whose workers need qnnfab installed.
  The task returns the result and the cache entries it consists of, which
  are written into this machine's cache (:func:`~qnnfab.boards.estimate.yosys.store_entries`):
  the result lands in the same cache whichever worker made it, and a search
  started again after an interruption finds it there.

Each result is also remembered by its Verilog's key
(:func:`~qnnfab.boards.estimate.stage_cache.remember_result`): :meth:`SynthesisPool.request_known`
gives it from that key alone, for a stage whose Verilog is known without elaborating it.

Dask does the scheduling: a worker lost during a synthesis makes the scheduler
run the task again on another worker (a worker's half-written cache entry
never exists: entries are renamed into place whole, and its entry lock dies
with it).
"""

import logging
import os
import time
from dataclasses import dataclass

from qnnfab.errors import ConfigError
from qnnfab.sim.build import to_verilog

from .stage_cache import known_result, remember_result, verilog_key
from .yosys import SYNTHESIZED, Resources, SynthesisFailed, store_entries, synth_xc7_cached, synth_xc7_entries

__all__ = ["SynthesisPool", "synthesize_stage", "stage_verilog"]

#: how long a ``scheduler`` may take to answer before it counts as unreachable
CONNECT_TIMEOUT = "30s"


def stage_verilog(comp, top):
    """The Verilog text of stage component ``comp`` under module name ``top``, written by
    :func:`qnnfab.sim.build.to_verilog` as :func:`~qnnfab.boards.estimate.yosys.synth_xc7`
    and ``qnnfab report`` write it (same cache key)."""
    return to_verilog(comp, top)


def synthesize_stage(text, top, timing=True):
    """The Dask task: synthesize Verilog ``text`` on this worker (through its cache);
    ``(Resources as a dict, how it was had, {cache file: JSON text})``. The result is
    remembered by its Verilog's key in the worker's cache too (a task whose result is
    never collected, cancelled after it ran, is known there by its key)."""
    res, how, entries = synth_xc7_entries(text, top, timing=timing)
    if all(t is not None for t in entries.values()):
        remember_result(top, verilog_key(text, top, timing), res, list(entries))
    return res.as_dict(), how, entries


@dataclass
class _Request:
    top: str
    key: str
    result: Resources = None
    future: object = None
    cached: bool = False


class SynthesisPool:
    """Stage syntheses, each once: from the cache or as Dask tasks (see the module doc).

    ``request(text, top, priority)`` returns a handle at once; ``result(handle)`` waits
    for it. ``workers`` (default: this machine's cores) sizes the local cluster;
    ``scheduler`` (``tcp://HOST:PORT``) uses a running one instead. The cluster starts
    at the first cache miss. ``progress`` gets one line per result."""

    def __init__(self, *, scheduler=None, workers=None, timing=True, progress=print):
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.timing = timing
        self.progress = progress
        self._client = None
        self._cluster = None
        self._requests = {}
        self._t0 = time.monotonic()
        self._durations = []
        self.synthesized = 0   # results made by a Yosys run of this search
        self.cached = 0        # results the cache held
        self.submitted = 0     # tasks submitted (results the cache lacked)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Cancel what is still queued and stop the local cluster (a remote one keeps running)."""
        try:
            if self._client is not None:
                try:
                    self.cancel_pending()
                finally:
                    client, self._client = self._client, None
                    client.close()
        finally:
            if self._cluster is not None:
                cluster, self._cluster = self._cluster, None
                cluster.close()

    def dask_client(self):
        """The ``distributed.Client`` (the local cluster is started on the first call)."""
        if self._client is None:
            from dask.distributed import Client, LocalCluster   # here: heavy, and a warm search needs none
            if self.scheduler:
                try:
                    self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as e:
                    raise ConfigError("synthesis", "--scheduler", f"no Dask scheduler answers at "
                                      f"{self.scheduler!r} ({type(e).__name__})",
                                      "start one there (dask scheduler) or leave --scheduler out") from e
            else:
                # any free port for the dashboard: no clash; a failed task is reported by the search in one
                # line, not also by the worker's log (an error with its traceback)
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=":0", silence_logs=logging.CRITICAL)
                self._client = Client(self._cluster)
        return self._client

    def request(self, text, top, priority=0):
        """A handle on the synthesis of Verilog ``text`` (module ``top``); submitted unless cached
        or already requested. Higher ``priority`` runs first."""
        key = verilog_key(text, top, self.timing)
        req = self._requests.get(key)
        if req is not None:
            return req
        req = self._requests[key] = _Request(top, key)
        files = []
        hit = synth_xc7_cached(text, top, timing=self.timing, files=files)
        if hit is not None:
            req.result, req.cached = hit, True
            self.cached += 1
            remember_result(top, key, hit, [f.name for f in files])
            return req
        req.future = self.dask_client().submit(synthesize_stage, text, top, self.timing, key=f"yosys-{top}-{key}",
                                         priority=priority, pure=False)
        self.submitted += 1
        return req

    def request_known(self, top, key):
        """A handle on the result of the Verilog whose :meth:`request` key is ``key`` (module
        ``top``) when it is known without its text (remembered, and still in the Yosys cache);
        else None."""
        req = self._requests.get(key)
        if req is not None:
            return req
        hit = known_result(top, key)
        if hit is None:
            return None
        req = self._requests[key] = _Request(top, key, hit, cached=True)
        self.cached += 1
        return req

    def result(self, req):
        """The :class:`Resources` of a :meth:`request` (waits for its task); a failed synthesis
        raises :class:`~qnnfab.boards.estimate.yosys.SynthesisFailed` naming the stage."""
        if req.result is None:
            try:
                res, how, entries = req.future.result()
            except SynthesisFailed as e:
                req.future = None
                self._requests.pop(req.key, None)      # asked again, it is submitted again
                if e.top == req.top:
                    raise
                raise SynthesisFailed(req.top, f"{e.reason} (in its part {e.top})", e.log) from None
            store_entries(entries)
            req.result = Resources(**res)
            if all(t is not None for t in entries.values()):   # else a part of it is not cached
                remember_result(req.top, req.key, req.result, list(entries))
            req.future = None
            if how == SYNTHESIZED:
                self.synthesized += 1
            self._durations.append(time.monotonic() - self._t0)
            if self.progress:
                r = req.result
                self.progress(f"  synthesized {req.top}: {r.lut + r.lutram:,} LUT, {r.bram36:g} BRAM36 "
                              f"({self.status()})")
        return req.result

    def running(self):
        return sum(1 for r in self._requests.values() if r.future is not None)

    def status(self):
        """``done/running/cached`` counts and the time left at the present rate."""
        done = len(self._durations)
        left = self.running()
        eta = ""
        if done and left:
            elapsed = time.monotonic() - self._t0
            eta = f", about {elapsed / done * left:,.0f} s left"
        return f"{done} done, {left} queued or running, {self.cached} cached{eta}"

    def cancel_pending(self):
        """Cancel every task not collected yet (a search that stopped needs none of them)."""
        futures = [r.future for r in self._requests.values() if r.future is not None]
        for r in self._requests.values():
            if r.future is not None:
                r.future = None
        if futures and self._client is not None:
            self._client.cancel(futures)
        for key in [k for k, r in self._requests.items() if r.result is None]:
            del self._requests[key]
