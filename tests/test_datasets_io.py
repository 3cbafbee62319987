"""The standard data set readers (:mod:`qnnfab.train.formats`): MNIST idx, CIFAR-10 binary and Python
batches. Every file is built here from its format's definition (idx: big-endian magic and sizes, then
the bytes; CIFAR binary: 1 label byte + R, G, B planes of 32x32; CIFAR Python: a pickled dict), read
back and compared with the arrays it was built from; damaged files are refused with one line."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from qnnfab.cli import main
from qnnfab.errors import ConfigError
from qnnfab.train.formats import ArraysOnlyUnpickler, detect_format, read_dataset, standard_test_file

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = ROOT / "configs" / "lfc_small.toml"


def _idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def _mnist(folder, x, y, prefix="train", gz=False):
    """``prefix``-images-idx3-ubyte and its labels file for images x (B, R, C) uint8 and labels y."""
    images = _idx(0x00000803, x.shape, x.astype(np.uint8).tobytes())
    labels = _idx(0x00000801, y.shape, y.astype(np.uint8).tobytes())
    suffix = ".gz" if gz else ""
    pi = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    pl = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
    pi.write_bytes(gzip.compress(images) if gz else images)
    pl.write_bytes(gzip.compress(labels) if gz else labels)
    return pi, pl


def _cifar_record(image, label):
    """One CIFAR-10 binary record: the label byte, then the R, G and B planes (32 rows of 32) of an HWC image."""
    planes = b"".join(bytes(int(image[r, c, ch]) for r in range(32) for c in range(32)) for ch in range(3))
    return bytes([label]) + planes


def _images(n, seed=0, shape=(32, 32, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + shape, dtype=np.uint8), rng.integers(0, 10, n)


class Py2Pickler(pickle._Pickler):
    """Pickles ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as the distributed CIFAR-10
    Python batches were written (Python 2 cPickle, protocol 2)."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_py2_str


def _py2_pickle(obj):
    import io
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def _one_line(excinfo, *words):
    text = str(excinfo.value)
    assert "\n" not in text, text
    for w in words:
        assert w in text, (w, text)
    return text


# --- reading back ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_images_and_labels_beside_them(tmp_path, gz):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 5)
    pi, _ = _mnist(tmp_path, x, y, gz=gz)
    assert detect_format(pi) == "idx"
    got_x, got_y = read_dataset(pi)
    assert got_x.dtype == np.uint8 and got_x.shape == (5, 28, 28, 1)
    assert np.array_equal(got_x[..., 0], x)
    assert got_y.dtype == np.int64 and np.array_equal(got_y, y)


def test_mnist_labels_given_explicitly_and_the_dotted_spelling(tmp_path):
    x, y = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), np.array([3, 7])
    (tmp_path / "a").mkdir()
    pi = tmp_path / "a" / "t10k-images.idx3-ubyte"
    pi.write_bytes(_idx(0x803, x.shape, x.tobytes()))
    (tmp_path / "a" / "t10k-labels.idx1-ubyte").write_bytes(_idx(0x801, y.shape, y.astype(np.uint8).tobytes()))
    got_x, got_y = read_dataset(pi)
    assert np.array_equal(got_x[..., 0], x) and np.array_equal(got_y, y)
    other = tmp_path / "mine.labels"
    other.write_bytes(_idx(0x801, y.shape, y[::-1].astype(np.uint8).tobytes()))
    assert np.array_equal(read_dataset(pi, labels=other)[1], y[::-1])


@pytest.mark.parametrize("gz", [False, True])
def test_cifar_binary_batch_gives_nhwc_images(tmp_path, gz):
    x, y = _images(3)
    raw = b"".join(_cifar_record(x[i], int(y[i])) for i in range(3))
    p = tmp_path / ("data_batch_1.bin" + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(raw) if gz else raw)
    assert detect_format(p) == "cifar-binary"
    got_x, got_y = read_dataset(p)
    assert got_x.dtype == np.uint8 and got_x.shape == (3, 32, 32, 3)
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y) and got_y.dtype == np.int64
    # pixel (row 1, col 2) of image 0, green plane: byte 1 + 1024 + 1*32 + 2 of its record
    assert got_x[0, 1, 2, 1] == raw[1 + 1024 + 32 + 2]


def _cifar_rows(x):
    """(B, 3072) rows of R, G, B planes, built pixel by pixel from (B, 32, 32, 3) images."""
    return np.array([[x[i, r, c, ch] for ch in range(3) for r in range(32) for c in range(32)]
                     for i in range(len(x))], dtype=np.uint8)


@pytest.mark.parametrize("style", ["python2", "protocol5", "gz"])
def test_cifar_python_batch(tmp_path, style):
    x, y = _images(2, seed=3)
    d = {b"batch_label": b"training batch 1 of 5", b"labels": [int(v) for v in y], b"data": _cifar_rows(x),
         b"filenames": [b"a.png", b"b.png"]}
    raw = _py2_pickle(d) if style == "python2" else pickle.dumps(d, protocol=5)
    if style == "python2":
        assert b"_codecs" not in raw and b"numpy" in raw     # Python 2 str bytes, NumPy's own reconstruction
    p = tmp_path / "data_batch_1"
    p.write_bytes(gzip.compress(raw) if style == "gz" else raw)
    assert detect_format(p) == "cifar-python"
    got_x, got_y = read_dataset(p)
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y)


def test_the_standard_test_file_beside_a_training_file(tmp_path):
    x, y = np.zeros((2, 2, 2), np.uint8), np.array([0, 1])
    train, _ = _mnist(tmp_path, x, y, "train", gz=True)
    assert standard_test_file(train) is None
    t10k, _ = _mnist(tmp_path, x, y, "t10k", gz=True)
    assert standard_test_file(train) == t10k
    (tmp_path / "data_batch_2.bin").write_bytes(b"")
    (tmp_path / "test_batch.bin").write_bytes(b"")
    assert standard_test_file(tmp_path / "data_batch_2.bin") == tmp_path / "test_batch.bin"
    assert standard_test_file(tmp_path / "data_batch_2") is None


# --- refusals ------------------------------------------------------------------------------------------------

def _mnist_bytes(tmp_path):
    x, y = np.full((3, 4, 4), 9, np.uint8), np.array([1, 2, 3])
    return _mnist(tmp_path, x, y)


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[:-1], ["truncated", "3 x 4 x 4 = 48 bytes", "holds 47"]),
    (lambda b: b[:10], ["truncated", "header alone is 16"]),
    (lambda b: b + b"\0", ["damaged", "holds 49"]),
    (lambda b: b"\0\0\x08\x02" + b[4:], ["magic 0x00000802", "0x00000803"]),
    (lambda b: b"\0\0\x08\x01" + b[4:], ["labels file", "images"]),
])
def test_damaged_idx_images_are_refused(tmp_path, damage, words):
    pi, _ = _mnist_bytes(tmp_path)
    pi.write_bytes(damage(pi.read_bytes()))
    with pytest.raises(ConfigError) as e:
        read_dataset(pi)
    _one_line(e, str(pi), *words)


def test_idx_labels_missing_or_of_another_size_are_refused(tmp_path):
    pi, pl = _mnist_bytes(tmp_path)
    pl.write_bytes(_idx(0x801, (2,), b"\1\2"))
    with pytest.raises(ConfigError) as e:
        read_dataset(pi)
    _one_line(e, "2 labels for the 3 images")
    pl.unlink()
    with pytest.raises(ConfigError) as e:
        read_dataset(pi)
    _one_line(e, "no labels file", "train-labels-idx1-ubyte")
    pi.rename(tmp_path / "digits.idx")
    with pytest.raises(ConfigError) as e:
        read_dataset(tmp_path / "digits.idx")
    _one_line(e, "cannot find the labels", "train-images-idx3-ubyte")


def test_truncated_gzip_is_refused(tmp_path):
    pi, _ = _mnist(tmp_path, np.zeros((3, 8, 8), np.uint8), np.array([0, 1, 2]), gz=True)
    pi.write_bytes(pi.read_bytes()[:-12])
    with pytest.raises(ConfigError) as e:
        read_dataset(pi)
    _one_line(e, "truncated or damaged gzip")


@pytest.mark.parametrize("size, words", [(3073 * 2 - 1, ["6145 bytes", "3073-byte"]), (0, ["0 bytes"])])
def test_cifar_binary_of_a_wrong_record_size_is_refused(tmp_path, size, words):
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(bytes(size))
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, *words)


def test_cifar_binary_label_out_of_range_is_refused(tmp_path):
    x, _ = _images(2)
    p = tmp_path / "test_batch.bin"
    p.write_bytes(_cifar_record(x[0], 3) + _cifar_record(x[1], 10))
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, "label 10 at image 1", "0..9")


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("style", ["python2", "protocol5"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, style):
    marker = tmp_path / "ran"
    p = tmp_path / "data_batch_1"
    d = {b"data": _RunsCommand(marker), b"labels": [0]}
    p.write_bytes(_py2_pickle(d) if style == "python2" else pickle.dumps(d, protocol=5))
    assert b"system" in p.read_bytes()
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, "refused global", "system")
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("numpy", "load"), ("subprocess", "Popen")])
def test_the_unpickler_allows_only_numpy_array_reconstruction(module, name):
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        ArraysOnlyUnpickler(__import__("io").BytesIO(b"")).find_class(module, name)


@pytest.mark.parametrize("obj, words", [
    ([1, 2], ["pickled list"]),
    ({b"data": np.zeros((1, 3072), np.uint8)}, ["keys ['data']", "data and labels"]),
    ({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, ["uint8 of shape (1, 100)"]),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, ["1 labels for 2 frames"]),
])
def test_cifar_python_batch_of_the_wrong_shape_is_refused(tmp_path, obj, words):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, *words)


def test_truncated_pickle_is_refused(tmp_path):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=4)[:-100])
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, "truncated or damaged pickle")


def test_an_unknown_file_names_the_formats_read(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    assert detect_format(p) is None
    with pytest.raises(ConfigError) as e:
        read_dataset(p)
    _one_line(e, "not a data file", "idx", "CIFAR-10")


# --- the commands --------------------------------------------------------------------------------------------

def _cli_error(capsys, argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_verify_reads_an_idx_file(tmp_path, capsys, monkeypatch):
    """lfc_small takes 64 bipolar inputs: 8x8 idx images of 0/1 pixels go in flattened in NHWC order;
    0..255 pixels are refused with the thresholding fix."""
    from qnnfab.commands import verify
    seen = {}

    def simulate(cfg, frames, labels, seed, command="qnnfab verify", out=None):
        seen.update(frames=frames, labels=labels)
        return 0
    monkeypatch.setattr(verify, "simulate", simulate)
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 2, (6, 8, 8), dtype=np.uint8), rng.integers(0, 10, 6)
    pi, _ = _mnist(tmp_path, x, y, "t10k", gz=True)
    assert main(["verify", "--config", str(LFC_SMALL), "--data", str(pi)]) == 0
    assert np.array_equal(seen["frames"], x.reshape(6, 64)) and np.array_equal(seen["labels"], y)
    _mnist(tmp_path, x * 255, y, "t10k", gz=True)
    line = _cli_error(capsys, ["verify", "--config", LFC_SMALL, "--data", pi])
    assert "values span [0, 255]" in line and "threshold the pixels" in line and "x >= 128" in line, line


def test_train_reads_idx_files_with_their_test_set(tmp_path, capsys):
    # two classes any network separates: bright top half vs bright bottom half of 4x4 grey images
    rng = np.random.default_rng(0)

    def halves(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 60, (n, 4, 4)).astype(np.uint8)
        x[y == 0, :2] += 180
        x[y == 1, 2:] += 180
        return x, y
    folder = tmp_path / "halves"
    folder.mkdir()
    train, _ = _mnist(folder, *halves(80), "train", gz=True)
    test_x, test_y = halves(20)
    t10k, _ = _mnist(folder, test_x, test_y, "t10k", gz=True)
    rc = main(["train", "--data", str(train), "--schemes", "ste", "--hidden", "16", "--epochs", "3",
               "--out", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "training on halves: 80 train / 20 test images, MLP 16-16-2" in text, text
    # the exported network reads 8-bit pixels: verify takes the test file's raw pixels as its input codes
    from qnnfab import netconfig
    from qnnfab.sim.datafile import load_frames
    frames, labels = load_frames(t10k, netconfig.load(tmp_path / "out" / "halves-ste.toml"), field="--data")
    assert np.array_equal(frames, test_x.reshape(20, 16)) and np.array_equal(labels, test_y)


def test_a_cifar_batch_without_its_test_file_is_split(tmp_path):
    from qnnfab.train.datasets import load_file
    x, _ = _images(8, seed=7)
    y = np.array([0, 1] * 4)
    folder = tmp_path / "cifar"
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(b"".join(_cifar_record(x[i], int(y[i])) for i in range(8)))
    ds = load_file(folder / "data_batch_1.bin")
    assert (len(ds.y_train), len(ds.y_test)) == (6, 2)       # 25 % of 8 images held out
    assert ds.name == "cifar" and ds.input_shape == (32, 32, 3) and ds.pixel_bits == 8
    got = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 32, 32, 3)
    order = [np.flatnonzero((x.reshape(8, -1) == row.reshape(1, -1)).all(1))[0] for row in got]
    assert sorted(order) == list(range(8)) and np.array_equal(np.concatenate([ds.y_train, ds.y_test]), y[order])
