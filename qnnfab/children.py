"""Child processes that end with the process that started them.

A long tool run (Yosys in a Dask worker, Verilator and make) is started with
:func:`run_child`. On Linux the command is started through a small launcher
that asks the kernel for ``SIGKILL`` when its parent dies
(``prctl(PR_SET_PDEATHSIG)``) and then ``exec``s the command, which keeps that
request; so a search or build killed by a signal (a Dask worker terminated with
its cluster, ``qnnfab`` killed with ``SIGKILL``) leaves no Yosys running on (yowasp runs
Yosys inside that one process). Only the direct child is covered: the processes a tool starts
itself (make's compilers, the ``verilator`` script's ``verilator_bin``) may run on to their end.
(The launcher is a process of its own rather than a ``preexec_fn``, which is
unsafe in a process with threads, as the Dask workers and ``report`` are.)
Elsewhere :func:`run_child` is ``subprocess.run``.
"""

import os
import subprocess
import sys

__all__ = ["run_child", "child_argv"]

# argv: parent pid, command...; PR_SET_PDEATHSIG = 1, SIGKILL = 9
# Python ignores SIGPIPE and SIGXFSZ and exec keeps what is ignored: the tool gets the defaults back
_LAUNCHER = ("import ctypes, os, signal, sys\n"
             "for s in (signal.SIGPIPE, signal.SIGXFSZ): signal.signal(s, signal.SIG_DFL)\n"
             "ctypes.CDLL(None, use_errno=True).prctl(1, 9)\n"
             "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"   # the parent died before the request
             "os.execvp(sys.argv[2], sys.argv[2:])\n")


def child_argv(cmd):
    """The argv that runs ``cmd`` (a list) as a child killed when this process dies (on Linux;
    elsewhere ``cmd`` itself), for ``subprocess.Popen``. The launcher ``exec``s the command, so the
    child's pid, exit status and resource usage are the command's."""
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *map(str, cmd)]
    return list(cmd)


def run_child(cmd, **kwargs):
    """``subprocess.run(cmd, **kwargs)``; on Linux the child is killed when this process dies."""
    return subprocess.run(child_argv(cmd), **kwargs)
