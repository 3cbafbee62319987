"""The accelerator folder (``accel/`` of ``qnnfab generate``): the bare network accelerator.

``<name>.v`` is :class:`qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`
(AXI4-Stream ports ``s_axis_*``, ``m_axis_*``, ``aclk``, ``aresetn``,
``label``, ``frame_error``) under the module name :func:`accelerator_name`;
``README.md`` documents its ports and word formats
(``templates/accelerator_README.md``).
"""

import math
from pathlib import Path


from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
from qnnfab.sim.build import to_verilog

from .render import render

__all__ = ["accelerator_name", "accelerator_readme", "write_accelerator"]


def accelerator_name(cfg):
    """The Verilog module (and file) name of ``cfg``'s accelerator."""
    return "qnnfab_" + "".join(c if c.isalnum() else "_" for c in cfg.name)


def padding_notes(cfg):
    """``(input, output)``: sentence tails naming the input padding (``input_pad``) and the padding rows
    of the last layer (``classes``); empty without them."""
    n = math.prod(cfg.layers[-1].out_shape)
    return (f", followed by {cfg.input_pad} padding elements of stored value 0 (`input_pad`)" if cfg.input_pad
            else "",
            f"; only the first {cfg.classes} are the network's outputs, the other {n - cfg.classes} are padding "
            "rows (`classes`) that the label ignores" if cfg.classes != n else "")


def _scores(cfg, f):
    """What the output scores are, in words (``f``: the accelerator's :class:`WordFormat`)."""
    return _score_kind(cfg, f) + padding_notes(cfg)[1]


def _score_kind(cfg, f):
    last = cfg.layers[-1]
    if last.out_kind != "acc":
        return f"the last layer's ('{last.name}') {last.out_kind} activations, {f.out_bits}-bit unsigned"
    mw = math.prod(last.in_shape) if last.type == "fc" else last.kernel ** 2 * last.in_shape[2]
    return (f"raw accumulators of the last layer '{last.name}', {f.out_bits} bits "
            + ("(two's complement: signed dot products)" if f.out_signed
               else f"(unsigned XNOR popcounts P; the bipolar dot product is 2P - {mw})"))


def accelerator_readme(cfg, top):
    """The README written next to the accelerator's Verilog: ports and word formats
    of ``top`` (an :class:`~qnnfab.rtl.axis_accelerator.AxiStreamAccelerator` of ``cfg``)."""
    f = top.format
    encoding = {"bipolar": "1 bit per element, 1 = +1, 0 = -1",
                "uint": f"unsigned {f.in_bits}-bit integers",
                "int": f"two's complement {f.in_bits}-bit integers"}[cfg.input_kind]
    sign = "signed" if f.out_signed else "unsigned"
    score_type = (f"{'int' if f.out_signed else 'uint'}{8 * f.score_bytes}" if f.score_bytes in (1, 2, 4, 8)
                  else f"{8 * f.score_bytes}-bit {sign}")
    spare = 8 * f.in_bytes - f.in_elems * f.in_bits
    return render(
        "accelerator_README.md", name=accelerator_name(cfg), network=cfg.name,
        in_width=8 * f.in_bytes, out_width=8 * f.out_bytes, label_width=len(top.label),
        label_rule={"argmax": "arg-max of the frame's scores (lowest index on ties)",
                    "highest_set_bit": "the highest index whose output bit is 1 (0 when none is; "
                                       "label = \"highest_set_bit\")"}[cfg.label],
        shape=" x ".join(str(d) for d in cfg.input_shape) + padding_notes(cfg)[0], kind=cfg.input_kind,
        encoding=encoding,
        in_words=f.in_words, in_elems=f.in_elems, in_bits=f.in_bits, last_in_word=f.in_words - 1,
        padding=f": the top {spare} bits are padding (ignored; send 0)" if spare else " (no padding)",
        n_scores=f.out_elems * f.out_words, scores=_scores(cfg, f), out_words=f.out_words,
        out_elems=f.out_elems, score_bytes=f.score_bytes, score_bits=8 * f.score_bytes,
        extension="sign-extended" if f.out_signed else "zero-extended", score_type=score_type,
        last_out_word=f.out_words - 1, slowest_cycles=f"{max(c for _, c in top.model):,}")


def write_accelerator(cfg, out_dir):
    """Write the bare accelerator's Verilog (:class:`AxiStreamAccelerator`) and its
    README (ports and word formats) into ``out_dir``; return ``(module name, path)``."""
    name = accelerator_name(cfg)
    top = AxiStreamAccelerator(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    readme = accelerator_readme(cfg, top)
    path = out / f"{name}.v"
    path.write_text(to_verilog(top, name))
    (out / "README.md").write_text(readme)
    return name, path
