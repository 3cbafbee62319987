"""The mutation list of bench/bench_mutations.py stays usable: every entry's
original line is in its file exactly once, every RTL file has an entry, and
each selection names test files that exist. (The run itself is a bench.)"""

import importlib.util
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_mutations", ROOT / "bench" / "bench_mutations.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BENCH = _bench()


@pytest.mark.parametrize("mutation", BENCH.MUTATIONS, ids=[mu.id for mu in BENCH.MUTATIONS])
def test_original_line_occurs_exactly_once_and_the_mutant_differs(mutation):
    assert BENCH.line_count(mutation) == 1, (
        f"{mutation.id}: its original line is not in {mutation.file} exactly once: "
        "update the entry to the current code")
    assert "\n" not in mutation.mutated and mutation.mutated != mutation.original
    text = (ROOT / mutation.file).read_text()
    assert BENCH.apply(text, mutation).splitlines().count(mutation.mutated) >= 1


def test_every_rtl_file_has_a_mutation():
    covered = {mu.file for mu in BENCH.MUTATIONS}
    missing = [f"rtl/{p.name}" for p in sorted((ROOT / "rtl").glob("*.py"))
               if p.name not in BENCH.NOT_COMPONENTS and f"rtl/{p.name}" not in covered]
    assert not missing, f"no mutation in {missing}: add one to bench/bench_mutations.py"


def test_ids_are_unique_and_selections_name_existing_test_files():
    ids = [mu.id for mu in BENCH.MUTATIONS]
    assert len(ids) == len(set(ids))
    for mu in BENCH.MUTATIONS:
        args = shlex.split(mu.tests)
        paths = [a.split("::")[0] for k, a in enumerate(args)
                 if not a.startswith("-") and (k == 0 or args[k - 1] != "-k")]
        assert paths, f"{mu.id}: no test file in {mu.tests!r}"
        for p in paths:
            assert (ROOT / p).is_file(), f"{mu.id}: no test file {p}"


def test_a_mutation_is_applied_to_its_one_line_only():
    mu = BENCH.Mutation("x", "c", "f.py", "    a = 1", "    a = 2", "bug", "tests/x.py")
    assert BENCH.apply("b = 0\n    a = 1\n    a = 10\n", mu) == "b = 0\n    a = 2\n    a = 10\n"
    with pytest.raises(ValueError):
        BENCH.apply("    a = 1\n    a = 1\n", mu)
    with pytest.raises(ValueError):
        BENCH.apply("    a = 11\n", mu)
