"""QONNX models into qnnfab configs: Brevitas-style and streamlined graphs.

:func:`import_qonnx` walks the graph's data path from its input and turns it
into qnnfab layers, folding every scale, bias, batch norm and activation
quantizer into integer weights and integer thresholds, the way FINN's
streamlining does, but exactly (with rational arithmetic):

* a linear layer (``MatMul``, ``Gemm``, ``Conv``) takes integer weight codes:
  from a ``BipolarQuant``/``Quant`` node on its weights (codes and a scale,
  scalar or per output channel) or from integer-valued initializers (a
  streamlined graph). Its input codes come from the previous activation (or
  the input quantizer) with their scale;
* between a layer and its activation, ``Add``/``Sub``/``Mul``/``Div`` by
  constants, biases and ``BatchNormalization`` compose into one affine map per
  output channel: pre-activation ``z = A * acc + B`` of the integer accumulator;
* the activation (``BipolarQuant``, an unsigned k-bit ``Quant``, a
  ``MultiThreshold``, optionally after a ``Relu``) becomes the count of
  integer thresholds reached, with the graph's own tie rules (``>=`` for
  MultiThreshold and sign, half-to-even for ``Quant``'s ROUND). Rows with
  ``A < 0`` are flipped by negating their weights, rows with ``A = 0`` are
  constant;
* ``MaxPool`` (after an activation), ``Pad`` (constant), ``Transpose``,
  ``Flatten``/``Reshape``, ``Identity``/``Dropout`` shape the data path; an
  FC after a flatten of NCHW data gets its weight columns permuted to the
  hardware's NHWC order;
* residual graphs (a graph config, :mod:`qnnfab.netconfig`): the nodes are
  walked in the graph's order, each data tensor carrying its own state
  (:class:`_Path`), so a layer's codes may feed several nodes (a fork; in the
  middle of a layer it is refused). An ``Add`` of two branches' codes (same
  kind and scale) is an "add" layer, a ``GlobalAveragePool`` a
  "global_avgpool" layer: the scale, biases and batch norm after them and
  their activation fold into thresholds on the integer sum (a global pool's
  mean is its sum / (H W), exactly); a ``Concat`` of two branches' channels
  is a "concat" layer. A layer reading other than the layer above it names
  its inputs (``input``).

Anything else (an op, a padding mode, a join of differently quantized branches, a signed activation
quantizer, scales that make a row's thresholds depend on the input) is
refused with a :class:`~qnnfab.errors.ConfigError` naming the node, its op
type and why. A last layer without activation outputs its accumulators; a
positive affine map after it (one scale and bias for all outputs) keeps the
arg-max and is reported in :attr:`Imported.notes`.

The graph input is either quantized by the model (a ``Quant`` or
``BipolarQuant`` on it: :class:`InputCodes` turns float inputs into the codes
the hardware reads, exactly as that node does) or annotated with an integer
QONNX datatype (BIPOLAR, UINTk, INTk) whose values the hardware reads.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from qnnfab.cache import atomic_paths
from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind
from qnnfab.netconfig import NETWORK_INPUT

__all__ = ["InputCodes", "Imported", "import_qonnx", "imported_files", "write_imported"]

_SKIP = {"Identity", "Dropout"}
_ARITH = {"Add", "Sub", "Mul", "Div"}
SUMS = ("add", "global_avgpool")   # layers thresholding an integer sum (no weights)


@dataclass
class InputCodes:
    """How the model turns its float input into the codes the hardware reads.

    ``kind`` is a :class:`DataKind` name ("bipolar", "uint8", "int4", ...).
    ``scale``/``zero_point``/``rounding`` describe the input quantizer (None
    for a graph whose input already holds codes). ``layout`` is the graph
    input's layout ("NCHW", "NHWC" or "NC"); :meth:`to_codes` returns NHWC frames.
    ``raw_scale``/``raw_offset`` map the data's raw values (8-bit pixels) to
    the model's float input, ``x = raw * raw_scale + raw_offset`` (1 and 0:
    the model reads the raw values; BNN-PYNQ's CNV: 2/255 and -1).
    """
    kind: str
    bits: int | None
    scale: float | None = None
    zero_point: float = 0.0
    rounding: str = "ROUND"
    narrow: bool = False
    layout: str = "NC"
    raw_scale: float = 1.0
    raw_offset: float = 0.0

    def __post_init__(self):
        """Refuses (ValueError) a field of the wrong type or value, e.g. from a hand-edited JSON file."""
        kind = self.data_kind
        if self.bits is not None and (type(self.bits) is not int or self.bits != kind.bits):
            raise ValueError(f"bits {self.bits!r} does not match kind {self.kind!r}")
        for name in ("scale", "zero_point", "raw_scale", "raw_offset"):
            v = getattr(self, name)
            if not (v is None and name == "scale") and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.rounding not in _ROUNDING:
            raise ValueError(f"rounding {self.rounding!r} is none of {', '.join(_ROUNDING)}")
        if not isinstance(self.narrow, bool):
            raise ValueError(f"narrow must be true or false, got {self.narrow!r}")
        if self.layout not in ("NCHW", "NHWC", "NC"):
            raise ValueError(f"layout {self.layout!r} is none of NCHW, NHWC, NC")

    @property
    def data_kind(self):
        """The :class:`DataKind` of the codes (ValueError for a name that is none)."""
        m = isinstance(self.kind, str) and re.fullmatch(r"(bipolar|ternary|uint|int)(\d*)", self.kind)
        if not m:
            raise ValueError(f"kind {self.kind!r} is no input kind (bipolar, ternary, uint<bits>, int<bits>)")
        kind = DataKind.of(*_kind_bits(self.kind), where="input codes")
        if kind.name != self.kind:
            raise ValueError(f"kind {self.kind!r} is no input kind (bipolar, ternary, uint<bits>, int<bits>)")
        return kind

    def to_codes(self, x):
        """Float model inputs (the graph's input layout, batch first; raw values when ``raw_scale`` and
        ``raw_offset`` say how to map them) -> stored hardware frames (NHWC)."""
        x = np.asarray(x, dtype=np.float64) * self.raw_scale + self.raw_offset
        x = x.astype(np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 2, 3, 1)
        if self.scale is None:
            codes = x
        elif self.kind == "bipolar":      # bit 1 where x / scale + zero_point >= 0
            codes = np.where(x / np.float32(self.scale) + np.float32(self.zero_point) >= 0, 1, 0)
            return codes.astype(np.int64)
        else:
            y = x / np.float32(self.scale) + np.float32(self.zero_point)
            kind = DataKind.of(*_kind_bits(self.kind))
            lo, hi = kind.stored_range
            if self.narrow and kind.signed:
                lo += 1
            codes = _ROUNDING[self.rounding](np.clip(y, lo, hi)) - np.float32(self.zero_point)
        if self.kind == "bipolar":
            return ((np.asarray(codes) + 1) // 2).astype(np.int64)
        return np.rint(codes).astype(np.int64)

    def to_json(self):
        return json.dumps(self.__dict__, indent=1)

    @classmethod
    def from_json(cls, text):
        """The codes a :meth:`to_json` text describes; ValueError (or TypeError for a missing or unknown
        field) when it is none."""
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("it holds no JSON object")
        return cls(**d)


def _kind_bits(name):
    m = re.fullmatch(r"(bipolar|ternary|uint|int)(\d*)", name)
    return m[1], (int(m[2]) if m[2] else None)


_ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "FLOOR": np.floor, "CEIL": np.ceil, "DOWN": np.fix,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
}


@dataclass
class Imported:
    """What :func:`import_qonnx` made: the config, the input codes, and notes for the user."""
    cfg: object
    input_codes: InputCodes
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------

def _refuse(node, why, fix="qnnfab's hardware supports the ops listed in `qnnfab import --help`"):
    where = f"node '{node.name}' ({node.op_type})" if node is not None else "graph"
    raise ConfigError(where, "op", why, fix)


@dataclass
class _Act:
    """Activation codes on the data path: their kind and the scale of their values."""
    kind: DataKind
    scale: np.ndarray          # scalar (float64) per value


@dataclass
class _Pending:
    """A linear layer whose activation is still to come."""
    node: object
    type: str
    weights: np.ndarray        # value-domain integer weights (MH, MW) or (O, I, K, K)
    wkind: DataKind
    xkind: DataKind
    A: np.ndarray              # (MH,) float64: z = A * acc + B (acc: integer dot product of values)
    B: np.ndarray
    conv: dict
    relu: bool = False
    reads: tuple = ()          # the config layers it reads (NETWORK_INPUT: the network's input)
    acc_range: tuple = ()      # an add's or global pool's integer sum: (lo, hi)
    divisor: int = 1           # a global pool: z = A * (sum / divisor) + B


@dataclass
class _Path:
    """What a tensor on the data path carries: the activation codes of layer ``src`` (or of the
    network's input), or a layer still waiting for its activation (``pending``)."""
    act: object                # _Act, or None before the input quantizer
    layout: str
    shape: tuple
    src: str
    pending: object = None     # _Pending
    pad: tuple | None = None
    flat_perm: np.ndarray | None = None

    @property
    def at_layer_boundary(self):
        return self.act is not None and self.pending is None and self.pad is None and self.flat_perm is None


class _Walker:
    def __init__(self, model):
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes
        self.m = ModelWrapper(model).transform(InferShapes())
        g = self.m.graph
        self.inits = {t.name for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.layers = []           # dicts for the config
        self.notes = []
        self.n_layer = 0           # the index in the emitted layers' names

    # --- parameters: initializers or constant sub-graphs (a Quant on weights) ---
    def const(self, name):
        v = self.m.get_initializer(name)
        if v is not None:
            return np.asarray(v, dtype=np.float64)
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            from onnx import numpy_helper
            return numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
        return None

    def is_param(self, name):
        if name in self.inits:
            return True
        node = self.producer.get(name)
        return node is not None and node.op_type in ("Constant", "Quant", "BipolarQuant", "Transpose", "Identity") \
            and all(self.is_param(i) for i in node.input if i)

    def weight_codes(self, name, consumer):
        """(integer value codes, scale (scalar or per output row of the codes), DataKind) of a weight input."""
        node = self.producer.get(name)
        if node is not None and node.op_type in ("Transpose", "Identity"):
            codes, scale, kind = self.weight_codes(node.input[0], consumer)
            if node.op_type == "Transpose":
                perm = list(_attr(node, "perm"))
                codes = codes.transpose(perm)
                if np.ndim(scale) == codes.ndim:
                    scale = np.transpose(scale, perm)
            return codes, scale, kind
        if node is not None and node.op_type == "BipolarQuant":
            w = self.const(node.input[0])
            s = self.const(node.input[1])
            if w is None or s is None:
                _refuse(node, "its weights or scale are not constant")
            if np.any(s <= 0):
                _refuse(node, "a weight scale is not positive")
            codes = np.where(w / s >= 0, 1, -1)
            return codes.astype(np.int64), s, DataKind.of("bipolar")
        if node is not None and node.op_type == "Quant":
            w, s, zp, bw = (self.const(i) for i in node.input[:4])
            if any(v is None for v in (w, s, zp, bw)):
                _refuse(node, "its weights, scale, zero point or bit width are not constant")
            attrs = {a.name: a for a in node.attribute}
            signed = bool(attrs["signed"].i) if "signed" in attrs else True
            narrow = bool(attrs["narrow"].i) if "narrow" in attrs else False
            mode = attrs["rounding_mode"].s.decode().upper() if "rounding_mode" in attrs else "ROUND"
            bits = int(bw)
            if np.any(zp != 0):
                _refuse(node, "a weight zero point is not 0", "quantize weights symmetrically")
            if np.any(s <= 0):
                _refuse(node, "a weight scale is not positive")
            if bits == 1 and signed:   # qonnx runs a signed 1-bit Quant as the sign, as BipolarQuant
                return np.where(w / s >= 0, 1, -1).astype(np.int64), s, DataKind.of("bipolar")
            if bits < 2 or bits != bw:
                _refuse(node, f"bit width {float(bw)} is not an integer >= 2")
            from qonnx.custom_op.general.intquant import max_int, min_int
            lo, hi = min_int(signed, narrow, bits), max_int(signed, narrow, bits)
            y = (w.astype(np.float32) / s.astype(np.float32)).astype(np.float32)
            codes = _ROUNDING[mode](np.clip(y, lo, hi)).astype(np.int64)
            if bits == 2 and signed and narrow:
                return codes, s, DataKind.of("ternary")
            if not signed:
                _refuse(node, "unsigned weights", "export signed weight quantizers")
            return codes, s, DataKind.of("int", bits)
        w = self.const(name)
        if w is None:
            _refuse(consumer, f"its weight input {name!r} is not a constant")
        if not np.array_equal(w, np.rint(w)):
            _refuse(consumer, "its weights are not integers and no Quant node gives their codes",
                    "export the model with its weight quantizers (QONNX) or streamline it first")
        codes = np.rint(w).astype(np.int64)
        annotated = self.m.get_tensor_datatype(name).name
        return codes, np.float64(1.0), _kind_of_values(codes, annotated)


def _kind_of_values(codes, annotated=None):
    """The weight kind of integer ``codes``: the QONNX annotation when there is one, else the narrowest that holds them."""
    m = re.fullmatch(r"INT(\d+)", annotated or "")
    if annotated == "BIPOLAR":
        kind = DataKind.of("bipolar")
    elif annotated == "TERNARY":
        kind = DataKind.of("ternary")
    elif m and int(m[1]) >= 2:
        kind = DataKind.of("int", int(m[1]))
    elif codes.size and set(np.unique(codes).tolist()) <= {-1, 1}:
        return DataKind.of("bipolar")
    elif set(np.unique(codes).tolist()) <= {-1, 0, 1}:
        return DataKind.of("ternary")
    else:
        lo, hi = int(codes.min()), int(codes.max())
        return DataKind.of("int", max(2, max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length()) + 1))
    lo, hi = kind.value_range
    if codes.min() < lo or codes.max() > hi:
        raise ConfigError("graph", "weights", f"values outside the annotated {annotated} range", "fix the annotation")
    return kind


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper
            return helper.get_attribute_value(a)
    return default


def _per_channel(node, v, channels):
    """A constant as one value per output channel (scalar or per-channel, any broadcast shape)."""
    a = np.asarray(v, dtype=np.float64)
    if a.size == 1:
        return np.full(channels, float(a.reshape(-1)[0]))
    flat = a.reshape(-1)
    if flat.size == channels and sum(d > 1 for d in a.shape) <= 1:
        return flat.copy()
    _refuse(node, f"its constant of shape {a.shape} is neither a scalar nor one value per channel ({channels})")


def _frac(x):
    return Fraction(float(x))


def _ceil(q):
    return -((-q.numerator) // q.denominator)


def _flip_negative_rows(p):
    """Rows with A < 0 compute -z' with z' = (-A) * (-acc) + B: negate their weights (as FINN does),
    so every row's pre-activation grows with its accumulator. In the value domain, before
    :func:`_to_hardware_domain`."""
    neg = p.A < 0
    if p.type in SUMS:
        if neg.any():
            _refuse(p.node, f"a negative scale on channel {int(np.nonzero(neg)[0][0])} of an {p.type}'s sum "
                    "(a sum has no weights to negate)", "keep the scales after a join or pool positive")
        return
    p.weights[neg] = -p.weights[neg]
    p.A = np.abs(p.A)
    lo, hi = p.wkind.value_range
    if p.wkind.kind == "int" and (p.weights.min() < lo or p.weights.max() > hi):
        p.wkind = DataKind.of("int", p.wkind.bits + 1)     # -(-2^(k-1)) needs one more bit


def _threshold_rows(pending, levels, acc_lo, acc_hi):
    """Integer thresholds (MH, len(levels)) of z = A*acc + B (A >= 0) against ``levels``:
    a list of (t, strict) per output count j (counts z >= t, or z > t)."""
    A, B = pending.A, pending.B
    rows = []
    for r in range(len(A)):
        a, b = _frac(A[r]), _frac(B[r])
        row = []
        for t, strict in levels:
            if pending.relu and (t < 0 or (t == 0 and not strict)):
                row.append(acc_lo)       # relu(z) reaches every level at or below 0
                continue
            t = _frac(t)
            if a == 0:
                hit = b > t if strict else b >= t
                row.append(acc_lo if hit else acc_hi + 1)
                continue
            q = (t - b) / a * pending.divisor
            T = (math.floor(q) + 1) if strict else _ceil(q)
            row.append(min(max(T, acc_lo), acc_hi + 1))
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def import_qonnx(model, name="imported"):
    """Import a QONNX model (``onnx.ModelProto`` or a path); return :class:`Imported`.

    The config has PE = SIMD = 1 (fold it with :func:`qnnfab.boards.estimate.fold.auto_fold`
    or ``qnnfab fold``); weights are stored integers, thresholds in the
    hardware's accumulator domain.
    """
    import onnx
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    w = _Walker(model)
    g = w.m.graph
    inputs = [i for i in g.input if i.name not in w.inits]    # some exporters list initializers as inputs
    if len(inputs) != 1 or len(g.output) != 1:
        _refuse(None, f"{len(inputs)} inputs and {len(g.output)} outputs", "export a single-input, single-output model")
    inp = inputs[0].name
    shape = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(shape) == 4:
        layout, hw_shape = "NCHW", (shape[2], shape[3], shape[1])
    elif len(shape) == 2:
        layout, hw_shape = "NC", (shape[1],)
    else:
        _refuse(None, f"input of rank {len(shape)}", "give a (N, C, H, W) image or (N, F) vector input")
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    first = consumers.get(inp, [None])[0]
    if first is not None and first.op_type == "Transpose" and list(_attr(first, "perm")) == [0, 3, 1, 2]:
        layout, hw_shape = "NHWC", (shape[1], shape[2], shape[3])

    codes = None
    annotated = w.m.get_tensor_datatype(inp).name
    act = None
    if annotated != "FLOAT32":
        kind = _annotated_kind(annotated)
        if kind is None:
            _refuse(None, f"the input is annotated {annotated}", "annotate it BIPOLAR, UINTk or INTk, or quantize it")
        act = _Act(kind, np.float64(1.0))
        codes = InputCodes(kind.kind if kind.kind == "bipolar" else kind.name, kind.bits if kind.kind != "bipolar" else None,
                           layout=layout if layout != "NHWC" else "NHWC")
    state = {inp: _Path(act, layout, hw_shape, NETWORK_INPUT)}
    uses = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    out_name = g.output[0].name
    for node in g.node:
        if not any(i in state for i in node.input):
            continue                                    # a parameter (weights and their quantizers)
        op = node.op_type
        if node.input[0] not in state:
            _refuse(node, "the data path is not its first input")
        for i in node.input:
            if i in state and uses[i] > 1 and not state[i].at_layer_boundary:
                _refuse(node, f"tensor {i!r} feeds {uses[i]} nodes in the middle of a layer",
                        "branch only from an activation's output (a layer's codes)")
        if out_name in node.input:
            _refuse(node, "the graph output is also used inside the graph")
        data = [state[i] for i in node.input if i in state]
        if op in ("Add", "Concat") and len(data) > 1:
            state[node.output[0]] = _join(w, node, data)
            continue
        st = dataclasses.replace(data[0])
        if op in _SKIP:
            pass
        elif op in ("Quant", "BipolarQuant") and st.pending is None and st.act is None:
            codes, st.act = _input_quant(w, node, st.layout)
        elif op in ("Quant", "BipolarQuant", "MultiThreshold"):
            if st.pending is None:
                _refuse(node, "an activation without a linear layer before it")
            st.act = _activation(w, node, st.pending, st.act, w.n_layer)
            w.n_layer += 1
            st.pending, st.src = None, w.layers[-1]["name"]
        elif op == "Relu":
            if st.pending is None:
                _refuse(node, "a Relu outside a layer")
            st.pending.relu = True
        elif op in _ARITH or op == "BatchNormalization":
            if st.act is None:
                _refuse(node, "arithmetic on the unquantized input", "quantize the input first")
            if st.pending is None:
                if op == "Mul" and (c := w.const(node.input[1])) is not None and c.size == 1 and float(c) > 0:
                    st.act = _Act(st.act.kind, st.act.scale * float(c))     # a rescale of the codes' values
                elif op == "Div" and (c := w.const(node.input[1])) is not None and c.size == 1 and float(c) > 0:
                    st.act = _Act(st.act.kind, st.act.scale / float(c))
                else:
                    _refuse(node, "arithmetic on activations outside a layer changes the integer codes")
            else:
                _compose(w, node, st.pending)
        elif op in ("MatMul", "Gemm", "Conv"):
            if st.act is None:
                _refuse(node, "a linear layer on the unquantized input",
                        "quantize the input (Quant/BipolarQuant) or annotate its integer datatype")
            if st.pending is not None:
                _refuse(node, "two linear layers without an activation between them")
            st.pending, st.shape = _linear(w, node, st.act, st.layout, st.shape, st.flat_perm, st.pad)
            st.pending.reads = (st.src,)
            st.pad = st.flat_perm = None
            st.layout = "NCHW" if op == "Conv" else "NC"
        elif op == "GlobalAveragePool":
            st = _global_pool(node, st)
        elif op == "MaxPool":
            if st.pending is not None:
                _refuse(node, "a max pool before the activation", "pool after the activation (as FINN's CNV does)")
            k = list(_attr(node, "kernel_shape"))
            s_ = list(_attr(node, "strides", k))
            if k[0] != k[1] or s_[0] != s_[1] or any(_attr(node, "pads", [0, 0, 0, 0])) or _attr(node, "ceil_mode", 0):
                _refuse(node, f"kernel {k}, strides {s_}, pads or ceil_mode", "use square kernels, no padding")
            if st.act.kind.kind not in ("bipolar", "uint"):
                _refuse(node, f"a max pool of {st.act.kind.name} data")
            h, wd, c = st.shape
            st.shape = ((h - k[0]) // s_[0] + 1, (wd - k[0]) // s_[0] + 1, c)
            w.layers.append(dict(name=f"pool{w.n_layer}", type="maxpool", kernel=k[0], stride=s_[0], reads=(st.src,)))
            st.src = w.layers[-1]["name"]
            w.n_layer += 1
        elif op == "Transpose":
            perm = list(_attr(node, "perm"))
            if st.layout == "NCHW" and perm == [0, 2, 3, 1]:
                st.layout = "NHWC"
            elif st.layout == "NHWC" and perm == [0, 3, 1, 2]:
                st.layout = "NCHW"
            else:
                _refuse(node, f"permutation {perm} of {st.layout} data")
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and _attr(node, "axis", 1) != 1:
                _refuse(node, "flattening from an axis other than 1")
            if op == "Reshape":
                target = w.const(node.input[1])
                if target is None or len(target) != 2:
                    _refuse(node, "a reshape to anything but (N, features)")
            if st.layout == "NCHW":
                h, wd, c = st.shape
                st.flat_perm = np.arange(h * wd * c).reshape(c, h, wd).transpose(1, 2, 0).reshape(-1)
            st.layout = "NC"
            st.shape = (math.prod(st.shape),)
        elif op == "Pad":
            st.pad = _pad(w, node, st.act)
        else:
            _refuse(node, "is not an op qnnfab's hardware implements")
        state[node.output[0]] = st
    if out_name not in state:
        _refuse(None, "the graph output is not reached from its input", "export a model whose output depends on its input")
    for t in state:
        if t != out_name and not uses.get(t):
            _refuse(w.producer.get(t), "its output is used by no node: a branch that ends nowhere")
    if state[out_name].pending is not None:
        _last_layer(w, state[out_name].pending, w.n_layer)
    if not w.layers:
        _refuse(None, "no layers", "export a model with at least one linear layer")
    if codes is None:
        _refuse(None, "the input is neither quantized by the model nor annotated with an integer datatype")
    cfg = _config(name, hw_shape, codes, w.layers)
    return Imported(cfg, codes, w.notes)


def _join(w, node, data):
    """An ``Add`` of two data tensors (a residual join: a pending "add" layer, thresholded by the
    activation that follows) or a ``Concat`` of two (a "concat" layer); the joined tensor's path."""
    op = node.op_type
    if len(data) != 2:
        _refuse(node, f"joins {len(data)} tensors", "join two branches at a time")
    a, b = data
    for side in (a, b):
        if not side.at_layer_boundary:
            _refuse(node, "joins a tensor in the middle of a layer", "join activation outputs (layer codes)")
    if a.act.kind != b.act.kind or float(a.act.scale) != float(b.act.scale):
        _refuse(node, f"joins {a.act.kind.name} codes at scale {float(a.act.scale):g} with {b.act.kind.name} codes "
                f"at scale {float(b.act.scale):g}", "quantize both branches with the same quantizer")
    if a.layout not in ("NCHW", "NHWC") or b.layout != a.layout:
        _refuse(node, f"joins {a.layout} and {b.layout} data", "join image maps of one layout")
    if op == "Add":
        if a.shape != b.shape:
            _refuse(node, f"adds maps of shapes {a.shape} and {b.shape}")
        if a.act.kind.kind == "bipolar":
            _refuse(node, "adds bipolar codes", "quantize the branches to unsigned k-bit codes")
        c = a.shape[2]
        lo, hi = a.act.kind.stored_range
        p = _Pending(node, "add", None, None, a.act.kind, np.full(c, float(a.act.scale)), np.zeros(c), {},
                     reads=(a.src, b.src), acc_range=(2 * lo, 2 * hi))
        return _Path(a.act, a.layout, a.shape, a.src, pending=p)
    axis = _attr(node, "axis", 1)
    if axis < 0:
        axis += 4
    if axis != {"NCHW": 1, "NHWC": 3}[a.layout] or a.shape[:2] != b.shape[:2]:
        _refuse(node, f"concatenates on axis {axis} of {a.layout} maps {a.shape} and {b.shape}",
                "concatenate the channels of maps of one height and width")
    w.layers.append(dict(name=f"concat{w.n_layer}", type="concat", reads=(a.src, b.src)))
    w.n_layer += 1
    return _Path(a.act, a.layout, a.shape[:2] + (a.shape[2] + b.shape[2],), w.layers[-1]["name"])


def _global_pool(node, st):
    """A ``GlobalAveragePool`` of a layer's codes: a pending "global_avgpool" layer whose integer is
    each channel's sum over H x W (its mean is that sum / (H W))."""
    if not st.at_layer_boundary or st.layout != "NCHW":
        _refuse(node, "a global average pool inside a layer or of non-NCHW data",
                "pool an activation's output (NCHW)")
    if st.act.kind.kind == "bipolar":
        _refuse(node, "a global average pool of bipolar codes", "quantize its input to unsigned k-bit codes")
    h, wd, c = st.shape
    lo, hi = st.act.kind.stored_range
    p = _Pending(node, "global_avgpool", None, None, st.act.kind, np.full(c, float(st.act.scale)), np.zeros(c), {},
                 reads=(st.src,), acc_range=(lo * h * wd, hi * h * wd), divisor=h * wd)
    return _Path(st.act, "NCHW", (1, 1, c), st.src, pending=p)


def _annotated_kind(name):
    if name == "BIPOLAR":
        return DataKind.of("bipolar")
    m = re.fullmatch(r"(U?)INT(\d+)", name)
    if m and int(m[2]) >= 1:
        return DataKind.of("uint" if m[1] else "int", int(m[2]))
    return None


def _is_sign(w, node):
    """A signed 1-bit Quant with zero point 0 and one positive scale: qonnx runs it as the sign."""
    s, zp, bw = (w.const(i) for i in node.input[1:4])
    return (bw is not None and bw.size == 1 and float(bw) == 1 and bool(_attr(node, "signed", 1)) and
            zp is not None and not np.any(zp) and s is not None and s.size == 1 and float(s) > 0)


def _input_quant(w, node, layout):
    s = w.const(node.input[1])
    if s is None or s.size != 1 or float(s) <= 0:
        _refuse(node, "the input scale is not one positive constant")
    if node.op_type == "BipolarQuant" or _is_sign(w, node):
        kind = DataKind.of("bipolar")
        return InputCodes("bipolar", None, float(s), layout=layout), _Act(kind, np.float64(float(s)))
    zp, bw = w.const(node.input[2]), w.const(node.input[3])
    signed = bool(_attr(node, "signed", 1))
    narrow = bool(_attr(node, "narrow", 0))
    mode = _attr(node, "rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
    if zp is None or bw is None or zp.size != 1 or float(zp) != 0 or float(bw) != int(bw):
        _refuse(node, "the input quantizer needs a zero point of 0 and an integer bit width")
    bits = int(bw)
    if narrow and not signed:
        _refuse(node, "a narrow unsigned input quantizer")
    kind = DataKind.of("int" if signed else "uint", bits)
    return (InputCodes(kind.name, bits, float(s), 0.0, mode, narrow, layout), _Act(kind, np.float64(float(s))))


def _pad(w, node, act):
    mode = _attr(node, "mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = w.const(node.input[1])
    if mode != "constant" or pads is None or len(pads) != 8:
        _refuse(node, f"mode {mode!r} or non-constant pads", "pad with a constant")
    p = [int(v) for v in pads]
    if p[0] or p[1] or p[4] or p[5] or len({p[2], p[3], p[6], p[7]}) != 1:
        _refuse(node, f"pads {p}: only the same padding on every side of H and W")
    value = 0.0
    if len(node.input) > 2 and node.input[2]:
        value = float(w.const(node.input[2]))
    code = value / float(act.scale)
    stored = act.kind.stored(np.array(code))
    if code != round(code) or act.kind.values(stored) != code or not (
            act.kind.stored_range[0] <= int(stored) <= act.kind.stored_range[1]):
        _refuse(node, f"pad value {value} is not a {act.kind.name} code at scale {float(act.scale)}")
    return p[2], int(stored)


def _linear(w, node, act, layout, cur_shape, flat_perm, pad):
    op = node.op_type
    if op == "Conv":
        if layout != "NCHW":
            _refuse(node, f"a convolution of {layout} data")
        codes, scale, wkind = w.weight_codes(node.input[1], node)     # (O, I, K, K)
        k = list(_attr(node, "kernel_shape", codes.shape[2:]))
        s = list(_attr(node, "strides", [1, 1]))
        pads = list(_attr(node, "pads", [0, 0, 0, 0]))
        if _attr(node, "group", 1) != 1 or any(d != 1 for d in _attr(node, "dilations", [1, 1])):
            _refuse(node, "grouped or dilated convolution")
        if k[0] != k[1] or s[0] != s[1] or len(set(pads)) != 1:
            _refuse(node, f"kernel {k}, strides {s}, pads {pads}: only square kernels and even padding")
        p, pv = pads[0], 0
        if pad is not None:
            if p:
                _refuse(node, "padding both in a Pad node and in the convolution")
            p, pv = pad
        elif p:
            zero = act.kind.stored(np.array(0))
            if act.kind.kind == "bipolar":
                _refuse(node, "zero padding of bipolar data (-1/+1 have no zero)",
                        "pad with -1 or +1 in a Pad node before the convolution")
            pv = int(zero)
        h, wd, c = cur_shape
        if codes.shape[1] != c:
            _refuse(node, f"weights for {codes.shape[1]} input channels, the data has {c}")
        O = codes.shape[0]
        out_shape = ((h + 2 * p - k[0]) // s[0] + 1, (wd + 2 * p - k[0]) // s[0] + 1, O)
        conv = dict(kernel=k[0], stride=s[0], pad=p, pad_value=pv)
        wscale = _per_channel(node, scale, O)
        n_bias = 2
    else:
        if layout != "NC":
            _refuse(node, f"a matrix product of {layout} data", "flatten first")
        codes, scale, wkind = w.weight_codes(node.input[1], node)
        trans_b = op == "Gemm" and _attr(node, "transB", 0)
        if op == "Gemm" and (_attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0
                             or _attr(node, "beta", 1.0) != 1.0):
            _refuse(node, "transA, alpha or beta other than the defaults")
        codes = codes if trans_b else codes.T            # (MH, MW)
        sc = np.asarray(scale, dtype=np.float64)
        per_output = sc.ndim <= 1 or (trans_b and sc.shape[-1] == 1) or (not trans_b and sc.shape[0] == 1)
        if sc.size > 1 and not per_output:
            _refuse(node, f"weight scale of shape {sc.shape} is not per output channel")
        O = codes.shape[0]
        wscale = _per_channel(node, sc.reshape(-1), O)
        if codes.shape[1] != math.prod(cur_shape):
            _refuse(node, f"weights for {codes.shape[1]} inputs, the data has {math.prod(cur_shape)}")
        if flat_perm is not None:
            codes = codes[:, flat_perm]
        out_shape = (O,)
        conv = {}
        n_bias = 2
    A = wscale * float(act.scale)
    B = np.zeros(O)
    pending = _Pending(node, "conv" if op == "Conv" else "fc", codes.copy(), wkind, act.kind, A, B, conv)
    if len(node.input) > n_bias and node.input[n_bias]:
        bias = w.const(node.input[n_bias])
        if bias is None:
            _refuse(node, "its bias is not constant")
        pending.B = pending.B + _per_channel(node, bias, O)
    return pending, out_shape


def _compose(w, node, p):
    """Fold an elementwise constant op or a batch norm into ``z = A * acc + B``."""
    op = node.op_type
    O = len(p.A)
    if p.relu:
        _refuse(node, "arithmetic after a Relu inside a layer")
    if op == "BatchNormalization":
        gamma, beta, mean, var = (w.const(i) for i in node.input[1:5])
        if any(v is None for v in (gamma, beta, mean, var)):
            _refuse(node, "its parameters are not constant")
        eps = np.float32(_attr(node, "epsilon", 1e-5))
        sd = np.sqrt(var.astype(np.float32) + eps).astype(np.float64)
        g = _per_channel(node, gamma, O) / _per_channel(node, sd, O)
        p.A = p.A * g
        p.B = (p.B - _per_channel(node, mean, O)) * g + _per_channel(node, beta, O)
        return
    c = w.const(node.input[1])
    if c is None:
        _refuse(node, "its second input is not a constant", "only constant scales and biases fold")
    c = _per_channel(node, c, O)
    if op == "Add":
        p.B = p.B + c
    elif op == "Sub":
        p.B = p.B - c
    elif op == "Mul":
        p.A, p.B = p.A * c, p.B * c
    else:
        if np.any(c == 0):
            _refuse(node, "division by zero")
        p.A, p.B = p.A / c, p.B / c


def _acc_bounds(p):
    """(lo, hi) of the hardware accumulator and the affine map from it to the value-domain dot product."""
    if p.type in SUMS:
        return p.acc_range[0], p.acc_range[1], False
    n = p.weights[0].size
    binary = p.wkind.kind == "bipolar" and p.xkind.kind == "bipolar"
    if binary:
        return 0, n, binary
    from qnnfab.kinds import accumulator_range
    lo, hi = accumulator_range(n, p.wkind, p.xkind)
    return lo, hi, binary


def _to_hardware_domain(p, binary):
    """Rewrite z = A*D + B (D the value-domain dot product) for the popcount P of a
    binary layer: D = 2P - N."""
    if binary:
        n = p.weights[0].size
        p.B = p.B - p.A * n
        p.A = 2 * p.A


def _activation(w, node, p, act, idx):
    lo, hi, binary = _acc_bounds(p)
    _flip_negative_rows(p)
    _to_hardware_domain(p, binary)
    op = node.op_type
    if op == "BipolarQuant":
        s = w.const(node.input[1])
        if s is None or np.any(s <= 0):
            _refuse(node, "its scale is not positive and constant")
        levels, out_kind, out_scale = [(0.0, False)], DataKind.of("bipolar"), float(np.asarray(s).reshape(-1)[0])
        if s.size > 1 and not np.all(s == s.reshape(-1)[0]):
            _refuse(node, "per-channel activation scales", "use one scale per activation quantizer")
    elif op == "Quant" and _is_sign(w, node):
        levels, out_kind, out_scale = [(0.0, False)], DataKind.of("bipolar"), float(w.const(node.input[1]))
    elif op == "Quant":
        s, zp, bw = (w.const(i) for i in node.input[1:4])
        if s is None or zp is None or bw is None or s.size != 1 or float(s) <= 0:
            _refuse(node, "its scale, zero point or bit width are not one positive constant each")
        if float(zp) != 0 or bool(_attr(node, "signed", 1)) or bool(_attr(node, "narrow", 0)):
            _refuse(node, "a signed, narrow or offset activation quantizer",
                    "qnnfab's hidden activations are unsigned k-bit (zero point 0) or bipolar")
        bits = int(bw)
        if bits != float(bw) or not 1 <= bits <= 16:
            _refuse(node, f"activation bit width {float(bw)}")
        mode = _attr(node, "rounding_mode", b"ROUND")
        mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
        sc = float(s)
        if mode in ("ROUND", "HALF_EVEN"):
            levels = [(sc * (j - 0.5), j % 2 == 1) for j in range(1, 1 << bits)]
        elif mode == "FLOOR":
            levels = [(sc * j, False) for j in range(1, 1 << bits)]
        elif mode == "CEIL":
            levels = [(sc * (j - 1), True) for j in range(1, 1 << bits)]
        else:
            _refuse(node, f"rounding mode {mode}")
        out_kind, out_scale = DataKind.of("uint", bits), sc
    else:
        t = w.const(node.input[1])
        if t is None:
            _refuse(node, "its thresholds are not constant")
        t = np.atleast_2d(t)
        scale_, bias_ = float(_attr(node, "out_scale", 1.0)), float(_attr(node, "out_bias", 0.0))
        n_t = t.shape[1]
        if (scale_, bias_) == (2.0, -1.0) and n_t == 1:
            out_kind = DataKind.of("bipolar")
        elif (scale_, bias_) == (1.0, 0.0):
            bits = max(1, n_t.bit_length())
            out_kind = DataKind.of("uint", bits)
        else:
            _refuse(node, f"out_scale {scale_} and out_bias {bias_}",
                    "use (2, -1) with one threshold (bipolar) or (1, 0) (unsigned counts)")
        O = len(p.A)
        if t.shape[0] not in (1, O):
            _refuse(node, f"thresholds for {t.shape[0]} channels, the layer has {O}")
        t = np.broadcast_to(t, (O, n_t))
        rows = []
        missing = (1 << out_kind.bits) - 1 - n_t if out_kind.kind == "uint" else 0
        for r in range(O):   # per-row thresholds: one row at a time through the same rule
            sub = dataclasses.replace(p, A=p.A[r:r + 1], B=p.B[r:r + 1])
            row = _threshold_rows(sub, [(float(v), False) for v in t[r]], lo, hi)[0]
            rows.append(np.concatenate([row, np.full(missing, hi + 1)]))
        _emit(w, p, np.array(rows, dtype=np.int64), out_kind, idx)
        return _Act(out_kind, np.float64(1.0))
    thr = _threshold_rows(p, levels, lo, hi)
    _emit(w, p, thr, out_kind, idx)
    return _Act(out_kind, np.float64(out_scale))


def _emit(w, p, thresholds, out_kind, idx):
    act = "bipolar" if out_kind.kind == "bipolar" else f"uint{out_kind.bits}"
    if p.type in SUMS:
        w.layers.append(dict(name=f"{'add' if p.type == 'add' else 'gap'}{idx}", type=p.type, act=act,
                             thresholds=np.sort(thresholds, axis=1), reads=p.reads))
        return
    weights = p.wkind.stored(p.weights)
    w.layers.append(dict(name=f"{p.type}{idx}", type=p.type, out=len(p.A), act=act, weight_kind=p.wkind.kind,
                         weight_bits=p.wkind.bits if p.wkind.kind == "int" else None,
                         weights=weights, thresholds=np.sort(thresholds, axis=1), reads=p.reads, **p.conv))


def _last_layer(w, p, idx):
    if p.type in SUMS:
        _refuse(p.node, f"the graph ends in an {p.type} without an activation",
                "requantize the sum (a Quant or MultiThreshold), then end in a linear layer")
    lo, hi, binary = _acc_bounds(p)
    _to_hardware_domain(p, binary)
    if np.any(p.A <= 0) or not (np.all(p.A == p.A[0]) and np.all(p.B == p.B[0])):
        _refuse(p.node, "the last layer's outputs are scaled per channel, shifted by a bias per class or scaled by a "
                "non-positive factor", "the hardware outputs raw accumulators: train the last layer without bias and "
                "end with one positive scale for all outputs")
    if p.relu:
        _refuse(p.node, "a Relu on the last layer's outputs")
    if (p.A[0], p.B[0]) != (1.0, 0.0):
        w.notes.append(f"the model's outputs are {p.A[0]:g} * (hardware scores) + {p.B[0]:g}: "
                       "the same arg-max; compare labels or the integer scores")
    weights = p.wkind.stored(p.weights)
    w.layers.append(dict(name=f"{p.type}{idx}", type=p.type, out=len(p.A), act="acc", weight_kind=p.wkind.kind,
                         weight_bits=p.wkind.bits if p.wkind.kind == "int" else None, weights=weights,
                         thresholds=None, reads=p.reads, **p.conv))


def _config(name, hw_shape, codes, layers):
    """The NetConfig (PE = SIMD = 1) of the imported layers, validated by netconfig."""
    import tempfile

    from qnnfab import netconfig
    kind, bits = _kind_bits(codes.kind)
    lines = ["[network]", f"name = {json.dumps(name)}", f"input_shape = {list(hw_shape)}",
             f"input_kind = {json.dumps(kind)}"]
    if kind != "bipolar":
        lines.append(f"input_bits = {bits}")
    lines.append('weights = "weights.npz"')
    arrays = {}
    prev = NETWORK_INPUT
    for L in layers:
        lines += ["", "[[layer]]"]
        reads = list(L.get("reads") or (prev,))
        for k, v in L.items():
            if k == "reads":
                continue
            if k in ("weights", "thresholds"):
                if v is not None:
                    arrays[f"{L['name']}/{k}"] = v
            elif v is not None:
                lines.append(f"{k} = {json.dumps(v)}")
            if k == "name" and reads != [prev]:     # a layer reading other than the one above it
                lines.append(f"input = {json.dumps(reads if len(reads) > 1 else reads[0])}")
        prev = L["name"]
    with tempfile.TemporaryDirectory(prefix="qnnfab-import-") as d:
        np.savez(Path(d) / "weights.npz", **arrays)
        cfg = netconfig.loads("\n".join(lines) + "\n", d, f"<import of {name}>")
    cfg.weights_ref = "<imported>"
    return cfg


def write_imported(imported, out_dir):
    """Write ``<name>.toml``, ``<name>.npz`` and ``<name>.input_codes.json`` into ``out_dir``
    (each through a temporary file renamed onto it once all three are written); return
    the config path."""
    from qnnfab import netconfig
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = imported.cfg.name
    toml = out / f"{stem}.toml"
    with atomic_paths(*imported_files(out, stem)) as (tmp_toml, tmp_npz, tmp_codes):
        netconfig.save_weights(tmp_npz, imported.cfg)
        tmp_toml.write_text(netconfig.dumps(imported.cfg, f"{stem}.npz"))
        tmp_codes.write_text(imported.input_codes.to_json() + "\n")
    return toml


def imported_files(out_dir, name):
    """The files :func:`write_imported` writes for network ``name``: config, weights, input codes."""
    out = Path(out_dir)
    return out / f"{name}.toml", out / f"{name}.npz", out / f"{name}.input_codes.json"
