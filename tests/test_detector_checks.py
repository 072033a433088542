"""The detector exercises' checks: every catalogued mistake is rejected with its own hint, mistakes
written as a student would get the hint that names them, and wrong answers outside the catalogue fail."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from mnistloc import checks
from mnistloc.checks import check, keras
from mnistloc.grading.registry import ALL_EXERCISES as EXERCISES
from mnistloc.grading.registry import PENDING

NEW = {"classic_model": ("01-single-digit", 3), "box_targets": ("02-presence", 3),
       "boxes_from_cells": ("01-single-digit", 2), "heatmap_targets": ("02-presence", 3),
       "focal_loss": ("02-presence", 3), "find_peaks": ("02-presence", 3), "iou_loss": ("03-multi-class", 3),
       "nms": ("03-multi-class", 3), "match_detections": ("04-multiple-digits", 3)}
OLD = {"place_digit", "tight_box", "union_box", "iou", "average_precision", "one_hot", "order_left_to_right",
       "build_box_head", "build_presence_head", "build_class_head", "build_count_head", "masked_box_loss"}


def test_the_detector_exercises_are_registered_beside_the_old_ones():
    assert {name: (EXERCISES[name].lesson, EXERCISES[name].points) for name in NEW} == NEW
    assert OLD <= set(checks.EXERCISES) and OLD <= set(EXERCISES)
    assert all(len(EXERCISES[name].mistakes) >= 5 for name in NEW)
    # until their cells are in the lessons, the lessons and graders count only the released exercises
    assert set(checks.EXERCISES) == set(EXERCISES) - PENDING and PENDING <= set(NEW)


@pytest.mark.parametrize("name", sorted(NEW))
def test_the_reference_passes_public_and_seeded_cases_and_a_stub_is_told_it_is_not_done(name):
    ex = EXERCISES[name]
    result = check(name, ex.reference, seed=12345)
    assert result.passed and result.points == ex.points, result.hint
    public, seeded = ex.cases(None), ex.cases(7)
    assert len(seeded) > len(public) >= 3
    assert pickle.dumps(pickle.loads(pickle.dumps(ex.cases(7)))) == pickle.dumps(seeded)  # plain data, from the seed
    assert pickle.dumps(ex.cases(8)[len(public):]) != pickle.dumps(seeded[len(public):])

    def stub(*args, **kwargs):
        raise NotImplementedError()

    assert "not done yet" in check(name, stub).hint


CATALOGUE = [(name, i) for name in sorted(NEW) for i in range(len(EXERCISES[name].mistakes))]


@pytest.mark.parametrize("name, i", CATALOGUE, ids=[f"{n}-{i}" for n, i in CATALOGUE])
def test_every_catalogued_mistake_is_rejected_on_public_cases_with_its_own_hint(name, i):
    hint, wrong = EXERCISES[name].mistakes[i]
    result = check(name, wrong)
    assert not result.passed and result.points == 0
    assert result.hint == f"{name}: {hint}"


# ---- mistakes written as a student would ---------------------------------------------------------

def heat_loop(swap=False, add=False, pixels=False):
    def heatmap_targets(boxes, mask, *, size=128, stride=8, sigma=1.0):
        g = size // stride
        out = np.zeros((len(boxes), g, g))
        for n in range(len(boxes)):
            for k in range(len(boxes[n])):
                if not mask[n][k]:
                    continue
                x0, y0, x1, y1 = boxes[n][k]
                row, col = min(int((y0 + y1) / 2 // stride), g - 1), min(int((x0 + x1) / 2 // stride), g - 1)
                if swap:
                    row, col = col, row
                for i in range(g):
                    for j in range(g):
                        d2 = ((i - row) ** 2 + (j - col) ** 2) * (stride ** 2 if pixels else 1)
                        v = np.exp(-d2 / (2 * sigma ** 2))
                        out[n, i, j] = out[n, i, j] + v if add else max(out[n, i, j], v)
        return out
    return heatmap_targets


def box_student(pixels=False, corner=False, circle=False):
    def box_targets(boxes, mask, *, size=128, stride=8, radius=1):
        g = size // stride
        dist, cells = np.zeros((len(boxes), g, g, 4)), np.zeros((len(boxes), g, g), bool)
        for n in range(len(boxes)):
            best = np.full((g, g), np.inf)
            for k in range(len(boxes[n])):
                if not mask[n][k]:
                    continue
                x0, y0, x1, y1 = boxes[n][k]
                row, col = min(int((y0 + y1) / 2 // stride), g - 1), min(int((x0 + x1) / 2 // stride), g - 1)
                for i in range(g):
                    for j in range(g):
                        near = (i - row) ** 2 + (j - col) ** 2 <= radius ** 2 if circle else \
                            abs(i - row) <= radius and abs(j - col) <= radius
                        d = (i - row) ** 2 + (j - col) ** 2
                        if near and d < best[i, j]:
                            best[i, j] = d
                            cx, cy = (j + (0 if corner else 0.5)) * stride, (i + (0 if corner else 0.5)) * stride
                            dist[n, i, j] = np.array([cx - x0, cy - y0, x1 - cx, y1 - cy]) / (1 if pixels else stride)
                            cells[n, i, j] = True
        return dist, cells
    return box_targets


def cells_student(stride_used=True, xywh=False, corner=False):
    def boxes_from_cells(distances, *, stride=8):
        d = np.array(distances, dtype=float)
        h, w = d.shape[-3], d.shape[-2]
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        off = 0 if corner else 0.5
        cx, cy = (jj + off) * stride, (ii + off) * stride
        s = stride if stride_used else 1
        x0, y0, x1, y1 = cx - d[..., 0] * s, cy - d[..., 1] * s, cx + d[..., 2] * s, cy + d[..., 3] * s
        return np.stack([x0, y0, x1 - x0, y1 - y0] if xywh else [x0, y0, x1, y1], axis=-1)
    return boxes_from_cells


def peaks_scipy(strict=False, threshold_used=True, ascending=False):
    from scipy.ndimage import maximum_filter

    def find_peaks(heatmap, *, k=10, threshold=0.0):
        heat = np.asarray(heatmap, float)
        n, h, w = heat.shape
        rows, cols, scores = np.full((n, k), -1), np.full((n, k), -1), np.zeros((n, k), np.float32)
        for b in range(n):
            footprint = np.ones((3, 3), bool)
            footprint[1, 1] = not strict
            best = maximum_filter(heat[b], footprint=footprint, mode="constant", cval=-np.inf)
            ok = heat[b] > best if strict else heat[b] >= best
            if threshold_used:
                ok &= heat[b] >= threshold
            found = [(heat[b, i, j], i, j) for i, j in zip(*np.nonzero(ok))]
            found.sort(key=lambda t: t[0] if ascending else -t[0])  # a stable sort: row-major on ties
            for slot, (s, i, j) in enumerate(found[:k]):
                rows[b, slot], cols[b, slot], scores[b, slot] = i, j, s
        return rows, cols, scores
    return find_peaks


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def nms_student(ascending=False, chain=False, ge=False):
    def nms(boxes, scores, iou_threshold):
        order = sorted(range(len(scores)), key=lambda i: scores[i] if ascending else -scores[i])
        keep, gone = [], set()
        for i in order:
            if i not in gone:
                keep.append(i)
            if i in gone and not chain:
                continue
            for j in order:
                o = _iou(boxes[i], boxes[j])
                if j != i and (o >= iou_threshold if ge else o > iou_threshold):
                    gone.add(j)
        return np.array(keep, dtype=int)
    return nms


def focal_student(normalise=True, sign=1.0, beta_on_centres=False):
    def focal_loss(y_true, y_pred, alpha=2.0, beta=4.0):
        ops = keras.ops
        p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
        centre = ops.cast(ops.equal(y_true, 1.0), "float32")
        weight = (1 - y_true) ** beta
        pos = centre * (1 - p) ** alpha * ops.log(p) * (weight if beta_on_centres else 1)
        neg = (1 - centre) * weight * p ** alpha * ops.log(1 - p)
        total = -sign * ops.sum(pos + neg)
        return total / ops.maximum(ops.sum(centre), 1.0) if normalise else total
    return focal_loss


def iou_loss_student(masked=True, clamp=True, minus=True):
    def iou_loss(y_true, y_pred):
        ops = keras.ops
        m = y_true[..., 0]
        l, t, r, b = (y_true[..., i] for i in range(1, 5))
        pl, pt, pr, pb = (y_pred[..., i] for i in range(4))
        w = ops.minimum(l, pl) + ops.minimum(r, pr)
        h = ops.minimum(t, pt) + ops.minimum(b, pb)
        inter = ops.maximum(w, 0.0) * ops.maximum(h, 0.0) if clamp else w * h
        union = (l + r) * (t + b) + ops.maximum(pl + pr, 0.0) * ops.maximum(pt + pb, 0.0) - (inter if minus else 0)
        loss = 1 - inter / ops.maximum(union, 1e-6)
        return ops.sum(m * loss) / ops.maximum(ops.sum(m), 1.0) if masked else ops.mean(loss)
    return iou_loss


def match_student(by_score=True, reuse=False, strict=False):
    def match_detections(pred_boxes, scores, true_boxes, iou_threshold):
        order = sorted(range(len(scores)), key=lambda i: -scores[i]) if by_score else range(len(scores))
        out, used = np.full(len(scores), -1), set()
        for d in order:
            best, best_iou = -1, -1.0
            for g in range(len(true_boxes)):
                o = _iou(pred_boxes[d], true_boxes[g])
                ok = (reuse or g not in used) and (o > iou_threshold if strict else o >= iou_threshold)
                if ok and o >= best_iou:  # equal IoUs: the later true box, as the lesson says (COCO)
                    best, best_iou = g, o
            if best >= 0:
                out[d] = best
                used.add(best)
        return out
    return match_detections


def classic_student(box="sigmoid", pool="avg", fixed=False, hidden="relu"):
    def classic_model(*, size=128, filters=(16, 32, 64), units=128, case=1):  # case 1: the lesson's model
        L = keras.layers
        inputs = keras.Input((size, size))
        x = L.Rescaling(1.0 / 255)(L.Reshape((size, size, 1))(inputs))
        for f in ((16, 32, 64) if fixed else filters):
            x = L.Conv2D(f, (3, 3), activation="relu")(x)
            x = L.AveragePooling2D(2)(x) if pool == "avg" else L.MaxPool2D(2)(x)
        x = L.Flatten()(x)
        x = L.Dense(128 if fixed else units, activation=hidden)(x)
        out = {}
        if case in (1, 2):
            out["presence"] = L.Dense(1, activation="sigmoid", name="presence")(x)
        if case == 3:
            out["class"] = L.Dense(10, activation="softmax", name="class")(x)
        if case in (1, 2, 3):
            out["box"] = L.Dense(4, activation=box, name="box")(x)
        if case == 4:
            out["count"] = L.Dense(3, activation="softmax", name="count")(x)
            out["boxes"] = L.Reshape((2, 4), name="boxes")(L.Dense(8, activation="sigmoid")(x))
            out["classes"] = L.Softmax(axis=-1, name="classes")(L.Reshape((2, 10))(L.Dense(20)(x)))
        return keras.Model(inputs, out)
    return classic_model


STUDENT_WRONG = [  # (exercise, a student's wrong implementation, a phrase the hint must contain)
    ("heatmap_targets", heat_loop(swap=True), "x and y swapped"),
    ("heatmap_targets", heat_loop(add=True), "not their sum"),
    ("heatmap_targets", heat_loop(pixels=True), "sigma is in cells"),
    ("box_targets", box_student(pixels=True), "divide the pixel distances by stride"),
    ("box_targets", box_student(corner=True), "top-left corner"),
    ("box_targets", box_student(circle=True), "not a circle"),
    ("boxes_from_cells", cells_student(stride_used=False), "multiply them by stride"),
    ("boxes_from_cells", cells_student(xywh=True), "not xywh"),
    ("boxes_from_cells", cells_student(corner=True), "top-left corner"),
    ("find_peaks", peaks_scipy(strict=True), "still a peak"),
    ("find_peaks", peaks_scipy(threshold_used=False), "below `threshold`"),
    ("find_peaks", peaks_scipy(ascending=True), "descending score"),
    ("nms", nms_student(ascending=True), "descending score"),
    ("nms", nms_student(chain=True), "drops nothing"),
    ("nms", nms_student(ge=True), "an IoU equal to it stays"),
    ("focal_loss", focal_student(normalise=False), "number of centres"),
    ("focal_loss", focal_student(sign=-1.0), "wrong sign"),
    ("focal_loss", focal_student(beta_on_centres=True), "weighs only the cells that are not centres"),
    ("iou_loss", iou_loss_student(masked=False), "not masked"),
    ("iou_loss", iou_loss_student(clamp=False), "at least 0"),
    ("iou_loss", iou_loss_student(minus=False), "overlap twice"),
    ("match_detections", match_student(by_score=False), "descending score"),
    ("match_detections", match_student(reuse=True), "at most once"),
    ("match_detections", match_student(strict=True), "(>=, not >)"),
    ("classic_model", classic_student(box="linear"), "activation='sigmoid'"),
    ("classic_model", classic_student(pool="max"), "AveragePooling2D"),
    ("classic_model", classic_student(fixed=True), "`filters` and `units`"),
]


@pytest.mark.parametrize("name, wrong, phrase", STUDENT_WRONG,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(STUDENT_WRONG)])
def test_a_students_mistake_gets_the_hint_that_names_it(name, wrong, phrase):
    result = check(name, wrong, seed=99)
    assert not result.passed and result.points == 0
    assert phrase in result.hint, result.hint


# ---- right answers written another way pass; wrong answers outside the catalogue fail ------------

RIGHT = [("heatmap_targets", heat_loop()), ("box_targets", box_student()), ("boxes_from_cells", cells_student()),
         ("find_peaks", peaks_scipy()), ("nms", nms_student()), ("focal_loss", focal_student()),
         ("iou_loss", iou_loss_student()), ("match_detections", match_student()), ("classic_model", classic_student())]


@pytest.mark.parametrize("name, func", RIGHT, ids=[name for name, _ in RIGHT])
def test_a_right_answer_written_another_way_passes_public_and_secret_cases(name, func):
    result = check(name, func, seed=2024)
    assert result.passed, result.hint


def _peaks_5x5(heatmap, *, k=10, threshold=0.0):
    from scipy.ndimage import maximum_filter

    heat = np.asarray(heatmap, float)
    rows, cols, scores = np.full((len(heat), k), -1), np.full((len(heat), k), -1), np.zeros((len(heat), k))
    for b in range(len(heat)):
        ok = (heat[b] >= maximum_filter(heat[b], size=5, mode="constant", cval=-np.inf)) & (heat[b] >= threshold)
        found = sorted(((heat[b, i, j], i, j) for i, j in zip(*np.nonzero(ok))), key=lambda t: -t[0])[:k]
        for s, (v, i, j) in enumerate(found):
            rows[b, s], cols[b, s], scores[b, s] = i, j, v
    return rows, cols, scores


def _nms_against_best_only(boxes, scores, iou_threshold):
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    if not order:
        return np.zeros(0, int)
    return np.array([i for i in order if i == order[0] or _iou(boxes[order[0]], boxes[i]) <= iou_threshold])


OUTSIDE = [
    ("heatmap_targets", lambda boxes, mask, **kw: np.where(heat_loop()(boxes, mask, **kw) > 0.2,
                                                           heat_loop()(boxes, mask, **kw), 0)),  # cut at 0.2
    ("box_targets", lambda boxes, mask, **kw: tuple(np.round(a, 1) if a.dtype != bool else a
                                                    for a in box_student()(boxes, mask, **kw))),
    ("boxes_from_cells", lambda d, *, stride=8: cells_student()(d, stride=stride) + 1),
    ("find_peaks", _peaks_5x5),
    ("nms", _nms_against_best_only),
    ("focal_loss", lambda y_true, y_pred, **kw: focal_student()(y_true, y_pred, **kw) * 0.5),
    ("iou_loss", lambda y_true, y_pred: iou_loss_student()(y_true, y_pred) ** 2),
    ("match_detections", lambda p, s, t, thr: match_student()(p, s, t, 0.1)),  # any overlap at all
    ("classic_model", classic_student(hidden="tanh")),  # the same structure: its outputs differ
]


@pytest.mark.parametrize("name, wrong", OUTSIDE, ids=[name for name, _ in OUTSIDE])
def test_a_wrong_answer_outside_the_catalogue_fails_without_a_catalogued_hint(name, wrong):
    result = check(name, wrong, seed=7)
    assert not result.passed and result.points == 0
    assert result.hint not in {f"{name}: {hint}" for hint, _ in EXERCISES[name].mistakes}, result.hint


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_catalogued_mistake_that_raises_is_never_named_for_another_error_of_its_type(name):
    # by its type alone, a mistake that raises would match any student's exception of that type
    ex = EXERCISES[name]
    for case in ex.cases(None):
        for hint, wrong in ex.mistakes:
            out = ex.call(wrong, case)
            if out.get("type") == "error":
                other = {**out, "message": "something else went wrong"}
                assert ex.mistake_hint(other, case, ex.expected(case)) != hint, (hint, case["note"])
                assert ex.mistake_hint(out, case, ex.expected(case)) is not None


def test_a_crash_is_reported_as_a_crash_not_as_a_catalogued_mistake():
    def crashes(*, size=128, filters=(16, 32, 64), units=128):
        raise TypeError("my bug")

    result = check("classic_model", crashes)
    assert not result.passed and "raised TypeError: my bug" in result.hint


# ---- the mis-hints and raw outputs, written as a student would (tests/mistakes/detector.py) -------

def _student(name):
    from mistakes import detector as corpus
    return getattr(corpus, name)


@pytest.mark.parametrize("exercise,wrong,phrase", [
    ("heatmap_targets", "heat_sigma_not_squared", "sigma is squared too"),  # was: "the 2 is missing"
    ("heatmap_targets", "heat_no_two", "the factor 2 is missing"),
    ("nms", "nms_over_smaller", "not the intersection over the smaller box"),  # was: "an IoU equal to it stays"
    ("nms", "nms_ge", "an IoU equal to it stays"),
    ("box_targets", "box_last_writes", "not the slot written last"),  # was: the tie hint
    ("box_targets", "box_lt_swapped", "l + r is the box's width"),  # was: "got -0.25, expected 0.25"
    ("find_peaks", "peaks_divmod_by_h", "at its (row, col)"),  # was: a raw comparison
])
def test_a_mistake_the_catalogue_once_misnamed_gets_its_own_hint(exercise, wrong, phrase):
    result = check(exercise, _student(wrong))
    assert not result.passed and phrase in result.hint, result.hint
