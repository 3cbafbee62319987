"""Every config that ``netconfig.load`` accepts builds in hardware.

Random configs (valid and invalid values alike, drawn from ranges wider than
the rules allow) go through ``netconfig.loads``; a config it rejects must be
rejected with a :class:`ConfigError`, and a config it accepts must construct
:class:`Dataflow` and convert to RTLIL without any exception.
"""

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.folding import divisors
from qnnfab.kinds import DataKind

amaranth_rtlil = pytest.importorskip("amaranth.back.rtlil")


def _toml_value(v):
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(e) for e in v) + "]"
    return str(v)


def _table(header, d):
    return "\n".join([header] + [f"{k} = {_toml_value(v)}" for k, v in d.items()])


def _divisors(n):
    return divisors(n) or [1]   # n < 1 only in invalid configs


def _integers(lo, hi):
    return lambda rng: rng.randint(lo, hi)


def _sampled_from(values):
    values = list(values)
    return lambda rng: rng.choice(values)


def _booleans():
    return lambda rng: rng.random() < 0.5


def _just(v):
    return lambda rng: v


def config_text(seed):
    """Config text from a seed: mostly valid values (tracking the shapes), each field
    now and then drawn from a wider range that includes invalid values. (A seeded
    generator spreads the cases more evenly than hypothesis' own draws, which
    favour the first choices.)"""
    rng = random.Random(seed)

    def draw(strategy):
        return strategy(rng)

    def pick(valid, wide):
        return draw(wide if rng.randrange(20) == 0 else valid)

    image = draw(_booleans())
    if image:
        shape = [draw(_integers(1, 6)), draw(_integers(1, 6)), draw(_sampled_from([1, 2, 3, 4]))]
    else:
        shape = [draw(_integers(1, 24))]
    kind = draw(_sampled_from(["bipolar", "uint", "int"]))
    net = {"name": pick(_sampled_from(["net", "n-1", "a_b"]), _sampled_from(["1net", "a b", "../x", ""])),
           "input_shape": shape, "input_kind": kind}
    bits = 1
    if kind != "bipolar" or draw(_integers(0, 7)) == 0:
        bits = net["input_bits"] = pick(_integers(2, 16), _integers(-1, 20))
    net["seed"] = draw(_integers(0, 3))
    layers = []
    cur, cur_kind = list(shape), kind
    n_layers = draw(_integers(1, 3))
    for idx in range(n_layers):
        last = idx == n_layers - 1
        types = ["conv", "conv", "fc", "maxpool"] if len(cur) == 3 else ["fc"]
        t = {"name": pick(_just(f"l{idx}"), _sampled_from(["fc 0", "fc/out", "../../escaped", "l_fifo"])),
             "type": pick(_sampled_from(types), _sampled_from(["fc", "conv", "maxpool"]))}
        if t["type"] == "maxpool" and len(cur) == 3:
            h, w, c = cur
            k = t["kernel"] = pick(_integers(1, max(1, min(h, w, 3))), _integers(-1, 9))
            if draw(_booleans()):
                t["stride"] = pick(_integers(1, 3), _integers(-1, 4))
            t["simd"] = pick(_sampled_from(_divisors(c)), _integers(-1, 9))
            if isinstance(k, int) and 1 <= k <= min(h, w) and t.get("stride", k) >= 1:
                s = t.get("stride", k)
                cur = [(h - k) // s + 1, (w - k) // s + 1, c]
        elif t["type"] != "maxpool":
            out = t["out"] = pick(_integers(1, 8), _integers(-1, 9))
            acts = ["bipolar", "uint1", "uint2", "uint3"] + (["acc"] if last else [])
            t["act"] = pick(_sampled_from(acts), _sampled_from(["acc", "uint17", "relu", "uint0"]))
            t["weight_kind"] = pick(_sampled_from(["bipolar", "ternary", "int"]), _just("float"))
            if t["weight_kind"] == "int" or draw(_integers(0, 11)) == 0:
                t["weight_bits"] = pick(_integers(2, 16), _integers(-1, 20))
            t["pe"] = pick(_sampled_from(_divisors(out) if out >= 1 else [1]), _integers(-1, 9))
            if t["type"] == "conv" and len(cur) == 3:
                h, w, c = cur
                k = t["kernel"] = pick(_integers(1, 3), _integers(-1, 9))
                kk = k if isinstance(k, int) else 1
                pad = t["pad"] = pick(_integers(0, max(0, kk - 1)), _sampled_from([-1, kk, kk + 1]))
                t["stride"] = s = pick(_integers(1, 2), _integers(-1, 3))
                b = min(max(bits, 2), 16)
                hi = DataKind.of(cur_kind, b).stored_range[1]
                t["pad_value"] = pick(_integers(0, max(0, min(hi, 3))), _sampled_from([-1, 2, "zero", 99]))
                t["simd"] = pick(_sampled_from(_divisors(c)), _integers(-1, 9))
                ok = all(isinstance(v, int) for v in (k, pad, s)) and k >= 1 and s >= 1 and pad >= 0
                if ok and h + 2 * pad >= k and w + 2 * pad >= k and isinstance(out, int):
                    cur = [(h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1, out]
            else:
                n = math.prod(cur)
                t["simd"] = pick(_sampled_from(_divisors(cur[-1] if len(cur) == 3 else n)), _integers(-1, 9))
                cur = [out]
            if draw(_integers(0, 3)) == 0:
                t["pipeline"] = pick(_integers(0, 3), _integers(-1, 9))
            cur_kind = "bipolar" if t["act"] == "bipolar" else "uint"
            if t["act"] == "uint3":
                bits = 3
            elif t["act"] in ("uint1", "bipolar"):
                bits = 1
            elif t["act"] == "uint2":
                bits = 2
        if draw(_integers(0, 5)) == 0:
            t["fifo_depth"] = pick(_integers(2, 6), _integers(-1, 1))
        layers.append(t)
    if draw(_integers(0, 15)) == 0:
        net["weights"] = draw(_sampled_from([5, "", "missing.npz"]))
    return "\n\n".join([_table("[network]", net)] + [_table("[[layer]]", t) for t in layers]) + "\n"


def configs():
    return st.integers(0, 2**32 - 1).map(config_text)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_every_config_that_loads_builds_in_hardware(text):
    from qnnfab.rtl.dataflow import Dataflow
    try:
        cfg = netconfig.loads(text, source="random.toml")
    except ConfigError:
        return
    top = Dataflow(cfg)
    amaranth_rtlil.convert(top, name="top")


@pytest.mark.parametrize("field, value", [
    ("out", 1_000_000_000), ("input_shape", [100_000, 100_000, 3]),
])
def test_huge_sizes_are_refused_by_load_before_any_allocation(field, value):
    net = {"name": "big", "input_shape": [64], "input_kind": "bipolar"}
    layer = {"name": "fc0", "type": "fc", "out": 10, "act": "acc"}
    if field == "out":
        layer["out"] = value
    else:
        net["input_shape"] = value
        layer = {"name": "c0", "type": "conv", "out": 4, "kernel": 3}
    text = _table("[network]", net) + "\n\n" + _table("[[layer]]", layer) + "\n"
    with pytest.raises(ConfigError, match="above the limit"):
        netconfig.loads(text)


def test_the_limits_allow_the_shipped_full_size_networks():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "configs"
    for name in ("lfc_w1a1.toml", "cnv_w1a1.toml"):
        cfg = netconfig.load(root / name)
        biggest = max(L.out * math.prod(L.weights.shape[1:]) for L in cfg.layers if L.weights is not None)
        assert biggest <= netconfig.LIMITS["weight_bits_per_layer"], name
        assert int(np.prod(cfg.input_shape)) <= netconfig.LIMITS["map_elements"]
