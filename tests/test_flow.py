"""The flow's runner and its atomically written output folders (qnnfab.flow)."""

import pytest

from qnnfab.errors import ConfigError, QnnfabError
from qnnfab.flow import MANIFEST, OutputFolder, Run, Step, run


def _write(name):
    def action(r):
        (r.stage / name).write_text(name)
    return Step(f"write {name}", action, writes=True)


def _fail(r):
    raise QnnfabError("step failed")


def test_a_run_renames_its_folder_into_place_with_every_file(tmp_path):
    out = OutputFolder("test", "--out", tmp_path / "new" / "out", staged=True)
    run([_write("a"), _write("b")], Run(), out)
    assert sorted(p.name for p in (tmp_path / "new" / "out").iterdir()) == sorted(["a", "b", MANIFEST])
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["out"]     # no staging folder left


def test_a_failed_run_leaves_nothing_half_written(tmp_path):
    out = OutputFolder("test", "--out", tmp_path / "new" / "out", staged=True)
    with pytest.raises(QnnfabError):
        run([_write("a"), Step("fail", _fail), _write("b")], Run(), out)
    assert list(tmp_path.iterdir()) == []       # neither the folder, its staging sibling nor the parent


def test_two_runs_into_one_new_folder_do_not_mix(tmp_path):
    first = OutputFolder("test", "--out", tmp_path / "out", staged=True)
    second = OutputFolder("test", "--out", tmp_path / "out", staged=True)   # checked while it was still new
    run([_write("a")], Run(), first)
    with pytest.raises(ConfigError, match="written by another run meanwhile"):
        run([_write("b")], Run(), second)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["a", MANIFEST])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_replace_swaps_the_whole_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale").write_text("x")
    run([_write("a")], Run(), OutputFolder("test", "--out", tmp_path / "out", staged=True, replace=True))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["a", MANIFEST])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
