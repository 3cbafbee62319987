"""A qnnfab network as a QONNX model (FINN's streamlined form).

The graph computes what the golden model computes, in the value domain that
QONNX and FINN use:

* input ``global_in``: the input *values*, NCHW ``(1, C, H, W)`` for images or
  ``(1, F)`` for vectors (batch 1, as FINN's graphs; :func:`execute` runs any
  batch), annotated BIPOLAR (-1/+1), UINTk or INTk;
* fc -> ``MatMul`` with the weight values transposed to ``(MW, MH)``; an fc after
  a convolution first transposes to NHWC and flattens (the hardware's order);
  conv -> ``Conv`` (OIHW values, no bias), with a constant ``Pad`` first when the
  padding value is not 0; max pool -> ``MaxPool``. Weight initializers hold
  integer values annotated BIPOLAR, TERNARY or INTk;
* every activation -> ``MultiThreshold`` (domain ``qonnx.custom_op.general``)
  with the thresholds of the integer dot product: a bipolar x bipolar layer's
  popcount thresholds T become 2T - N (its dot product is 2P - N). A bipolar
  activation outputs -1/+1 (``out_scale`` 2, ``out_bias`` -1, out_dtype
  BIPOLAR), a uint<k> one the count of thresholds reached (UINTk);
* a last layer without activation outputs the raw accumulators as the hardware
  does: the popcount P = (D + N) / 2 for bipolar x bipolar (``Add``, ``Mul``),
  the integer dot product otherwise; an image output is transposed back to NHWC;
* graphs (:attr:`~qnnfab.netconfig.NetConfig.is_graph`): a layer reads the
  tensors of the layers it names (a tensor read twice is a fork); add ->
  ``Add`` of its two inputs, then ``MultiThreshold`` with its thresholds;
  global_avgpool -> ``GlobalAveragePool`` (the channel sums divided by H*W),
  then ``MultiThreshold`` with the thresholds ``(T - 0.5) / (H*W)`` (an average
  is >= (T - 0.5) / (H*W) iff the integer sum is >= T; the half step keeps
  float32 rounding from deciding, for sums below 2^20); concat -> ``Concat``
  on the channel axis.

``qonnx.core.onnx_exec.execute_onnx`` then gives the golden model's outputs
(bipolar activations as values; :func:`stored_outputs` converts;
:func:`execute` does both for a batch of stored frames). Arithmetic
runs in float32 in onnxruntime, so the export refuses accumulators that
float32 cannot hold exactly (|acc| >= 2^24).
"""

import math

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind, accumulator_range
from qnnfab.netconfig import GRAPH_TYPES, NETWORK_INPUT, sum_range

__all__ = ["export_qonnx", "save_qonnx", "require_onnx", "qonnx_datatype", "input_values", "stored_outputs", "with_batch",
           "execute", "FLOAT_EXACT"]

FLOAT_EXACT = 1 << 24       # float32 integers are exact below this magnitude
POOL_EXACT = 1 << 20        # global pool sums whose average float32 thresholds decide exactly
DOMAIN = "qonnx.custom_op.general"


def require_onnx():
    import importlib.util
    if not all(importlib.util.find_spec(m) for m in ("onnx", "qonnx", "onnxruntime")):
        raise ConfigError("qnnfab", "qonnx", "the QONNX tools are not installed",
                          "pip install 'qnnfab[onnx]' (qonnx, onnx, onnxruntime)")


def qonnx_datatype(kind):
    """The QONNX DataType name of a :class:`~qnnfab.kinds.DataKind`."""
    if kind.kind in ("bipolar", "ternary"):
        return kind.kind.upper()
    return f"{kind.kind.upper()}{kind.bits}"


def _input_kind(cfg):
    return DataKind.of(cfg.input_kind, cfg.input_bits, f"network '{cfg.name}'")


def input_values(cfg, frames):
    """Stored input frames (B,) + input_shape (NHWC) -> the graph's float32 input (values, NCHW)."""
    v = _input_kind(cfg).values(frames).astype(np.float32)
    return np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if v.ndim == 4 else v


def stored_outputs(cfg, outputs):
    """The graph's outputs -> the golden model's stored outputs (bipolar values to bits)."""
    last = cfg.layers[-1]
    out = np.asarray(outputs)
    if last.out_kind == "bipolar":
        out = (out + 1) / 2
    return np.rint(out).astype(np.int64)


class _Graph:
    """A growing chain of nodes with named initializers and datatype annotations."""

    def __init__(self):
        from onnx import helper
        self.helper = helper
        self.nodes, self.inits, self.types = [], [], {}
        self.count = 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem, array, dtype=None):
        from onnx import numpy_helper
        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        if dtype:
            self.types[n] = dtype
        return n

    def node(self, op, inputs, stem, domain=None, **attrs):
        out = self.name(stem)
        kw = {"domain": domain} if domain else {}
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **kw, **attrs))
        return out


def _check_exact(L, where):
    w = DataKind.of(L.weight_kind, L.weight_bits, where)
    x = DataKind.of(L.in_kind, L.in_bits, where)
    n = L.kernel * L.kernel * L.in_shape[2] if L.type == "conv" else math.prod(L.in_shape)
    lo, hi = accumulator_range(n, w, x)
    if max(abs(lo), abs(hi), n) >= FLOAT_EXACT:
        raise ConfigError(where, "weights", f"accumulators reach {max(abs(lo), abs(hi))}, beyond float32's "
                          f"exact integers (2^24)", "QONNX graphs run in float32: use a smaller layer")
    return w, x, n


def _multithreshold(g, L, cur, thresholds, layout):
    """A ``MultiThreshold`` node of layer ``L``'s activation on tensor ``cur``; its output tensor."""
    out_kind = DataKind.of("bipolar") if L.act == "bipolar" else DataKind.of("uint", L.act_bits)
    attrs = dict(out_dtype=qonnx_datatype(out_kind), data_layout=layout)
    if out_kind.kind == "bipolar":
        attrs.update(out_scale=2.0, out_bias=-1.0)
    cur = g.node("MultiThreshold", [cur, g.const(f"{L.name}_T", thresholds)], f"{L.name}_act", domain=DOMAIN, **attrs)
    g.types[cur] = qonnx_datatype(out_kind)
    return cur


def _graph_layer(g, L, where, inputs, layout):
    """The nodes of an add, global_avgpool or concat layer (module docstring); its output tensor."""
    if L.type == "concat":
        cur = g.node("Concat", inputs, f"{L.name}_concat", axis=1)        # the channels, NCHW
        g.types[cur] = qonnx_datatype(DataKind.of(L.in_kind, None if L.in_kind == "bipolar" else L.in_bits, where))
        return cur
    lo, hi = sum_range(L)
    limit = FLOAT_EXACT if L.type == "add" else POOL_EXACT
    if max(abs(lo), abs(hi)) >= limit:
        raise ConfigError(where, "type", f"its sums reach {max(abs(lo), abs(hi))}, beyond what float32 decides "
                          f"exactly here ({limit})", "QONNX graphs run in float32: use a smaller layer")
    t = L.thresholds.astype(np.float64)
    if L.type == "add":
        cur = g.node("Add", inputs, f"{L.name}_add")
    else:
        cur = g.node("GlobalAveragePool", inputs[:1], f"{L.name}_gap")
        t = (t - 0.5) / (L.in_shape[0] * L.in_shape[1])
    return _multithreshold(g, L, cur, t.astype(np.float32), layout)


def export_qonnx(cfg):
    """The QONNX model of ``cfg`` (an ``onnx.ModelProto`` with datatype annotations)."""
    require_onnx()
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    g = _Graph()
    shape = cfg.input_shape
    image = len(shape) == 3
    in_shape = [1, shape[2], shape[0], shape[1]] if image else [1, shape[0]]
    tensors = {NETWORK_INPUT: ("global_in", "NCHW" if image else "NC")}     # layer name -> (tensor, layout)
    prev = NETWORK_INPUT
    for idx, L in enumerate(cfg.layers):
        where = f"layer {idx} '{L.name}'"
        sources = [tensors[name] for name in (L.inputs or (prev,))]
        cur, layout = sources[0]
        prev = L.name
        if L.type in GRAPH_TYPES:
            tensors[L.name] = (_graph_layer(g, L, where, [t for t, _ in sources], layout), layout)
            continue
        if L.type == "maxpool":
            cur = g.node("MaxPool", [cur], f"{L.name}_pool", kernel_shape=[L.kernel, L.kernel],
                         strides=[L.stride, L.stride])
            tensors[L.name] = (cur, layout)
            continue
        wk, xk, n = _check_exact(L, where)
        wvals = wk.values(L.weights).astype(np.float32)
        wtype = qonnx_datatype(wk)
        if L.type == "fc":
            if layout == "NCHW":  # the hardware flattens NHWC
                cur = g.node("Transpose", [cur], f"{L.name}_nhwc", perm=[0, 2, 3, 1])
                cur = g.node("Flatten", [cur], f"{L.name}_flat", axis=1)
                layout = "NC"
            cur = g.node("MatMul", [cur, g.const(f"{L.name}_W", wvals.T.copy(), wtype)], f"{L.name}_matmul")
        else:
            pads = [0, 0, 0, 0]
            if L.pad:
                pad_value = float(xk.values(np.array(L.pad_value)))
                if pad_value == 0.0:
                    pads = [L.pad] * 4
                else:
                    p = [0, 0, L.pad, L.pad, 0, 0, L.pad, L.pad]
                    cur = g.node("Pad", [cur, g.const(f"{L.name}_pads", np.array(p, np.int64)),
                                         g.const(f"{L.name}_padval", np.array(pad_value, np.float32))],
                                 f"{L.name}_pad", mode="constant")
            cur = g.node("Conv", [cur, g.const(f"{L.name}_W", wvals, wtype)], f"{L.name}_conv",
                         kernel_shape=[L.kernel, L.kernel], strides=[L.stride, L.stride], pads=pads)
        binary = wk.kind == "bipolar" and xk.kind == "bipolar"
        if L.act == "acc":
            if binary:  # the hardware outputs the popcount P = (D + N) / 2
                cur = g.node("Add", [cur, g.const(f"{L.name}_n", np.array(float(n), np.float32))], f"{L.name}_addn")
                cur = g.node("Mul", [cur, g.const(f"{L.name}_half", np.array(0.5, np.float32))], f"{L.name}_pop")
            tensors[L.name] = (cur, layout)
            continue
        t = L.thresholds.astype(np.int64)
        if binary:
            t = 2 * t - n
        tensors[L.name] = (_multithreshold(g, L, cur, t.astype(np.float32), layout), layout)
    cur, layout = tensors[prev]
    if layout == "NCHW":
        cur = g.node("Transpose", [cur], "to_nhwc", perm=[0, 2, 3, 1])
    g.nodes.append(helper.make_node("Identity", [cur], ["global_out"], name="output"))
    last = cfg.layers[-1]
    out_shape = [1, *last.out_shape]
    graph = helper.make_graph(
        g.nodes, cfg.name,
        [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, out_shape)],
        initializer=g.inits)
    model = helper.make_model(graph, producer_name="qnnfab",
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    wrapper = ModelWrapper(model).transform(InferShapes())
    wrapper.set_tensor_datatype("global_in", DataType[qonnx_datatype(_input_kind(cfg))])
    for name, dtype in g.types.items():
        wrapper.set_tensor_datatype(name, DataType[dtype])
    if last.out_kind != "acc":
        out_kind = DataKind.of(last.out_kind, last.out_bits, f"network '{cfg.name}'")
        wrapper.set_tensor_datatype("global_out", DataType[qonnx_datatype(out_kind)])
    return wrapper.model


def with_batch(model, batch):
    """A copy of ``model`` (batch 1 on its first axis) for ``batch`` frames at once."""
    from onnx import ModelProto
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    m = ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name not in inits:   # some exporters list the initializers as graph inputs too
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    del m.graph.value_info[:]
    return ModelWrapper(m).transform(InferShapes())


def _data_input(model):
    inits = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def execute(model, inputs):
    """Run ``model`` with qonnx's ``execute_onnx`` on a batch of graph inputs; return its output.

    The batch runs as one graph when the graph's shapes allow another batch size, else frame by
    frame (a ``Reshape`` to a fixed batch 1, as exporters write, does not)."""
    from qonnx.core.onnx_exec import execute_onnx
    inputs = np.asarray(inputs, dtype=np.float32)
    if not any(n.op_type == "Reshape" for n in model.graph.node):
        try:
            w = with_batch(model, inputs.shape[0])
        except Exception:  # noqa: BLE001  (shape inference refuses the new batch: one frame at a time)
            pass
        else:
            return execute_onnx(w, {_data_input(w): inputs})[w.graph.output[0].name]
    w = with_batch(model, 1)
    name, out = _data_input(w), w.graph.output[0].name
    return np.concatenate([execute_onnx(w, {name: inputs[i:i + 1]})[out] for i in range(inputs.shape[0])])


def save_qonnx(cfg, path):
    """Write ``cfg`` as a QONNX ``.onnx`` file."""
    import onnx
    onnx.save(export_qonnx(cfg), str(path))
