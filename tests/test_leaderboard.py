"""`mnistloc leaderboard` on a small hostile class: statuses, ranks, scores checked independently, safe pages.

The class: a hand-wired detector (built-in layers, weights set by hand, so it
finds digits without training), an untrained tiny case 5 model, a ``Lambda``
model, a registered custom layer, a wrong-shape model, a 1 GB sparse file, a
not-a-zip, a symbolic link, a FIFO, a student who saved nothing, a nested model whose
``compile_config`` holds a Lambda, terminal escapes and bidirectional controls in
a model's text and an id, a hard link, a student named ``reference`` and a stray
file in ``submitted/``. One CLI run scores all of them on 24 hidden canvases.
"""
from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnistloc import cli, evaluation, models, pretrained
from mnistloc.grading import leaderboard as lb
from mnistloc.grading import model_child, results

from course import nbgrader

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("leaderboard")]  # one class run, on one worker
keras = models.keras
layers = models.layers
SEED = 4242
N = 24


def _heads(x, classes: int = 10, grid_pool: int = 8):
    """Hand-set 1x1 heads over ink density (B, 16, 16, 1): presence rises with ink, boxes 3 cells wide."""
    presence = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(12.0),
                             bias_initializer=keras.initializers.Constant(-1.0))(x)
    box = layers.Conv2D(4, 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(1.4))(x)
    cls = layers.Conv2D(classes, 1, activation="softmax", kernel_initializer="zeros")(x)
    return {"presence": presence, "box": box, "class": cls}


def hand_model(size: int = 128) -> keras.Model:
    """Ink density per 8x8 cell -> presence; constant 22 px boxes; uniform classes. Finds digits untrained."""
    image = keras.Input(shape=(size, size))
    x = layers.Reshape((size, size, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    x = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = layers.AveragePooling2D(8)(x)
    return keras.Model(image, _heads(x))


def lambda_model() -> keras.Model:
    image = keras.Input(shape=(128, 128))
    x = layers.Lambda(lambda t: keras.ops.expand_dims(t, -1) / 255.0)(image)
    return keras.Model(image, _heads(layers.AveragePooling2D(8)(x)))


@keras.saving.register_keras_serializable(package="evil")
class Evil(layers.Layer):
    def call(self, x):
        return x


def custom_model() -> keras.Model:
    image = keras.Input(shape=(128, 128))
    x = Evil()(layers.Reshape((128, 128, 1))(image))
    return keras.Model(image, _heads(layers.AveragePooling2D(8)(x)))


def heavy_model() -> keras.Model:
    """Right shapes, slow on purpose: eight 3x3 convolutions of 64 channels at full resolution."""
    image = keras.Input(shape=(128, 128))
    x = layers.Reshape((128, 128, 1))(image)
    for _ in range(8):
        x = layers.Conv2D(64, 3, padding="same")(x)
    return keras.Model(image, _heads(layers.AveragePooling2D(8)(x)))


def _zip_with_config(path: Path, config: dict) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", "{}")


def nested_compiled(path: Path) -> None:
    """hand_model inside a functional model, the nested one carrying a compile_config whose loss is a Lambda
    (Keras compiles a nested model from it while loading, in safe mode)."""
    image = keras.Input(shape=(128, 128))
    keras.Model(image, hand_model()(image)).save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    inner = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Functional")
    inner["compile_config"] = {"loss": {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                                        "config": {"function": {"class_name": "__lambda__", "config": {}}}}}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    sub = root / "submitted"

    def folder(student: str) -> Path:
        path = sub / student / lb.LESSON
        path.mkdir(parents=True)
        return path / lb.MODEL_FILE

    hand_model().save(folder("ada"))
    models.build_model(5, widths=(4, 4, 4), hidden=4).save(folder("bob"))
    lambda_model().save(folder("lambda"))
    custom_model().save(folder("custom"))
    wrong = keras.Input(shape=(64, 64))
    keras.Model(wrong, _heads(layers.AveragePooling2D(4)(layers.Reshape((64, 64, 1))(wrong)))).save(folder("wrong"))
    with open(folder("huge"), "wb") as f:
        f.truncate(1 << 30)  # 1 GB, sparse: costs no disk
    folder("notzip").write_bytes(b"this is not a zip file\n" * 50)
    os.symlink("/etc/passwd", folder("link"))
    os.mkfifo(folder("fifo"))
    (sub / "nothing" / lb.LESSON).mkdir(parents=True)
    hand_model().save(folder("bad\x1bid"))  # a terminal escape in a student id
    outside = root / "elsewhere"
    outside.mkdir()
    hand_model().save(outside / lb.MODEL_FILE)
    (sub / "escape").mkdir()
    os.symlink(outside, sub / "escape" / lb.LESSON)  # a lesson folder that leads out of submitted/
    nested_compiled(folder("nested"))
    _zip_with_config(folder("escapes"), {"class_name": "Functional", "module": "keras", "config": {"layers": [
        {"class_name": "X\x1b]2;pwned\x07\x1b[2J\u202e", "module": "evil\x1b[31m", "config": {}}]}})
    hand_model().save(root / "copy.keras")
    os.link(root / "copy.keras", folder("hardlink"))  # a second name of a file the grader may read
    hand_model().save(folder("reference"))  # a student whose id is the reference row's name
    (sub / "stray.txt").write_text("not a folder\n")
    (sub / "rtl\u202eevil").mkdir()  # a bidirectional control in an id
    (root / "secret_seed").write_text(str(SEED))
    reference = root / "reference.keras"
    hand_model().save(reference)
    return root, reference


@pytest.fixture(scope="module")
def board(course, tmp_path_factory):
    root, reference = course
    out = tmp_path_factory.mktemp("board")
    os.environ.pop("MNISTLOC_SECRET_SEED", None)
    code = cli.main(["leaderboard", str(root), "--out", str(out), "--canvases", str(N), "--timeout", "90",
                     "--reference", str(reference)])
    assert code == 0
    with open(out / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["student"]: r for r in rows if r["entry"] == "student"}, rows, out


def test_each_submission_gets_its_status(board):
    by_student, _, _ = board
    assert {s: r["status"] for s, r in by_student.items()} == {
        "ada": "ok", "bob": "ok", "lambda": "forbidden-layer", "custom": "custom-object", "wrong": "wrong-shape",
        "huge": "too-large", "notzip": "not-a-keras-file", "link": "not-a-file", "fifo": "not-a-file",
        "nothing": "missing", "bad\\x1bid": "bad-id", "escape": "not-a-file", "nested": "forbidden-layer",
        "escapes": "custom-object", "hardlink": "not-a-file", "reference": "ok", "stray.txt": "not-a-folder",
        "rtl\\u202eevil": "bad-id"}
    assert "compile_config" in by_student["nested"]["message"] and "links" in by_student["hardlink"]["message"]
    assert "Lambda" in by_student["lambda"]["message"]
    assert "(None, 128, 128)" in by_student["wrong"]["message"]


def test_scores_match_an_independent_run_of_the_same_model(board, course):
    """The sandbox's numbers equal running the model here on the same hidden canvases and decoding them."""
    by_student, _, _ = board
    ds = lb.hidden_canvases(SEED, N)
    model = keras.saving.load_model(course[0] / "submitted" / "ada" / lb.LESSON / lb.MODEL_FILE)
    want = evaluation.score(5, ds, {k: np.asarray(v) for k, v in model.predict(ds.images, verbose=0).items()})
    got = by_student["ada"]
    for key in ("map", "map50", "count_accuracy"):
        assert float(got[key]) == pytest.approx(want[key], abs=1e-4)
    assert want["map50"] > 0.01  # the hand-wired model finds some digits (0.018 on these canvases)
    assert int(got["parameters"]) == model.count_params()
    assert float(got["ms_per_canvas"]) > 0


def test_ranks_follow_map_and_the_reference_is_shown_unranked(board):
    _, rows, _ = board
    scored = [r for r in rows if r["status"] == "ok"]
    maps = [float(r["map"]) for r in scored]
    assert maps == sorted(maps, reverse=True)
    assert [r["rank"] for r in scored if r["entry"] == "student"] == ["1", "2", "3"]  # ada, reference (a student), bob
    ada, bob = (next(r for r in scored if r["student"] == s) for s in ("ada", "bob"))
    assert float(ada["map"]) > float(bob["map"])  # hand-wired beats untrained
    ref = next(r for r in rows if r["entry"] == "reference")
    assert ref["status"] == "ok" and ref["rank"] == "" and ref["map"] == ada["map"]  # the same model
    assert all(r["rank"] == "" for r in rows if r["status"] != "ok")


def test_the_page_escapes_every_text(board):
    _, _, out = board
    page = (out / "leaderboard.html").read_text()
    assert "<td>ada</td>" in page and "forbidden-layer" in page
    entries = [lb.Entry("<script>alert(1)</script>", status="load-error", message="<img src=x onerror=y>")]
    page = lb.to_html(entries, 3)
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page


def test_no_terminal_escape_or_bidi_control_reaches_any_output(board, capsys):
    _, rows, out = board
    written = (out / "leaderboard.csv").read_text(encoding="utf-8") + (out / "leaderboard.html").read_text()
    assert not any(c in written for c in ("\x1b", "\x07", "\u202e")), [r for r in rows if "\x1b" in str(r)]
    escapes = next(r for r in rows if r["student"] == "escapes")
    assert "pwned" in escapes["message"]  # the text stays, its control characters go


def test_a_student_named_reference_keeps_a_row_of_their_own(board):
    _, rows, _ = board
    named = [(r["entry"], r["rank"] != "") for r in rows if r["student"] == "reference"]
    assert sorted(named) == [("reference", False), ("student", True)]


@pytest.mark.parametrize("kind", ["deflate", "encrypted", "lzma"])
def test_a_corrupt_zip_is_not_a_keras_file(tmp_path, kind):
    # zlib.error, RuntimeError and LZMAError crashed the child instead of a status (finding 13).
    path = tmp_path / "model.keras"
    method = zipfile.ZIP_LZMA if kind == "lzma" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("config.json", json.dumps({"config": {"layers": list(range(2000))}}))
    data = bytearray(path.read_bytes())
    if kind == "encrypted":
        for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the flag bits of both headers
            i = data.index(sig)
            data[i + at] |= 1
    else:
        start = 30 + len("config.json") + 20
        data[start:start + 40] = bytes(40)  # the compressed stream, zeroed in its middle
    with pytest.raises(model_child.Refused) as err:
        model_child.read_config(bytes(data), lb.MAX_BYTES)
    assert err.value.status == "not-a-keras-file"


class _Replies:
    """Stands in for a compromised model child: the framed replies given, then its death."""

    def __init__(self, *messages: bytes):
        self.chunks = [b"".join(len(m).to_bytes(8, "big") + m for m in messages)]

    def read(self, deadline):
        return self.chunks.pop(0) if self.chunks else b""


@pytest.mark.parametrize("reply", [b"[" * 30_000 + b"]" * 30_000, b'{"status": []}', b'{"status": {"a": 1}}',
                                   b'{"status": "ok", "parameters": [], "ms_per_canvas": "x"}'])
def test_a_malformed_reply_costs_only_its_model(reply):
    # RecursionError in the reply's decoding and TypeError at the status lookup stopped the whole run (finding 14).
    with pytest.raises(lb.Refused) as err:
        header, _ = lb._collect(_Replies(b'{"phase": "warm"}', reply), 4, 10)
        lb._numbers(header)
    assert err.value.status == "crash"


def test_a_model_that_runs_too_long_times_out(course, tmp_path):
    path = tmp_path / "model.keras"
    heavy_model().save(path)
    ds = lb.hidden_canvases(SEED, 64)
    row = lb.score_model(path, ds, student="slow", timeout=1.0)
    assert row.status == "timeout" and row.map is None


def test_outputs_with_nan_are_refused():
    ds = lb.hidden_canvases(SEED, 2)
    sizes = [2 * 16 * 16 * c for c in model_child.CONTRACT.values()]
    flat = np.zeros(sum(sizes), dtype=np.float32)
    flat[5] = np.nan
    with pytest.raises(lb.Refused) as err:
        lb.score_outputs(ds, flat.tobytes())
    assert err.value.status == "bad-output"


@pytest.mark.parametrize("config, status", [
    ({"class_name": "Functional", "module": "keras", "config": {"layers": [
        {"class_name": "Sequential", "module": "keras", "config": {"layers": [
            {"class_name": "Lambda", "module": "keras.layers", "config": {}}]}}]}}, "forbidden-layer"),
    ({"class_name": "Functional", "module": "keras", "config": {"layers": [
        {"class_name": "Dense", "module": "keras.layers", "config": {"activation": {
            "class_name": "function", "module": "builtins", "config": "evil", "registered_name": "function"}}}]}},
     "custom-object"),
    ({"class_name": "Functional", "module": "keras", "config": {"layers": [
        {"class_name": "__lambda__", "config": {"code": "AAAA"}}]}}, "forbidden-layer"),
    ({"class_name": "MyModel", "module": "__main__", "config": {}}, "custom-object"),
    ({"class_name": "Conv2D", "module": "keras.layers", "registered_name": "pkg>Conv2D", "config": {}},
     "custom-object"),
])
def test_vetting_refuses_code_anywhere_in_the_architecture(config, status):
    with pytest.raises(model_child.Refused) as err:
        model_child.vet(config, keras)
    assert err.value.status == status


def test_vetting_accepts_the_reference_architecture(tmp_path):
    path = tmp_path / "ref.keras"
    models.compile_model(models.build_model(5, widths=(4, 4, 4), hidden=4)).save(path)
    data = path.read_bytes()
    model_child.vet(model_child.read_config(data, lb.MAX_BYTES), keras)  # raises if refused


def test_a_zip_bomb_config_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps({"config": {}}) + " " * (model_child.MAX_CONFIG + 10))
    with pytest.raises(model_child.Refused) as err:
        model_child.read_config(path.read_bytes(), lb.MAX_BYTES)
    assert err.value.status == "too-large"


def test_bad_arguments_name_themselves(course, tmp_path):
    with pytest.raises(ValueError, match="submitted"):
        lb.leaderboard(tmp_path)
    with pytest.raises(ValueError, match="canvases"):
        lb.leaderboard(course[0], canvases=0, out=tmp_path)


@pytest.mark.skipif(5 not in pretrained.available(), reason="no shipped case 5 weights")
def test_the_shipped_reference_scores_as_the_weights_do_in_process(tmp_path):
    """``reference="shipped"``: the package's weights, saved as .keras and run in the confined child, score on
    the hidden canvases what the same weights score when this process predicts with them."""
    (tmp_path / "submitted").mkdir()
    (tmp_path / "secret_seed").write_text(str(SEED))
    entries = lb.leaderboard(tmp_path, reference="shipped", canvases=N, timeout=90)
    assert [(e.student, e.entry, e.status) for e in entries] == [("reference", "reference", "ok")]
    assert (tmp_path / "mnistloc_leaderboard" / "reference.keras").is_file()
    ds = lb.hidden_canvases(SEED, N)
    expected = evaluation.score(5, ds, evaluation.predict(pretrained.model(5), ds))
    for key in ("map", "map50", "count_accuracy"):  # as the in-process check of a student's model above
        assert getattr(entries[0], key) == pytest.approx(expected[key], abs=1e-4), key


def test_bonus_points_go_to_the_highest_threshold_reached():
    thresholds = {0.5: 1, 0.7: 2, 0.6: 1.5}
    assert results.bonus_points({"a": 0.72, "b": 0.65, "c": 0.5, "d": 0.49}, thresholds) == {
        "a": 2.0, "b": 1.5, "c": 1.0}


def test_bonus_becomes_extra_credit_in_nbgraders_export(board, course, tmp_path):
    """`--bonus` on a real gradebook (lesson 5 generated by nbgrader): ada's map clears the threshold, bob's
    does not; once the cell is graded, `nbgrader export` counts the extra credit; a different bonus is
    refused over it without --force."""
    root, _ = course
    by_student, _, _ = board
    nbgrader("generate_assignment", lb.LESSON, "--force", course=root, release_dir=tmp_path / "release")
    threshold = (float(by_student["ada"]["map"]) + float(by_student["bob"]["map"])) / 2
    assert cli.main(["leaderboard", str(root), "--out", str(tmp_path / "board"), "--canvases", str(N),
                     "--student", "ada", "--student", "bob", "--bonus", f"{threshold}=1.5",
                     "--bonus", "1=4"]) == 0
    from nbgrader.api import Gradebook

    with Gradebook(*results._gradebook_url(root)) as gb:
        cell = gb.find_grade(lb.BONUS_CELL, lb.LESSON, lb.LESSON, "ada")
        assert cell.extra_credit == 1.5
        cell.auto_score = 3.0  # as `mnistloc grade` or `nbgrader autograde` would set it
        gb.db.commit()
        assert [s.student.id for s in gb.assignment_submissions(lb.LESSON)] == ["ada"]  # bob: below it
    nbgrader("export", "--to", str(tmp_path / "export.csv"), course=root)
    with open(tmp_path / "export.csv", newline="") as f:
        exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(f) if r["assignment"] == lb.LESSON}
    assert exported["ada"] == 3.0 + 1.5
    with pytest.raises(FileExistsError, match="ada"):
        results.record_bonus(root, {"ada": 4.0}, lb.LESSON, lb.BONUS_CELL)
    assert results.record_bonus(root, {"ada": 4.0}, lb.LESSON, lb.BONUS_CELL, force=True) == 1
    with pytest.raises(ValueError, match="generate_assignment"):
        results.record_bonus(root, {"ada": 1.0}, "99-nothing", lb.BONUS_CELL)

