"""Folders of PNG/JPEG images as data (qnnfab.train.formats.read_images), and their pixels turned into a
network's input codes (sim.datafile.load_frames, qnnfab verify --input-codes).

Expected pixels are the arrays the test saved (PNG is lossless); expected codes come from the
definition of BNN-PYNQ's CIFAR-10 host preprocessing, written out with exact fractions."""

import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from qnnfab.errors import ConfigError
from qnnfab.train.formats import detect_format, read_dataset, read_images


def _save(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8), mode).save(path)


def _rgb(seed, size=(4, 5)):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def test_class_subfolders_in_sorted_order(tmp_path):
    imgs = {("cat", "b.png"): _rgb(1), ("cat", "a.png"): _rgb(2), ("airplane", "z.png"): _rgb(3)}
    for (cls, name), px in imgs.items():
        _save(tmp_path / cls / name, px)
    x, y = read_images(tmp_path, shape=(4, 5, 3))
    assert x.dtype == np.uint8 and x.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(y, [0, 1, 1])                      # airplane < cat
    for got, key in zip(x, [("airplane", "z.png"), ("cat", "a.png"), ("cat", "b.png")]):
        np.testing.assert_array_equal(got, imgs[key])
    assert detect_format(tmp_path) == "images"
    np.testing.assert_array_equal(read_dataset(tmp_path)[0], x)


def test_an_empty_class_folder_is_refused(tmp_path):
    """Classes are numbered over all subfolders: an empty one would shift every later label."""
    _save(tmp_path / "airplane" / "a.png", _rgb(1))
    (tmp_path / "bird").mkdir()
    _save(tmp_path / "cat" / "c.png", _rgb(2))
    with pytest.raises(ConfigError, match=r"class folder .*bird holds no .png/.jpg/.jpeg images") as e:
        read_images(tmp_path, shape=(4, 5, 3))
    assert "\n" not in str(e.value)
    _save(tmp_path / "bird" / "b.png", _rgb(3))
    assert read_images(tmp_path, shape=(4, 5, 3))[1].tolist() == [0, 1, 2]


def test_flat_folder_with_and_without_labels(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    _save(tmp_path / "one.png", gray)
    _save(tmp_path / "two.png", 255 - gray)
    (tmp_path / "notes.md").write_text("not an image")
    x, y = read_images(tmp_path)
    assert x.shape == (2, 4, 5, 1) and y is None
    np.testing.assert_array_equal(x[0, :, :, 0], gray)
    (tmp_path / "labels.txt").write_text("two.png 7\n\none.png 3\n")
    assert read_images(tmp_path, shape=(20,))[1].tolist() == [3, 7]   # a 1-D network: H * W * C features
    (tmp_path / "labels.txt").write_text("one.png 3\n")
    with pytest.raises(ConfigError, match="no label for two.png"):
        read_images(tmp_path)
    (tmp_path / "labels.txt").write_text("one.png 3\ntwo.png seven\n")
    with pytest.raises(ConfigError, match="line 2 is 'two.png seven'"):
        read_images(tmp_path)


def test_palette_image_is_expanded_to_its_colours(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (10, 200, 30)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    x, _ = read_images(tmp_path, shape=(2, 3, 3))
    np.testing.assert_array_equal(x[0], rgb)


@pytest.mark.parametrize("case, match", [
    ("size", r"b\.png is 4x6x3 \(height x width x channels\), the network reads 4x5x3"),
    ("gray", r"b\.png is 4x5x1 .* reads 4x5x3"),
    ("rgba", "b.png has Pillow mode RGBA"),
    ("mixed", "b.png is 4x6x3 but a.png is 4x5x3"),
    ("stray", "holds class subfolders and also images"),
    ("broken", "b.png is not an image Pillow can read"),
    ("empty", "holds no .png/.jpg/.jpeg images"),
    ("file", "is not a folder"),
])
def test_refusals_name_the_file(tmp_path, case, match):
    """A size or channel mismatch is refused, never resized or converted; so are transparency, mixed
    sizes, images beside class folders, files that are no images and empty folders."""
    root = tmp_path / "data"
    root.mkdir()
    shape = None if case == "mixed" else (4, 5, 3)
    if case != "empty":
        _save(root / "a.png", _rgb(1))
    if case in ("size", "mixed"):
        _save(root / "b.png", _rgb(2, (4, 6)))
    elif case == "gray":
        _save(root / "b.png", _rgb(2)[..., 0])
    elif case == "rgba":
        Image.fromarray(np.dstack([_rgb(2), np.full((4, 5), 128, np.uint8)]), "RGBA").save(root / "b.png")
    elif case == "stray":
        _save(root / "cls" / "c.png", _rgb(3))
    elif case == "broken":
        (root / "b.png").write_bytes(b"\x89PNG not really")
    path = root / "a.png" if case == "file" else root
    with pytest.raises(ConfigError, match=match) as e:
        read_images(path, shape=shape)
    assert "\n" not in str(e.value)


def _tiny_cnv_config(tmp_path):
    """A one-layer 4x5x3 int8 conv network config (loaded through netconfig; also written to c.toml)."""
    from qnnfab import netconfig
    np.savez(tmp_path / "c.npz", **{"conv0/weights": np.ones((2, 3, 3, 3), np.uint8)})
    text = "\n".join(['[network]', 'name = "c"', 'input_shape = [4, 5, 3]', 'input_kind = "int"', 'input_bits = 8',
                      'weights = "c.npz"', '[[layer]]', 'name = "conv0"', 'type = "conv"', 'out = 2', 'kernel = 3',
                      'act = "acc"', 'simd = 3', 'pe = 1']) + "\n"
    (tmp_path / "c.toml").write_text(text)
    return netconfig.loads(text, base_dir=tmp_path)


def test_load_frames_applies_input_codes_to_image_pixels(tmp_path):
    """With BNN-PYNQ's CIFAR-10 input codes the pixels become its host's codes; without them 8-bit
    pixels do not fit an int8 network and are refused; input codes with an .npz (already codes) are refused."""
    from qnnfab.interop.bnn_pynq import CIFAR_INPUT_CODES
    from qnnfab.sim.datafile import load_frames
    cfg = _tiny_cnv_config(tmp_path)
    px = _rgb(5)
    px[0, 0] = (0, 128, 255)
    _save(tmp_path / "img" / "k" / "a.png", px)
    x, y = load_frames(tmp_path / "img", cfg, codes=CIFAR_INPUT_CODES)

    def host(p):   # BNN-PYNQ: x = 2p/255 - 1 to ap_fixed<8,1,AP_RND,AP_SAT>
        return max(-128, min(127, math.floor((Fraction(2 * int(p), 255) - 1) * 128 + Fraction(1, 2))))
    np.testing.assert_array_equal(x[0], np.vectorize(host)(px))
    assert x[0, 0, 0].tolist() == [-128, 1, 127] and y.tolist() == [0]
    with pytest.raises(ConfigError, match=r"values span \[\d+, 255\]"):
        load_frames(tmp_path / "img", cfg)
    np.savez(tmp_path / "f.npz", x=x)
    np.testing.assert_array_equal(load_frames(tmp_path / "f.npz", cfg)[0], x)
    with pytest.raises(ConfigError, match="--input-codes: an .npz holds frames that are already input codes"):
        load_frames(tmp_path / "f.npz", cfg, codes=CIFAR_INPUT_CODES)
    _save(tmp_path / "big" / "a.png", _rgb(6, (32, 32)))
    with pytest.raises(ConfigError, match="is 32x32x3 .* the network reads 4x5x3"):
        load_frames(tmp_path / "big", cfg, codes=CIFAR_INPUT_CODES)


_GOOD_CODES = '"kind": "int8", "bits": 8, "scale": 0.0078125'


@pytest.mark.parametrize("content, match", [
    (None, "cannot be read"), ("{not json", "not an input codes file"),
    ('{"kind": "int8", "colour": 1}', "not an input codes file"),
    ('[1, 2]', "holds no JSON object"),
    ('{"bits": 8}', "kind"),                                               # a missing field
    ('{"kind": "foo", "bits": 8}', "kind 'foo' is no input kind"),
    ('{"kind": "int08", "bits": 8}', "kind 'int08' is no input kind"),
    ('{"kind": "int8", "bits": 4}', "bits 4 does not match kind 'int8'"),
    ('{' + _GOOD_CODES + ', "rounding": "XX"}', "rounding 'XX' is none of"),
    ('{' + _GOOD_CODES + ', "raw_scale": "2/255"}', "raw_scale must be a finite number, got '2/255'"),
    ('{' + _GOOD_CODES + ', "zero_point": null}', "zero_point must be a finite number"),
    ('{' + _GOOD_CODES + ', "narrow": "no"}', "narrow must be true or false"),
    ('{' + _GOOD_CODES + ', "layout": "CHW"}', "layout 'CHW' is none of"),
])
def test_verify_refuses_a_bad_input_codes_file(tmp_path, capsys, content, match):
    """qnnfab verify --input-codes: a missing or malformed file ends with exit 2, before any build."""
    from qnnfab.cli import main
    codes = tmp_path / "codes.json"
    if content is not None:
        codes.write_text(content)
    assert main(["verify", "--config", str(tmp_path / "none.toml"), "--data", str(tmp_path),
                 "--input-codes", str(codes)]) == 2
    err = capsys.readouterr().err
    assert "--input-codes" in err and match in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("data, codes, match", [
    ("f.npz", "CIFAR", "an .npz holds frames that are already input codes"),
    ("img", "MNIST", "the codes are bipolar but the network reads int8 inputs"),
])
def test_verify_refuses_input_codes_that_cannot_apply(tmp_path, capsys, data, codes, match):
    """qnnfab verify --input-codes: with an .npz (frames already codes), or codes of another kind than the
    network's input (BNN-PYNQ's bipolar MNIST codes for an int8 CNV), exit 2 before any build."""
    from qnnfab.cli import main
    from qnnfab.interop import bnn_pynq
    _tiny_cnv_config(tmp_path)
    np.savez(tmp_path / "f.npz", x=np.zeros((1, 4, 5, 3), np.int64))
    _save(tmp_path / "img" / "k" / "a.png", _rgb(5))
    (tmp_path / "codes.json").write_text(getattr(bnn_pynq, f"{codes}_INPUT_CODES").to_json())
    assert main(["verify", "--config", str(tmp_path / "c.toml"), "--data", str(tmp_path / data),
                 "--input-codes", str(tmp_path / "codes.json")]) == 2
    err = capsys.readouterr().err
    assert "--input-codes" in err and match in err and len(err.strip().splitlines()) == 1


def test_train_reads_an_image_folder_with_labels_only(tmp_path):
    """qnnfab train --data FOLDER: class subfolders give a data set; unlabelled images are refused."""
    from qnnfab.train.datasets import load_file
    for k in range(8):
        _save(tmp_path / "data" / ("dark" if k % 2 else "light") / f"{k}.png", _rgb(k, (3, 3)) // (1 + 3 * (k % 2)))
    ds = load_file(tmp_path / "data")
    assert (ds.classes, ds.input_shape, len(ds.x_train) + len(ds.x_test)) == (2, (3, 3, 3), 8)
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0] * 4 + [1] * 4
    flat = tmp_path / "flat"
    _save(flat / "a.png", _rgb(1, (3, 3)))
    with pytest.raises(ConfigError, match="have no labels"):
        load_file(flat)


def test_load_frames_gives_a_bipolar_mlp_bnn_pynq_mnist_bits(tmp_path):
    """A 1-D bipolar network on grayscale images: flattened in raster order, bit 1 for a pixel >= 128
    (BNN-PYNQ's MNIST host) with its input codes; the raw pixels without them are refused."""
    from qnnfab import netconfig
    from qnnfab.interop.bnn_pynq import MNIST_INPUT_CODES
    from qnnfab.sim.datafile import load_frames
    np.savez(tmp_path / "m.npz", **{"fc0/weights": np.ones((2, 20), np.uint8)})
    cfg = netconfig.loads("\n".join(['[network]', 'name = "m"', 'input_shape = [20]', 'input_kind = "bipolar"',
                                     'weights = "m.npz"', '[[layer]]', 'name = "fc0"', 'type = "fc"', 'out = 2',
                                     'act = "acc"']) + "\n", base_dir=tmp_path)
    gray = (np.arange(20) * 13 + 3).astype(np.uint8).reshape(4, 5)          # 3 .. 250, crossing 127/128
    gray[1, 1], gray[1, 2] = 127, 128
    _save(tmp_path / "img" / "a.png", gray)
    x, _ = load_frames(tmp_path / "img", cfg, codes=MNIST_INPUT_CODES)
    np.testing.assert_array_equal(x[0], (gray.ravel() >= 128).astype(np.int64))
    with pytest.raises(ConfigError, match="threshold the pixels"):
        load_frames(tmp_path / "img", cfg)
