"""Bipolar bit packing and packed XNOR-popcount products.

Convention (the "bipolar" kind of :mod:`qnnfab.kinds`): bit 1 means +1, bit 0 means -1.

Packed layout: a vector of N bits along the last axis is stored as
``ceil(N / 64)`` ``uint64`` words; element ``i`` is bit ``i % 64`` (LSB = 0) of
word ``i // 64``. Bits past N in the last word (padding) are 0 when produced
by :func:`pack_bits`; the popcount functions below never count them, whatever
they hold, because they mask the last word.

For two bipolar vectors of N terms the XNOR popcount is
``P = #{i : w_i == x_i}`` (0 <= P <= N) and the dot product is ``2P - N``.
"""

import numpy as np

from ._util import ConfigError, as_int_array, check_range

__all__ = [
    "bipolar_to_bits", "bits_to_bipolar", "pack_bits", "unpack_bits", "n_words",
    "xnor_popcount", "xnor_popcount_matvec", "xnor_popcount_matmul",
    "popcount_to_dot", "dot_to_popcount", "PairedSgemm",
]

_LE_U64 = np.dtype("<u8")


def n_words(n):
    """Number of 64-bit words that hold ``n`` bits."""
    return (int(n) + 63) // 64


def bipolar_to_bits(x):
    """{-1, +1} values (any shape, integer or float dtype) -> uint8 bits (1 for +1)."""
    a = np.asarray(x)
    if a.size and not np.all((a == 1) | (a == -1)):
        raise ConfigError("bipolar_to_bits", "x", "values must be -1 or +1", "binarize with np.where(x >= 0, 1, -1)")
    return (a > 0).astype(np.uint8)


def bits_to_bipolar(bits):
    """{0, 1} bits (any shape) -> int8 values {-1, +1} (1 -> +1, 0 -> -1)."""
    b = as_int_array(bits, "bits_to_bipolar", "bits")
    check_range(b, 0, 1, "bits_to_bipolar", "bits", "bits")
    return (2 * b.astype(np.int8) - 1).astype(np.int8)


def pack_bits(bits, check=True):
    """Pack bits along the last axis into little-endian uint64 words.

    ``bits``: (..., N) array of 0/1 (bool or integer). Returns (..., ceil(N/64))
    ``uint64``; element i -> bit i % 64 of word i // 64; padding bits are 0.
    N = 0 gives (..., 0). ``check=False`` skips the 0/1 value check (any
    nonzero value then counts as 1).
    """
    b = np.asarray(bits)
    if b.ndim == 0:
        raise ConfigError("pack_bits", "bits", "needs at least one axis (..., N)", "pass a 1-D or larger array")
    if check and b.dtype != np.bool_:
        b = as_int_array(b, "pack_bits", "bits")
        check_range(b, 0, 1, "pack_bits", "bits", "bits")
    n = b.shape[-1]
    nw = n_words(n)
    by = np.packbits(b.astype(bool, copy=False), axis=-1, bitorder="little")
    pad = nw * 8 - by.shape[-1]
    if pad:
        by = np.concatenate([by, np.zeros(by.shape[:-1] + (pad,), np.uint8)], axis=-1)
    by = np.ascontiguousarray(by)
    return by.view(_LE_U64).astype(np.uint64, copy=False).reshape(b.shape[:-1] + (nw,))


def unpack_bits(words, n):
    """Inverse of :func:`pack_bits`: (..., W) uint64 -> (..., n) uint8 bits, n <= 64*W."""
    w = np.asarray(words)
    if w.dtype != np.uint64:
        raise ConfigError("unpack_bits", "words", f"dtype must be uint64, got {w.dtype}", "pack with pack_bits")
    if w.ndim == 0 or not 0 <= n <= 64 * w.shape[-1]:
        raise ConfigError("unpack_bits", "n", f"{n} bits do not fit in words of shape {w.shape}",
                          "pass the N given to pack_bits")
    by = np.ascontiguousarray(w.astype(_LE_U64, copy=False)).view(np.uint8)
    return np.unpackbits(by, axis=-1, count=n, bitorder="little")


def _last_word_mask(n):
    r = n % 64
    return np.uint64((1 << r) - 1) if r else np.uint64(0xFFFFFFFFFFFFFFFF)


def _check_packed(a, n, where, field):
    a = np.asarray(a)
    if a.dtype != np.uint64:
        raise ConfigError(where, field, f"packed words must be uint64, got {a.dtype}",
                          "pack with pack_bits, or pass n=None for unpacked bits")
    if a.ndim == 0 or a.shape[-1] != n_words(n):
        raise ConfigError(where, field, f"last axis must hold ceil({n}/64) = {n_words(n)} words, got shape {a.shape}",
                          "pack N bits with pack_bits(bits) and pass the same n")
    return a


def _prepare(w, x, n, where):
    """Return packed (w, x, n); accepts unpacked bits when n is None."""
    if n is None:
        w = np.asarray(w)
        x = np.asarray(x)
        if w.ndim < 1 or x.ndim < 1 or w.shape[-1] != x.shape[-1]:
            raise ConfigError(where, "x", f"last axes must match: w {w.shape} vs x {x.shape}",
                              "both operands need the same number N of bits on the last axis")
        n = w.shape[-1]
        return pack_bits(w), pack_bits(x), n
    n = int(n)
    if n < 0:
        raise ConfigError(where, "n", f"must be >= 0, got {n}")
    return _check_packed(w, n, where, "w"), _check_packed(x, n, where, "x"), n


def xnor_popcount(a, b, n=None):
    """Elementwise-broadcast XNOR popcount over the last axis.

    ``a``, ``b``: unpacked bits (..., N) when ``n`` is None, else packed uint64
    (..., ceil(n/64)). Leading axes broadcast. Returns int64 (...,) with
    P = number of equal bits among the first n.
    """
    a, b, n = _prepare(a, b, n, "xnor_popcount")
    if n == 0:
        return np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.int64)
    d = a ^ b
    d[..., -1] &= _last_word_mask(n)
    return n - np.bitwise_count(d).sum(axis=-1, dtype=np.int64)


def xnor_popcount_matmul(w, x, n=None, chunk=None):
    """Packed XNOR-popcount matrix product: out[b, m] = P(w[m], x[b]).

    ``w``: (M, N) bits, or (M, ceil(n/64)) uint64 words when ``n`` is given.
    ``x``: (B, N) bits, or (B, ceil(n/64)) uint64 words.
    Returns (B, M) int64 popcounts in [0, N]. Exact for any N: padding bits of
    the last word are masked. Works in batch chunks of ``chunk`` rows (default:
    about 128k outputs per chunk), one 64-bit word column at a time, to stay
    in cache.
    """
    w, x, n = _prepare(w, x, n, "xnor_popcount_matmul")
    if w.ndim != 2 or x.ndim != 2:
        raise ConfigError("xnor_popcount_matmul", "w/x", f"need w (M, words) and x (B, words), got {w.shape} and {x.shape}",
                          "use xnor_popcount_matvec for a single vector")
    return _packed_matmul(w, x, n, chunk)


def _packed_matmul(w, x, n, chunk=None, mask_last=True):
    """Core kernel: w (M, W) uint64, x (B, W) uint64 -> (B, M) int64 matches, n - popcount(w ^ x).

    ``mask_last``: clear bits past n in the last word. With False, the caller
    guarantees that every padding bit is 0 in both operands (e.g. per-pixel
    channel words), so padding never counts as a mismatch.
    """
    M, W = w.shape
    B = x.shape[0]
    out = np.empty((B, M), np.int64)
    if n == 0:
        out[...] = 0
        return out
    if B == 0 or M == 0:
        return out
    wt = np.array(w.T, order="C")  # (W, M), a copy we may mask
    xm = np.ascontiguousarray(x)
    if mask_last and n % 64:
        wt[-1] &= _last_word_mask(n)
        xm = xm.copy()
        xm[:, -1] &= _last_word_mask(n)
    acc_dtype = np.uint16 if n < 65536 else np.uint32 if n < 2**32 else np.uint64
    # the contiguous inner loop should be long: rows of x (transposed form) when M is small
    if M >= 512:
        ch = max(16, 131072 // M) if chunk is None else max(1, int(chunk))
        tmp = np.empty((min(ch, B), M), np.uint64)
        cnt = np.empty((min(ch, B), M), np.uint8)
        acc = np.empty((min(ch, B), M), acc_dtype)
        for s in range(0, B, ch):
            e = min(B, s + ch)
            k = e - s
            a = acc[:k]
            a[...] = 0
            for j in range(W):
                np.bitwise_xor(xm[s:e, j:j + 1], wt[j], out=tmp[:k])
                np.bitwise_count(tmp[:k], out=cnt[:k])
                np.add(a, cnt[:k], out=a)
            np.subtract(n, a, out=out[s:e], dtype=np.int64, casting="unsafe")
    else:
        xt = np.ascontiguousarray(xm.T)  # (W, B)
        wc = np.ascontiguousarray(wt.T)  # (M, W)
        ch = max(1024, 262144 // M) if chunk is None else max(1, int(chunk))
        tmp = np.empty((M, min(ch, B)), np.uint64)
        cnt = np.empty((M, min(ch, B)), np.uint8)
        acc = np.empty((M, min(ch, B)), acc_dtype)
        for s in range(0, B, ch):
            e = min(B, s + ch)
            k = e - s
            a = acc[:, :k]
            a[...] = 0
            for j in range(W):
                np.bitwise_xor(wc[:, j:j + 1], xt[j, s:e], out=tmp[:, :k])
                np.bitwise_count(tmp[:, :k], out=cnt[:, :k])
                np.add(a, cnt[:, :k], out=a)
            np.subtract(n, a.T, out=out[s:e], dtype=np.int64, casting="unsafe")
    return out


def xnor_popcount_matvec(w, x, n=None):
    """XNOR-popcount matrix-vector product (the MVTU accumulator of a binary layer).

    ``w``: (M, N) weight bits (row m = output channel m), or packed
    (M, ceil(n/64)) uint64 when ``n`` is given.
    ``x``: (N,) input bits or (..., N) for a batch (packed: (..., ceil(n/64))).
    Returns int64 (M,) or (..., M): P[m] = #{i : w[m, i] == x[i]}, 0 <= P <= N.
    The bipolar dot product is ``popcount_to_dot(P, N) = 2P - N``.
    """
    w, x, n = _prepare(w, x, n, "xnor_popcount_matvec")
    if w.ndim != 2:
        raise ConfigError("xnor_popcount_matvec", "w", f"must be 2-D (M, N), got shape {w.shape}",
                          "reshape conv weights with conv_weights_to_matrix")
    lead = x.shape[:-1]
    out = _packed_matmul(w, x.reshape(-1, x.shape[-1]), n)
    return out.reshape(lead + (w.shape[0],))


_F32_EXACT = 1 << 24  # float32 holds every integer of magnitude <= 2^24 exactly


class PairedSgemm:
    """Exact XNOR-popcount product through float32 BLAS, two outputs per multiply-add.

    ``wbits``: (M, N) weight bits (1 = +1), N >= 1, M >= 1. Output rows m and
    m + M2 (M2 = ceil(M/2)) share one float32 weight column
    ``wp[:, m] = s(w[m]) + B * s(w[m + M2])`` with s(bit) = 2*bit - 1 (the
    second term is absent for m + M2 >= M) and B the smallest power of two
    > 2N. For input bits x in {0, 1} (float32), ``v = x @ wp`` equals
    ``d_lo + B * d_hi`` with ``d = sum_i x_i s(w_i)``, |d| <= N < B/2. Every
    product and partial sum is an integer of magnitude <= N * (B + 1) < 2^24,
    so float32 arithmetic is exact whatever the BLAS summation order; the
    split ``d_hi = rint(v / B)``, ``d_lo = v - B * d_hi`` is exact too. The
    XNOR popcount is ``P = d + (N - |w|)`` (|w| = number of 1 bits of the
    row): with A_xy = #{i : x_i = x, w_i = y}, d = A_11 - A_10 and
    N - |w| = A_00 + A_10, so P = A_11 + A_00.

    Use :meth:`exact` to check that N fits (N <= 2047).
    """

    def __init__(self, wbits):
        w = np.asarray(wbits)
        if w.ndim != 2 or 0 in w.shape:
            raise ConfigError("PairedSgemm", "wbits", f"must be a non-empty (M, N) bit matrix, got shape {w.shape}")
        self.M, self.N = M, N = w.shape
        self.base = self.slot_base(N)
        if not self.base:
            raise ConfigError("PairedSgemm", "wbits", f"N = {N} terms do not fit two per float32 exactly",
                              "use xnor_popcount_matmul for N > 2047")
        self.M2 = M2 = (M + 1) // 2
        self.Mh = Mh = M - M2
        s = 2 * (w != 0).astype(np.float32) - 1
        wp = s[:M2].copy()
        wp[:Mh] += np.float32(self.base) * s[M2:]
        self.wt = np.ascontiguousarray(wp.T)  # (N, M2)
        self.offset = N - np.count_nonzero(w, axis=1).astype(np.int64)  # N - |w| per row

    @staticmethod
    def slot_base(n):
        """B = smallest power of two > 2n if two n-term dot products fit one float32 exactly, else 0."""
        n = int(n)
        b = 1 << (2 * n).bit_length()
        return b if n >= 1 and n * (b + 1) < _F32_EXACT else 0

    @classmethod
    def exact(cls, n):
        """True when products of length ``n`` can use this class."""
        return cls.slot_base(n) != 0

    def _gemm(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.N:
            raise ConfigError("PairedSgemm", "x", f"must be (B, {self.N}) bits, got shape {x.shape}")
        return x.astype(np.float32, copy=False) @ self.wt

    def _split(self, v):
        hi = np.multiply(v[:, :self.Mh], np.float32(1.0 / self.base))
        np.rint(hi, out=hi)
        lo = v.copy()
        lo[:, :self.Mh] -= hi * np.float32(self.base)
        return lo, hi

    def popcount(self, x):
        """x (B, N) 0/1 bits (any numeric dtype) -> (B, M) int64 XNOR popcounts P in [0, N]."""
        lo, hi = self._split(self._gemm(x))
        out = np.empty((lo.shape[0], self.M), np.int64)
        out[:, :self.M2] = lo
        out[:, self.M2:] = hi
        out += self.offset
        return out

    def threshold_bits(self, x, t):
        """x (B, N) 0/1 bits -> (B, M) float32 0/1: 1 where P[b, m] >= t[m] (t: (M,) or (1,) integers)."""
        t = np.broadcast_to(np.asarray(t, np.int64), (self.M,))
        # compare d >= t - offset; P is in [0, N], so clipping t to [-1, N + 1] keeps every decision
        td = (np.clip(t, -1, self.N + 1) - self.offset).astype(np.float32)
        v = self._gemm(x)
        B, M2, Mh, base = v.shape[0], self.M2, self.Mh, np.float32(self.base)
        out = np.empty((B, self.M), np.float32)
        # d_hi >= T  <=>  v >= B*T - B/2, since |d_lo| < B/2
        np.greater_equal(v[:, :Mh], base * td[M2:] - base / 2, out=out[:, M2:])
        hi = np.multiply(v, np.float32(1.0 / self.base))
        np.rint(hi, out=hi)
        hi *= -base
        hi += v  # d_lo in every column (d_hi = 0 where there is no second row)
        np.greater_equal(hi, td[:M2], out=out[:, :M2])
        return out


def popcount_to_dot(p, n):
    """Bipolar dot product from an XNOR popcount: 2P - N (int64)."""
    return 2 * np.asarray(p, np.int64) - int(n)


def dot_to_popcount(d, n):
    """Inverse of :func:`popcount_to_dot`: (d + N) / 2; d must have the parity of N."""
    d = np.asarray(d, np.int64)
    if d.size and np.any((d + int(n)) % 2):
        raise ConfigError("dot_to_popcount", "d", "dot products of N bipolar terms have the parity of N",
                          "check that n is the vector length")
    return (d + int(n)) // 2
