"""The checks: references pass, typical wrong implementations fail with a hint naming the mistake,
secret cases never leak expected values, outputs are plain picklable data, test cells stay quiet."""
from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnistloc import checks
from mnistloc.checks import EXERCISES, CheckFailure, check, check_exercise, keras
from mnistloc.grading import judge
from mnistloc.grading.exercises.base import BrokenCheck
from mnistloc.grading.exercises.outputs import compare
from mnistloc.grading.sandbox import Outcome

REPO = Path(__file__).resolve().parents[1]

DESIGN_NAMES = {"tight_box", "place_digit", "union_box", "iou", "average_precision", "one_hot",
                "order_left_to_right", "build_box_head", "build_presence_head", "build_class_head",
                "build_count_head", "masked_box_loss"}


def test_every_exercise_of_the_design_is_checked():
    assert DESIGN_NAMES <= set(EXERCISES)
    assert set(checks.REFERENCES) == set(EXERCISES)
    assert {ex.lesson for ex in EXERCISES.values()} == set(checks.LESSONS)


def _solution_functions() -> dict:
    """Each exercise as the solution notebooks write it: code independent of the ``mnistloc`` reference."""
    funcs = {}
    for lesson in checks.LESSONS:
        for name, source in judge.read_answers(REPO / "solutions" / lesson / f"{lesson}.ipynb").sources.items():
            namespace: dict = {}
            exec(checks.PRELUDE + source, namespace)
            funcs[name] = namespace[name]
    return funcs


SOLUTIONS = _solution_functions()


def _broken(reference):
    def broken(*args, **kwargs):
        raise RuntimeError("a broken reference")
    return broken


@pytest.mark.parametrize("name", sorted(SOLUTIONS))  # every exercise is in a solution: tests/test_lessons.py
def test_an_independent_solution_passes_public_and_seeded_cases_and_fails_against_a_broken_reference(name):
    result = check(name, SOLUTIONS[name], seed=12345)
    assert result == checks.Result(name, EXERCISES[name].points, EXERCISES[name].points, "passed", "")
    ex = EXERCISES[name]
    case = ex.cases(None)[0]
    broken = dataclasses.replace(ex, reference=_broken(ex.reference))
    with pytest.raises(CheckFailure):  # the judge compares with the reference, not with itself
        broken.judge(ex.call(SOLUTIONS[name], case), case, secret=False)


def test_the_reference_output_is_remembered_by_case_content_and_by_reference():
    ex = EXERCISES["iou"]
    case = ex.cases(None)[0]
    first = ex.expected(case)
    assert ex.expected(pickle.loads(pickle.dumps(case))) is first  # the same content: computed once
    other = {**case, "args": [np.asarray(a) + 1 for a in case["args"]]}
    assert compare(ex.expected(other), ex.call(ex.reference, other)) is None
    halved = dataclasses.replace(ex, reference=lambda a, b: ex.reference(a, b) / 2)
    assert compare(halved.expected(case), first) is not None  # another reference is never served the first's
    summed = dataclasses.replace(ex, run=lambda func, c: float(np.sum(func(*c["args"]))))
    assert summed.expected(case)["type"] != first["type"]  # nor another way of running it (a model's properties)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_cases_are_plain_data_and_depend_only_on_the_seed(name):
    ex = EXERCISES[name]
    public, seeded = ex.cases(None), ex.cases(7)
    assert len(seeded) > len(public) >= 3
    again = pickle.loads(pickle.dumps(ex.cases(7)))
    assert pickle.dumps(again) == pickle.dumps(seeded)
    assert pickle.dumps(ex.cases(8)[len(public):]) != pickle.dumps(seeded[len(public):])
    got = ex.call(ex.reference, public[0])  # what the sandbox sends back: the same after a pickle round trip
    assert compare(pickle.loads(pickle.dumps(got)), got) is None and got["type"] != "error"


def test_unknown_exercise_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="name='nope'"):
        check("nope", lambda: None)


def test_not_a_function():
    result = check("iou", 42)
    assert not result.passed and "expected a function" in result.hint


# ---- typical wrong implementations, written as a student would ------------------------------------

def stub(*args, **kwargs):
    raise NotImplementedError()


def place_swapped(canvas, digit, x, y):
    out = canvas.copy()
    out[x:x + 28, y:y + 28] = digit
    return out


def place_in_place(canvas, digit, x, y):
    canvas[y:y + 28, x:x + 28] = digit
    return canvas


def place_added(canvas, digit, x, y):
    out = canvas.copy()
    out[y:y + 28, x:x + 28] += digit
    return out


def place_float(canvas, digit, x, y):
    out = canvas.astype(float)
    out[y:y + 28, x:x + 28] = digit
    return out


def tight_swapped(image):
    rows, cols = np.nonzero(image)
    if len(rows) == 0:
        return np.zeros(4, np.float32)
    return np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1], np.float32)


def tight_inclusive(image):
    rows, cols = np.nonzero(image)
    if len(rows) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], np.float32)


def tight_crashes_on_empty(image):
    rows, cols = np.nonzero(image)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def tight_frame(image):
    return np.array([0, 0, image.shape[1], image.shape[0]], np.float32)


def iou_unclamped(a, b):
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0)


def iou_plus_one(a, b):
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def iou_nan(a, b):
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def iou_double_counted(a, b):
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a) + area(b)
    return np.where(union > 0, w * h / np.where(union > 0, union, 1), 0)


def iou_xywh(a, b):
    a = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], 1)
    b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
    return checks.REFERENCES["iou"](a, b)


def union_no_mask(boxes, mask):
    return np.concatenate([boxes[:, :, :2].min(1), boxes[:, :, 2:].max(1)], 1).astype(np.float32)


def union_swapped(boxes, mask):
    m = mask[..., None]
    lo = np.where(m, boxes[..., :2], -np.inf).max(1)
    hi = np.where(m, boxes[..., 2:], np.inf).min(1)
    return np.where(mask.any(1)[:, None], np.concatenate([lo, hi], 1), 0).astype(np.float32)


def union_inf(boxes, mask):
    m = mask[..., None]
    return np.concatenate([np.where(m, boxes[..., :2], np.inf).min(1),
                           np.where(m, boxes[..., 2:], -np.inf).max(1)], 1).astype(np.float32)


def onehot_eye(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels]


def onehot_int(labels, num_classes):
    return (np.asarray(labels)[..., None] == np.arange(num_classes)).astype(int)


def onehot_off_by_one(labels, num_classes):
    return (np.asarray(labels)[..., None] == np.arange(1, num_classes + 1)).astype(np.float32)


def _reorder(order, boxes, classes, mask, move_classes=True):
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)  # noqa: E731
    return take(boxes), take(classes) if move_classes else classes, take(mask)


def order_by_y(boxes, classes, mask):
    return _reorder(np.argsort(np.where(mask, boxes[..., 1], np.inf), 1, kind="stable"), boxes, classes, mask)


def order_ignores_mask(boxes, classes, mask):
    return _reorder(np.argsort(boxes[..., 0], 1, kind="stable"), boxes, classes, mask)


def order_classes_stay(boxes, classes, mask):
    return _reorder(np.argsort(np.where(mask, boxes[..., 0], np.inf), 1, kind="stable"), boxes, classes, mask,
                    move_classes=False)


def ap_unsorted(scores, matched, num_true):
    tp = np.cumsum(matched)
    precision, recall = tp / np.arange(1, len(tp) + 1), tp / num_true
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0
                          for r in np.linspace(0, 1, 101)]))


def ap_no_envelope(scores, matched, num_true):
    if len(scores) == 0:
        return 0.0
    tp = np.cumsum(np.asarray(matched)[np.argsort(-np.asarray(scores), kind="stable")])
    precision, recall = tp / np.arange(1, len(tp) + 1), tp / num_true
    return float(np.mean([precision[np.argmax(recall >= r)] if (recall >= r).any() else 0
                          for r in np.linspace(0, 1, 101)]))


def ap_recall_over_detections(scores, matched, num_true):
    if len(scores) == 0:
        return 0.0
    tp = np.cumsum(np.asarray(matched)[np.argsort(-np.asarray(scores), kind="stable")])
    precision, recall = tp / np.arange(1, len(tp) + 1), tp / len(scores)
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0
                          for r in np.linspace(0, 1, 101)]))


def _head(out_units, activation=None, hidden_fixed=None, padding="same", pool=False, named=True):
    def build(channels=64, hidden=64, name="head", num_classes=10, max_count=2):
        n = {"classes": num_classes, "count": max_count + 1}.get(out_units, out_units)
        f = keras.Input(shape=(None, None, channels))
        if pool:
            x = keras.layers.Conv2D(hidden_fixed or hidden, 1, activation="relu")(f)
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.Model(f, keras.layers.Dense(n, activation=activation)(x), name=name if named else None)
        x = keras.layers.Conv2D(hidden_fixed or hidden, 3, padding=padding, activation="relu")(f)
        return keras.Model(f, keras.layers.Conv2D(n, 1, activation=activation)(x), name=name if named else None)
    return build


def loss_unmasked(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred))


def loss_batch_mean(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.mean(y_true[..., 0] * err)


def loss_nan_when_empty(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.sum(y_true[..., 0] * err) / keras.ops.sum(y_true[..., 0])


def loss_squared(y_true, y_pred):
    err = keras.ops.mean(keras.ops.square(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.sum(y_true[..., 0] * err) / keras.ops.maximum(keras.ops.sum(y_true[..., 0]), 1.0)


def loss_numpy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    err = np.abs(y_true[..., 1:] - y_pred).mean(-1)
    return (y_true[..., 0] * err).sum() / max(y_true[..., 0].sum(), 1)


WRONG = [  # (exercise, wrong implementation, a phrase the hint must contain)
    ("place_digit", place_swapped, "x and y swapped"),
    ("place_digit", place_in_place, "in place"),
    ("place_digit", place_added, "not +="),
    ("place_digit", place_float, "uint8"),
    ("tight_box", tight_swapped, "x and y swapped"),
    ("tight_box", tight_inclusive, "off by one"),
    ("tight_box", tight_crashes_on_empty, "no ink"),
    ("tight_box", tight_frame, "frame"),
    ("iou", iou_unclamped, "not clamped at zero"),
    ("iou", iou_plus_one, "off by one"),
    ("iou", iou_nan, "NaN"),
    ("iou", iou_double_counted, "overlap twice"),
    ("iou", iou_xywh, "wrong box format"),
    ("union_box", union_no_mask, "unused slots"),
    ("union_box", union_swapped, "intersection"),
    ("union_box", union_inf, "infinities"),
    ("one_hot", onehot_eye, "-1"),
    ("one_hot", onehot_int, "float32"),
    ("one_hot", onehot_off_by_one, "off by one"),
    ("order_left_to_right", order_by_y, "x and y swapped"),
    ("order_left_to_right", order_ignores_mask, "unused slots go last"),
    ("order_left_to_right", order_classes_stay, "move together"),
    ("average_precision", ap_unsorted, "descending score"),
    ("average_precision", ap_no_envelope, "envelope"),
    ("average_precision", ap_recall_over_detections, "num_true"),
    ("build_box_head", _head(4, "relu"), "linear"),
    ("build_box_head", _head(4, hidden_fixed=64), "`hidden`"),
    ("build_box_head", _head(4, padding="valid"), "padding='same'"),
    ("build_box_head", _head(4, named=False), "name=name"),
    ("build_presence_head", _head(1), "logits instead of probabilities"),
    ("build_presence_head", _head(1, "softmax"), "always 1"),
    ("build_presence_head", _head(1, "sigmoid", hidden_fixed=64), "`hidden`"),
    ("build_class_head", _head("classes", "sigmoid"), "softmax"),
    ("build_class_head", _head("classes"), "logits instead of probabilities"),
    ("build_class_head", _head(10, "softmax"), "num_classes"),
    ("build_count_head", _head("count", "softmax"), "GlobalAveragePooling2D"),
    ("build_count_head", _head(3, "softmax", pool=True), "max_count + 1"),
    ("build_count_head", _head("count", "sigmoid", pool=True), "softmax"),
    ("masked_box_loss", loss_unmasked, "not masked"),
    ("masked_box_loss", loss_batch_mean, "sum of the mask"),
    ("masked_box_loss", loss_nan_when_empty, "NaN"),
    ("masked_box_loss", loss_squared, "absolute error"),
    ("masked_box_loss", loss_numpy, "keras.ops"),
]


def head_valid_padding(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, activation="relu")(features)  # padding left at "valid": the map shrinks
    return keras.Model(features, keras.layers.Conv2D(outputs, 1, activation=activation)(x), name=name)


def head_no_relu(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same")(features)  # no ReLU: two convolutions, one linear map
    return keras.Model(features, keras.layers.Conv2D(outputs, 1, activation=activation)(x), name=name)


def head_always_linear(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    return keras.Model(features, keras.layers.Conv2D(outputs, 1)(x), name=name)  # `activation` never used


WRONG += [
    ("build_head", head_valid_padding, "padding"),
    ("build_head", head_no_relu, "relu"),
    ("build_head", head_always_linear, "activation"),
]


def test_at_least_three_wrong_implementations_per_exercise():
    """Student-written mistakes (here, in tests/test_detector_checks.py and tests/test_nms_sweep.py); every exercise's registered
    mistakes are exercised by tests/test_judge.py."""
    from test_assembly import STUDENT_WRONG as CAPSTONE_WRONG  # lesson 5's capstone, tested there
    from test_detector_checks import STUDENT_WRONG  # the detector exercises' own, tested there
    from test_nms_sweep import STUDENT_WRONG as CROWD_WRONG  # lesson 5's, tested there

    wrong = WRONG + STUDENT_WRONG + CROWD_WRONG + CAPSTONE_WRONG
    counts = {name: sum(w[0] == name for w in wrong) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("name,wrong,phrase", WRONG, ids=[f"{w[0]}-{w[1].__name__}-{i}" for i, w in
                                                           enumerate(WRONG)])
def test_a_typical_mistake_is_rejected_with_a_hint_naming_it(name, wrong, phrase):
    result = check(name, wrong)
    assert not result.passed and result.points == 0
    assert result.hint.startswith(f"{name}: ")
    assert phrase in result.hint, result.hint
    assert "AssertionError" not in result.hint


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_a_stub_is_told_it_is_not_done(name):
    result = check(name, stub)
    assert not result.passed and "not done yet" in result.hint


# ---- secret cases -------------------------------------------------------------------------------

def _memorised_iou():
    """An iou that returns the reference's answers to the public cases it has seen, zeros otherwise."""
    ex = EXERCISES["iou"]
    table = {np.asarray(c["args"][0]).tobytes() + np.asarray(c["args"][1]).tobytes():
             ex.reference(*c["args"]) for c in ex.cases(None)}
    return lambda a, b: table.get(np.asarray(a).tobytes() + np.asarray(b).tobytes(), np.full(len(a), 0.5))


def test_a_hard_coded_answer_passes_public_cases_and_fails_secret_ones_without_seeing_expected_values():
    memorised = _memorised_iou()
    assert check("iou", memorised).passed
    result = check("iou", memorised, seed=99)
    assert not result.passed
    assert "hidden test case" in result.hint and "expected" not in result.hint
    case = EXERCISES["iou"].cases(99)[-1]
    with pytest.raises(CheckFailure) as info:
        EXERCISES["iou"].judge(EXERCISES["iou"].call(memorised, case), case, secret=True)
    expected = EXERCISES["iou"].reference(*case["args"])
    assert all(f"{v:.4f}" not in info.value.hint for v in expected if 0 < v < 1)


def test_public_failures_do_show_the_case_and_the_expected_value():
    result = check("iou", lambda a, b: np.full(len(a), 0.5))
    assert "expected" in result.hint and "for two pairs of boxes, a=[0, 0, 10, 10], b=[5, 0, 25, 10]" in result.hint


# ---- notebook test cells ------------------------------------------------------------------------

def test_check_exercise_prints_points_or_raises_check_failure(capsys):
    check_exercise("one_hot", EXERCISES["one_hot"].reference)
    assert capsys.readouterr().out == "one_hot: 2/2 points\n"
    with pytest.raises(CheckFailure) as info:
        check_exercise("one_hot", onehot_eye)
    assert isinstance(info.value, AssertionError) and "-1" in info.value.hint


def test_check_exercise_secret_uses_the_environment_seed(monkeypatch, capsys):
    monkeypatch.setenv(checks.SECRET_SEED_ENV, "314")
    assert checks.secret_seed() == 314
    check_exercise("iou", EXERCISES["iou"].reference, secret=True)
    assert capsys.readouterr().out == "iou: hidden tests passed\n"
    with pytest.raises(CheckFailure, match="hidden test case"):
        check_exercise("iou", _memorised_iou(), secret=True)
    monkeypatch.setenv(checks.SECRET_SEED_ENV, "abc")
    with pytest.raises(ValueError, match="MNISTLOC_SECRET_SEED"):
        checks.secret_seed()


def test_keras_checks_write_nothing_to_stderr(capfd):
    """nbgrader scores a test cell 0 when anything reaches stderr; Keras and TensorFlow like to write there."""
    check_exercise("build_class_head", EXERCISES["build_class_head"].reference)
    check_exercise("masked_box_loss", EXERCISES["masked_box_loss"].reference)
    out, err = capfd.readouterr()
    assert err == ""
    assert "build_class_head: 3/3 points" in out


def test_a_warning_in_student_code_does_not_reach_stderr(capfd):
    def noisy(a, b):  # correct, but divides by zero for empty boxes before np.where picks 0
        import warnings
        warnings.warn("a student's warning")
        return checks.REFERENCES["iou"](a, b)
    check_exercise("iou", noisy)
    assert capfd.readouterr().err == ""


def test_importing_the_checks_stays_light():
    code = ("import sys, mnistloc.checks; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- both raised: agreement only where the reference raises on purpose -----------------------------

def _raises(exc):
    def func(*args, **kwargs):
        raise exc("boom")
    return func


@pytest.mark.parametrize("name", ["iou", "nms", "match_detections"])
def test_a_reference_that_raises_on_every_case_fails_its_own_check_instead_of_agreeing_with_itself(name):
    ex = EXERCISES[name]
    broken = dataclasses.replace(ex, reference=_raises(RuntimeError))
    case = ex.cases(None)[0]
    with pytest.raises(BrokenCheck, match="the check is broken"):
        broken.judge(broken.call(broken.reference, case), case, secret=False)
    result = judge.judge(broken, [(case, False, Outcome(name, "ok", broken.call(broken.reference, case)))])
    assert not result.passed


def test_an_error_agrees_only_with_the_same_documented_error_of_the_reference():
    ex = EXERCISES["iou"]
    documented = dataclasses.replace(ex, reference=_raises(ValueError),
                                     fixed=lambda: [{**c, "raises": "ValueError"} for c in ex.fixed()])
    case = documented.fixed()[0]
    documented.judge(documented.call(_raises(ValueError), case), case, secret=False)  # the same error: agreement
    with pytest.raises(CheckFailure, match="raised TypeError: boom"):  # another error: named, with its message
        documented.judge(documented.call(_raises(TypeError), case), case, secret=False)
    with pytest.raises(CheckFailure, match="should raise ValueError"):
        documented.judge(documented.call(lambda a, b: np.full(len(a), 7.0), case), case, secret=False)
    undocumented = {k: v for k, v in case.items() if k != "raises"}
    with pytest.raises(BrokenCheck, match="documents no error"):
        documented.judge(documented.call(_raises(ValueError), undocumented), undocumented, secret=False)


# ---- errors said plainly ----------------------------------------------------------------------------

def test_terminal_colour_codes_are_stripped_from_a_students_error():
    from mnistloc.grading.exercises.outputs import plain_message

    assert plain_message("\x1b[1mValueError\x1b[0m: \x1b[31mbad\x1b[0m thing") == "ValueError: bad thing"
    result = check("iou", _raises(lambda m: ValueError("\x1b[31mred\x1b[0m text")))
    assert "\x1b" not in result.hint and "red text" in result.hint


def test_keras_shape_errors_become_a_sentence():
    """Real Keras errors: a model built for a fixed input size, and a Dense layer fed the wrong width."""
    from mnistloc.grading.exercises.outputs import error

    inputs = keras.Input(shape=(4, 4, 3))
    fixed = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(Exception) as info:
        fixed(np.zeros((1, 5, 6, 3), np.float32))
    said = error(info.value)["message"]
    assert "got an input of shape" in said and "\x1b" not in said, said
    dense = keras.layers.Dense(3)
    dense.build((None, 8))
    with pytest.raises(Exception) as info:
        dense(np.zeros((2, 5), np.float32))
    said = error(info.value)["message"]
    assert said.startswith(("the layer", "two tensors", "arrays of shapes")), said


# ---- a violated property is named before the raw comparison -----------------------------------------

def iou_unclamped_and_nan(a, b):  # outside the catalogue: both mistakes at once
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def test_a_mistake_outside_the_catalogue_gets_the_violated_property_then_the_public_case():
    result = check("iou", iou_unclamped_and_nan)
    assert result.hint.startswith("iou: an IoU lies within [0, 1]"), result.hint
    assert "There, the result is [" in result.hint and "expected [" in result.hint  # got, expected
    assert "[0, 0, 10, 10], [5, 5, 15, 15] (partial overlap" in result.hint  # the inputs of the public case


def test_a_violated_property_on_a_hidden_case_shows_no_input_nor_value():
    ex = EXERCISES["iou"]
    case = ex.cases(5)[-1]
    with pytest.raises(CheckFailure) as info:
        ex.judge(ex.call(iou_unclamped_and_nan, case), case, secret=True)
    assert info.value.hint == "iou: an IoU lies within [0, 1] (a number, never NaN), but not in your answer on a " \
                              "hidden test case."


def test_iou_is_checked_for_symmetry():
    def over_first(a, b):  # intersection over the first box's area: not symmetric
        w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
        h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
        area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
        return np.where(area > 0, w * h / np.where(area > 0, area, 1), 0)
    assert "iou(a, b) equals iou(b, a)" in check("iou", over_first).hint


def test_no_hint_hands_place_digit_its_answer_line():
    hints = [h for h, _ in EXERCISES["place_digit"].mistakes] + [p.text for p in EXERCISES["place_digit"].properties]
    assert not any("[y:" in h or "[x:" in h for h in hints)
