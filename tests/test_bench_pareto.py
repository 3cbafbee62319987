"""The Pareto front of bench/bench_pareto.py (accuracy up, LUTs down), on hand-made points."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_pareto", ROOT / "bench" / "bench_pareto.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pareto_front_by_hand():
    front = _bench().pareto_front
    # (lut, acc): 1 is beaten by 0 (fewer LUTs, same accuracy); 3 by 2 (same LUTs, lower accuracy);
    # 4 by 2 (more LUTs, lower accuracy); 0, 2 and 5 are the front, sorted by LUTs
    pts = [(100, 0.90), (150, 0.90), (200, 0.95), (200, 0.93), (300, 0.94), (400, 0.97)]
    assert front(pts) == [0, 2, 5]
    assert front([(5, 0.5), (5, 0.5)]) == [0, 1]          # equal points do not beat each other
    assert front([]) == []
