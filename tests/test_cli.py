"""The ``mnistloc`` command for data and show (demo: ``test_demo.py``), run as a user would, in a temporary folder."""
import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mnistloc.canvas import CanvasDataset, make_dataset


def run(tmp_path, *args):
    """``python -m mnistloc ARGS`` in ``tmp_path`` with the bundled digits; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if k != "MNISTLOC_MNIST"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no cached full MNIST: the bundled digits
    return subprocess.run([sys.executable, "-m", "mnistloc", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_data_writes_npz_and_coco(tmp_path):
    r = run(tmp_path, "data", "--case", 4, "--count", 30, "--seed", 3, "--split", "test",
            "--out", "d.npz", "--coco", "coco")
    assert r.returncode == 0, r.stderr
    assert "wrote 30 canvases of case 4 to d.npz" in r.stdout
    back = CanvasDataset.load(tmp_path / "d.npz")
    expected = make_dataset(4, 30, seed=3, split="test")  # the CLI calls the library, nothing more
    assert back.case == 4 and back.split == "test"
    for f in ("images", "boxes", "mask", "classes", "count", "digit_ids"):
        assert np.array_equal(getattr(back, f), getattr(expected, f)), f
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "coco" / "instances.json"))
    assert len(gt.getImgIds()) == 30 and len(gt.getAnnIds()) == expected.count.sum()
    assert len(list((tmp_path / "coco").glob("*.png"))) == 30


def test_show_writes_a_png(tmp_path):
    r = run(tmp_path, "show", "--case", 2, "--count", 6, "--out", "pics/grid.png")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "pics" / "grid.png") as im:
        assert im.format == "PNG"


def test_outputs_are_not_overwritten_without_force(tmp_path):
    assert run(tmp_path, "data", "--case", 1, "--count", 5, "--out", "d.npz").returncode == 0
    before = (tmp_path / "d.npz").read_bytes()
    r = run(tmp_path, "data", "--case", 1, "--count", 5, "--seed", 9, "--out", "d.npz")
    assert r.returncode == 2 and "d.npz exists; pass --force" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "d.npz").read_bytes() == before
    r = run(tmp_path, "data", "--case", 1, "--count", 5, "--seed", 9, "--out", "d.npz", "--force")
    assert r.returncode == 0 and (tmp_path / "d.npz").read_bytes() != before

    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "instances.json").write_text("{}")  # an earlier export
    r = run(tmp_path, "data", "--case", 1, "--count", 5, "--out", "new.npz", "--coco", "coco")
    assert r.returncode == 2 and "instances.json exists" in r.stderr
    assert not (tmp_path / "new.npz").exists() and (tmp_path / "coco" / "instances.json").read_text() == "{}"

    (tmp_path / "grid.png").write_bytes(b"mine")
    r = run(tmp_path, "show", "--case", 1, "--out", "grid.png")
    assert r.returncode == 2 and "--force" in r.stderr and (tmp_path / "grid.png").read_bytes() == b"mine"


@pytest.mark.parametrize("args, named", [
    (["data", "--case", "6", "--out", "x.npz"], "--case"),
    (["data", "--case", "1", "--count", "0", "--out", "x.npz"], "--count"),
    (["data", "--case", "1", "--count", "ten", "--out", "x.npz"], "--count"),
    (["data", "--case", "1", "--split", "val", "--out", "x.npz"], "--split"),
    (["data", "--case", "1"], "--out"),
    (["show", "--case", "x", "--out", "x.png"], "--case"),
    (["show", "--case", "1", "--out", "x.jpg"], "--out should be a .png file"),
    (["data", "--case", "1", "--out", "x"], "--out should be a .npz file"),
    (["data", "--case", "1", "--out", "x.npz", "--mnist", "missing.npz"], "missing.npz"),
    (["nonsense"], "nonsense"),
    (["leaderboard", "course", "--bonus", "0.7"], "--bonus"),
    (["leaderboard", "course", "--bonus", "1.5=2"], "--bonus"),
    (["leaderboard", "course", "--bonus", "0.7=-1"], "--bonus"),
    (["evaluate", "shipped", "--case", "6"], "--case"),
])
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, args, named):
    r = run(tmp_path, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert named in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.npz").exists()
