"""Readers of the standard image data set files, NumPy and the standard library only.

One entry point, :func:`read_dataset` ``(path) -> (x, y)``, recognises the file
by its content (and, for CIFAR-10 binary batches, its ``.bin`` name):

* ``.npz`` (zip magic ``PK``): ``x`` (or ``x_test``) and ``y`` (or ``y_test``) as stored;
* MNIST idx (also Fashion-MNIST, the same format), gzipped or not: the images
  file (magic 0x00000803, big-endian int32 count, rows, cols, then one byte per
  pixel); its labels file (magic 0x00000801, count, one byte per label) is
  found next to it by the standard name (``train-images-idx3-ubyte`` ->
  ``train-labels-idx1-ubyte``, also ``.gz`` and the ``images.idx3`` spelling)
  or passed as ``labels``;
* CIFAR-10 binary batches (``data_batch_1.bin`` ... ``test_batch.bin``): records
  of 1 label byte + 3072 pixel bytes, the R, G, B planes of a 32x32 image;
* CIFAR-10 Python batches (``data_batch_1`` ... ``test_batch``, pickle
  protocol >= 2): a dict with ``data`` (N, 3072) uint8 rows (R, G, B planes)
  and ``labels``. Unpickled with :class:`ArraysOnlyUnpickler`, which refuses
  every global but NumPy's array reconstruction, so a pickle cannot run code;
* a folder of PNG/JPEG images (:func:`read_images`): one subfolder per class
  (classes in sorted name order, as CIFAR-10's airplane ... truck), or the
  images themselves with an optional ``labels.txt`` (lines ``<file> <class>``).
  Grayscale images come back with 1 channel, colour ones with 3; an image of
  another size or channel count than the ``shape`` asked for is refused, never
  resized or converted.

Images come back as the file's raw pixel codes: ``x`` (B, H, W, C) uint8 in
NHWC order (MNIST (B, 28, 28, 1), CIFAR-10 (B, 32, 32, 3)), ``y`` (B,) int64;
scaling or thresholding them is the network's business. Every problem
(missing, truncated, wrong magic, wrong record size, a refused pickle) is one
:class:`~qnnfab.errors.ConfigError` naming the file and what is wrong.
"""

import gzip
import io
import math
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct
from numpy._core.numeric import _frombuffer

from qnnfab.errors import ConfigError
from qnnfab.npzfile import check_labels, read_npz

__all__ = ["read_dataset", "read_images", "npz_frames", "detect_format", "standard_test_file", "ArraysOnlyUnpickler", "FORMATS",
           "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "CIFAR_RECORD"]

#: the formats :func:`detect_format` names
FORMATS = ("npz", "idx", "cifar-binary", "cifar-python", "images")
IDX_IMAGES_MAGIC = 0x00000803   # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801   # unsigned bytes, 1 dimension
CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE
CIFAR_RECORD = 1 + CIFAR_PIXELS
CIFAR_CLASSES = 10
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)   # idx element types (u8, s8, i16, i32, f32, f64)
_FORMATS_TEXT = ("an .npz, an MNIST idx images file (...-images-idx3-ubyte[.gz]), a CIFAR-10 binary batch "
                 "(data_batch_N.bin, test_batch.bin), a CIFAR-10 Python batch (data_batch_N, test_batch) or a "
                 "folder of PNG/JPEG images")
#: image file name endings :func:`read_images` reads
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the labels file of a flat image folder: lines ``<file name> <class index>``
IMAGE_LABELS_FILE = "labels.txt"
_IMAGES_TO_LABELS = (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"))


def _plain_name(p):
    """The file name without a ``.gz`` suffix."""
    return p.name[:-3] if p.name.endswith(".gz") else p.name


def _check_file(p, where, field):
    if not p.exists():
        raise ConfigError(where, field, f"file {p} does not exist", f"give {_FORMATS_TEXT}")
    if not p.is_file():
        raise ConfigError(where, field, f"{p} is not a file", f"give {_FORMATS_TEXT}")


def _read_bytes(p, where, field):
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        data = p.read_bytes()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ConfigError(where, field, f"{p} is a truncated or damaged gzip file ({type(e).__name__}: {e})",
                          "download or unpack it again") from None
    except OSError as e:
        raise ConfigError(where, field, f"{p} cannot be read ({e})", "check the path and its permissions") from None
    return data


def detect_format(path, where=None, field="path"):
    """Which of :data:`FORMATS` the file at ``path`` holds, read from its first bytes (gunzipped if
    needed) and, for CIFAR-10 binary batches, its ``.bin`` name; None when it is missing or none of
    them (:func:`read_dataset` then says which). A damaged gzip is a ConfigError(where, field, ...)."""
    p = Path(path)
    where = where or str(p)
    if p.is_dir():
        return "images"
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as f:
            head = f.read(4)
            if head[:2] == _GZIP_MAGIC:
                f.seek(0)
                with gzip.open(f) as g:
                    head = g.read(4)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ConfigError(where, field, f"{p} is a truncated or damaged gzip file ({type(e).__name__}: {e})",
                          "download or unpack it again") from None
    except OSError as e:
        raise ConfigError(where, field, f"{p} cannot be read ({e})", "check the path and its permissions") from None
    if head[:2] == b"PK":
        return "npz"
    if _plain_name(p).endswith(".bin"):     # records start with any label and pixel bytes: the name decides
        return "cifar-binary"
    if len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_TYPES:
        return "idx"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "cifar-python"
    return None


def read_dataset(path, *, labels=None, where=None, field="path"):
    """``(x, y)`` of the data file at ``path`` (see the module docstring); ``y`` is None only for an
    ``.npz`` without labels. ``labels`` names the idx labels file when it is not next to the images
    under the standard name. Problems are ConfigError(where, field, ...) (``where`` defaults to the path)."""
    p = Path(path)
    where = where or str(p)
    if p.is_dir():
        return read_images(p, where=where, field=field)
    _check_file(p, where, field)
    fmt = detect_format(p, where, field)
    if fmt is None:
        with open(p, "rb") as f:
            head = f.read(4)
        raise ConfigError(where, field, f"{p} is not a data file qnnfab reads (it starts with bytes "
                          f"{head.hex() or 'none'})", f"give {_FORMATS_TEXT}")
    if fmt == "npz":
        _, x, _, y = npz_frames(p, where, field)
        return x, y
    if fmt == "idx":
        return _read_mnist(p, labels, where, field)
    if fmt == "cifar-binary":
        return _read_cifar_binary(p, where, field)
    return _read_cifar_python(p, where, field)


def npz_frames(p, where, field):
    """``(x name, x, y name or None, y or None)`` of the frames ``.npz`` at ``p``: ``x`` (or
    ``x_test``) and ``y`` (or ``y_test``); no frames is a ConfigError."""
    store = read_npz(p, where, field, "write it with numpy.savez(path, x=frames, y=labels)")
    xname = next((n for n in ("x", "x_test") if n in store), None)
    if xname is None:
        raise ConfigError(where, "x", f"no frames: the file has {sorted(store)}", "store the frames as x (or x_test)")
    yname = next((n for n in ("y", "y_test") if n in store), None)
    return xname, store[xname], yname, None if yname is None else store[yname]


def standard_test_file(path):
    """The standard test file next to a standard training file, if it exists:
    ``train-images-idx3-ubyte[.gz]`` -> ``t10k-images-idx3-ubyte[.gz]``,
    ``data_batch_N[.bin]`` -> ``test_batch[.bin]``; else None."""
    p = Path(path)
    name = _plain_name(p)
    if name.startswith("train-images"):
        names = ["t10k" + name[len("train"):]]
    elif re.fullmatch(r"data_batch_\d+(\.bin)?", name):
        names = ["test_batch" + (".bin" if name.endswith(".bin") else "")]
    else:
        return None
    for n in names:
        for cand in (p.with_name(n), p.with_name(n + ".gz")):
            if cand.is_file():
                return cand
    return None


# --- MNIST idx -------------------------------------------------------------------------------------------

def _parse_idx(data, p, where, field, magic, what):
    """The array of the idx file ``data`` whose magic must be ``magic`` (``what`` names it)."""
    if len(data) < 4:
        raise ConfigError(where, field, f"{p} is truncated: {len(data)} bytes, shorter than the 4-byte idx magic",
                          "download or unpack it again")
    got, = struct.unpack(">I", data[:4])
    if got != magic:
        if (got, magic) == (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
            raise ConfigError(where, field, f"{p} is an idx labels file (magic 0x{got:08x}), not images",
                              "give the images file (...-images-idx3-ubyte); its labels are read from beside it")
        raise ConfigError(where, field, f"{p} has idx magic 0x{got:08x}, {what} have 0x{magic:08x}",
                          f"give the MNIST {what} file (unsigned bytes, {magic & 0xff} dimensions)")
    ndim = magic & 0xff
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ConfigError(where, field, f"{p} is truncated: {len(data)} bytes, the idx header alone is {header}",
                          "download or unpack it again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    need = math.prod(dims)
    shape = " x ".join(map(str, dims))
    if len(data) - header != need:
        state = "truncated" if len(data) - header < need else "damaged"
        raise ConfigError(where, field, f"{p} is {state}: its header declares {shape} = {need} bytes of {what}, "
                          f"the file holds {len(data) - header}", "download or unpack it again")
    if 0 in dims:
        raise ConfigError(where, field, f"{p} holds no {what} (header {shape})", "give a file with data in it")
    return np.frombuffer(data, np.uint8, count=need, offset=header).reshape(dims)


def _labels_beside(p, where, field):
    name = _plain_name(p)
    for images, labels in _IMAGES_TO_LABELS:
        if images in name:
            base = name.replace(images, labels)
            tried = [p.with_name(base), p.with_name(base + ".gz")]
            for cand in tried:
                if cand.is_file():
                    return cand
            raise ConfigError(where, field, f"no labels file beside {p}: looked for {tried[0].name}[.gz]",
                              f"put the labels file (as distributed, {tried[0].name}[.gz]) in {p.parent}")
    raise ConfigError(where, field, f"cannot find the labels of {p}: its name is not the standard "
                      "...-images-idx3-ubyte", "keep the names as distributed (train-images-idx3-ubyte, "
                      "train-labels-idx1-ubyte, t10k-..., optionally .gz)")


def _read_mnist(p, labels, where, field):
    x = _parse_idx(_read_bytes(p, where, field), p, where, field, IDX_IMAGES_MAGIC, "images")
    lp = Path(labels) if labels is not None else _labels_beside(p, where, field)
    _check_file(lp, where, "labels")
    y = _parse_idx(_read_bytes(lp, where, "labels"), lp, where, "labels", IDX_LABELS_MAGIC, "labels")
    if len(y) != len(x):
        raise ConfigError(where, "labels", f"{lp} holds {len(y)} labels for the {len(x)} images of {p}",
                          "give the labels file of the same set (train- with train-, t10k- with t10k-)")
    return x[..., None], y.astype(np.int64)


# --- CIFAR-10 --------------------------------------------------------------------------------------------

def _chw_rows_to_nhwc(rows):
    """(B, 3072) rows of R, G, B planes of 32x32 -> (B, 32, 32, 3)."""
    return rows.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1).copy()


def _check_cifar_labels(y, p, where, field):
    y = check_labels(where, field, y, len(y))
    if y.size and y.max() >= CIFAR_CLASSES:
        k = int(np.argmax(y >= CIFAR_CLASSES))
        raise ConfigError(where, field, f"{p} has label {y[k]} at image {k}: CIFAR-10 labels are 0..9 (damaged, or "
                          "not a CIFAR-10 batch)", "download or unpack it again")
    return y


def _read_cifar_binary(p, where, field):
    data = _read_bytes(p, where, field)
    if len(data) == 0 or len(data) % CIFAR_RECORD:
        raise ConfigError(where, field, f"{p} has {len(data)} bytes, not a whole number of {CIFAR_RECORD}-byte "
                          f"CIFAR-10 records (1 label byte + {CIFAR_PIXELS} pixel bytes): truncated, or not a "
                          "CIFAR-10 binary batch", "download or unpack it again (CIFAR-100 binaries are not read)")
    rec = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD)
    return _chw_rows_to_nhwc(rec[:, 1:]), _check_cifar_labels(rec[:, 0].astype(np.int64), p, where, field)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global :class:`ArraysOnlyUnpickler` does not load."""


class ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and NumPy arrays: any global other than
    NumPy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``, ``_frombuffer``) is
    refused, so loading a pickle cannot call anything else (no ``os.system``, no imports)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused global {module}.{name} (only NumPy arrays are loaded)") from None


def _entry(d, key):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def _read_cifar_python(p, where, field):
    data = _read_bytes(p, where, field)
    fix = "give a CIFAR-10 Python batch as distributed (a pickled dict of data and labels)"
    try:
        d = ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as e:
        raise ConfigError(where, field, f"{p} is a pickle that would call code ({e})",
                          "give a CIFAR-10 Python batch as distributed (a pickled dict of arrays and lists)") from None
    except Exception as e:  # a damaged pickle fails in many ways; only allowed globals could run
        raise ConfigError(where, field, f"{p} is a truncated or damaged pickle ({type(e).__name__}: {e})",
                          "download or unpack it again") from None
    if not isinstance(d, dict):
        raise ConfigError(where, field, f"{p} holds a pickled {type(d).__name__}, a CIFAR-10 batch is a dict", fix)
    rows, y = _entry(d, "data"), _entry(d, "labels")
    if rows is None or y is None:
        keys = sorted(k.decode(errors="replace") if isinstance(k, bytes) else str(k) for k in d)
        raise ConfigError(where, field, f"{p} has keys {keys}, a CIFAR-10 batch has data and labels", fix)
    rows = np.asarray(rows) if isinstance(rows, np.ndarray) else None
    if rows is None or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != CIFAR_PIXELS:
        got = "not an array" if rows is None else f"{rows.dtype} of shape {rows.shape}"
        raise ConfigError(where, field, f"{p}: data is {got}, a CIFAR-10 batch holds (N, {CIFAR_PIXELS}) uint8 rows "
                          "(R, G, B planes of 32x32)", fix)
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as e:
        raise ConfigError(where, "labels", f"{p}: labels are not a list of integers ({e})", fix) from None
    y = check_labels(where, "labels", y, len(rows))
    return _chw_rows_to_nhwc(rows), _check_cifar_labels(y, p, where, "labels")


# --- image folders ---------------------------------------------------------------------------------------

def _image_files(folder):
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _flat_labels(folder, files, where, field):
    """Labels of the images ``files`` of a flat folder from its ``labels.txt``, or None without one."""
    path = folder / IMAGE_LABELS_FILE
    if not path.is_file():
        return None
    fix = f"write one line '<file name> <class index>' per image into {path}"
    table = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"\d+", parts[1]):
            raise ConfigError(where, field, f"{path} line {n} is {line.strip()!r}, not '<file name> <class index>'",
                              fix)
        table[parts[0]] = int(parts[1])
    missing = [f.name for f in files if f.name not in table]
    if missing:
        raise ConfigError(where, field, f"{path} has no label for {missing[0]} ({len(missing)} images lack one)", fix)
    return np.array([table[f.name] for f in files], dtype=np.int64)


def _shape_text(shape):
    return "x".join(str(d) for d in shape)


def read_images(folder, *, shape=None, where=None, field="path"):
    """``(x, y)`` of the PNG/JPEG images in ``folder`` (see the module docstring): ``x`` (B, H, W, C)
    uint8 pixels, C = 1 for grayscale and 3 for colour images, ``y`` (B,) int64 or None (a flat folder
    without ``labels.txt``). Files are taken in sorted name order (classes too).

    ``shape``: the size the network reads, ``(H, W, C)`` or ``(features,)`` (then H * W * C must equal
    it); the first image that does not match is refused, naming it: images are never resized, cropped
    or converted between grayscale and colour here. Every image must have the same size. A palette
    image is expanded to its colours; an image with transparency, 16-bit samples or another mode is
    refused."""
    from PIL import Image, UnidentifiedImageError
    folder = Path(folder)
    where = where or str(folder)
    fix = ("give a folder of PNG/JPEG images, one subfolder per class, or the images themselves "
           f"(with {IMAGE_LABELS_FILE} for their labels)")
    if not folder.is_dir():
        raise ConfigError(where, field, f"{folder} is not a folder", fix)
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    if classes and any(_image_files(d) for d in classes):
        empty = next((d for d in classes if not _image_files(d)), None)
        if empty is not None:   # dropping it would shift the labels of every later class
            raise ConfigError(where, field, f"class folder {empty} holds no {'/'.join(IMAGE_SUFFIXES)} images",
                              "put that class's images in it, or remove the folder")
        stray = _image_files(folder)
        if stray:
            raise ConfigError(where, field, f"{folder} holds class subfolders and also images ({stray[0].name}); "
                              "which class are those?", "move the images into their class subfolders")
        files = [f for d in classes for f in _image_files(d)]
        y = np.concatenate([np.full(len(_image_files(d)), k, dtype=np.int64) for k, d in enumerate(classes)])
    else:
        files = _image_files(folder)
        if not files:
            raise ConfigError(where, field, f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} images", fix)
        y = _flat_labels(folder, files, where, field)
    want = None if shape is None else tuple(int(d) for d in shape)
    x = None
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img.load()
                mode = img.mode
                if mode == "P" and "transparency" not in img.info:
                    img, mode = img.convert("RGB"), "RGB"
                pixels = np.asarray(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ConfigError(where, field, f"{f} is not an image Pillow can read ({type(e).__name__}: {e})",
                              "remove it from the folder, or save it again as PNG or JPEG") from None
        if mode not in ("L", "RGB"):
            raise ConfigError(where, field, f"{f} has Pillow mode {mode} (only 8-bit grayscale L and colour "
                              "RGB are read; transparency and 16-bit samples are not)",
                              "save it as 8-bit grayscale or RGB without transparency")
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if want is not None and pixels.shape != want and not (len(want) == 1 and pixels.size == want[0]):
            raise ConfigError(where, field, f"{f} is {_shape_text(pixels.shape)} (height x width x channels), "
                              f"the network reads {_shape_text(want)}", "resize or convert the images to that "
                              "size yourself first (qnnfab never resizes them)")
        if x is None:
            x = np.empty((len(files),) + pixels.shape, dtype=np.uint8)
        elif pixels.shape != x.shape[1:]:
            raise ConfigError(where, field, f"{f} is {_shape_text(pixels.shape)} but {files[0].name} is "
                              f"{_shape_text(x.shape[1:])}", "give images of one size and channel count")
        x[i] = pixels
    return x, y
