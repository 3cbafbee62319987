"""Per-PE memory layouts of folded weights and thresholds (shared by the RTL and the generator).

Folding (:mod:`qnnfab.folding`): a layer with an (MH, MW) weight matrix runs on PE
processing elements, each consuming SIMD columns per cycle. NF = MH / PE neuron
folds, SF = MW / SIMD synapse folds; row ``r`` is computed by PE ``r % PE`` in
fold ``r // PE``; the loop order is nf outer, sf inner.

Weight memory of PE ``p`` (depth NF * SF, width SIMD * bits)::

    word  nf * SF + sf,  bits [s * bits, (s + 1) * bits)  =  W[nf * PE + p, sf * SIMD + s]

for s in 0 .. SIMD-1 (element 0 at the LSBs, :mod:`qnnfab.packing`), each element the *stored*
integer of its kind in ``bits``-bit two's complement ("bipolar": the bit,
1 = +1; "ternary": -1 -> 0b11, 0 -> 0b00, +1 -> 0b01; "int"/"uint": itself).

Thresholds of PE ``p`` for fold ``nf``: row ``nf * PE + p`` of the (MH, N)
threshold matrix. The binary-search threshold pipeline (see threshold.py) keeps
one memory per output bit (stage) ``s`` = 0 .. n-1 (n = bit_length(N)); after
padding each sorted row to 2^n - 1 entries with ``pad`` (a value no
accumulator reaches), stage ``s`` of PE ``p`` holds at address
``fold * 2^s + q`` (q = the s bits of the count already decided, MSB first)::

    T_padded[fold * PE + p, (q << (n - s)) + 2^(n - s - 1) - 1]

All functions here are NumPy-only and validate nothing beyond shapes: the
components validate their parameters before calling them.
"""

import numpy as np

from qnnfab.packing import pack_words

__all__ = ["fold_rows", "weight_words", "threshold_stage_tables"]


def fold_rows(a, pe):
    """(MH, ...) -> (PE, NF, ...): ``out[p, nf] = a[nf * PE + p]``."""
    a = np.asarray(a)
    mh = a.shape[0]
    nf = mh // pe
    return a.reshape((nf, pe) + a.shape[1:]).swapaxes(0, 1)


def weight_words(weights, pe, simd, bits):
    """Per-PE weight memory contents: list of PE lists of NF * SF ints (layout above)."""
    w = np.asarray(weights, dtype=np.int64)
    mh, mw = w.shape
    sf = mw // simd
    folded = fold_rows(w, pe)                      # (PE, NF, MW)
    words = folded.reshape(pe, (mh // pe) * sf, simd)  # word nf*SF + sf, element s
    return [pack_words(words[p], bits) for p in range(pe)]


def threshold_stage_tables(thresholds, pe, n, pad):
    """Binary-search stage memories: tables[p][s] = list of NF * 2^s integers (layout above).

    ``thresholds``: (C, N) sorted integers with N <= 2^n - 1; rows are padded
    with ``pad`` (>= every reachable accumulator + 1) up to 2^n - 1 entries.
    """
    t = np.asarray(thresholds, dtype=np.int64)
    c, cnt = t.shape
    full = (1 << n) - 1
    padded = np.full((c, full), int(pad), dtype=np.int64)
    padded[:, :cnt] = t
    folded = fold_rows(padded, pe)                 # (PE, F, 2^n - 1)
    tables = []
    for p in range(pe):
        stages = []
        for s in range(n):
            q = np.arange(1 << s)
            idx = (q << (n - s)) + (1 << (n - s - 1)) - 1   # (2^s,)
            stages.append(folded[p][:, idx].reshape(-1).tolist())  # address fold * 2^s + q
        tables.append(stages)
    return tables
