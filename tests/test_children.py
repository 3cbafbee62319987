"""qnnfab.children.run_child: the command runs as with subprocess.run, and it dies with
the process that started it (a search or build killed by a signal leaves no tool running)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from qnnfab.children import run_child


def test_runs_the_command_with_its_arguments_output_and_exit_code(tmp_path):
    proc = run_child([sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(3)", "a b", "c"],
                     cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout.strip() == "['a b', 'c']"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:     # a zombie is dead, only not yet reaped
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_the_child_is_killed_when_its_parent_is(tmp_path):
    pidfile = tmp_path / "child.pid"
    # the parent: runs a long child through run_child; the child writes its pid and sleeps
    child = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"from qnnfab.children import run_child; import sys; "
                               f"run_child([sys.executable, '-c', {child!r}])"])
    try:
        while not pidfile.exists() or not pidfile.read_text():
            assert parent.poll() is None, "the parent ended before its child started"
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        assert _alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(600):          # the kernel delivers the signal at once; allow a slow machine
            if not _alive(pid):
                break
            time.sleep(0.05)
        assert not _alive(pid), "the child outlived its killed parent"
    finally:
        parent.kill()
        if pidfile.exists() and pidfile.read_text() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
