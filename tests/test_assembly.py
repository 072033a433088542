"""Lesson 5's capstone exercises (``mnistloc.grading.exercises.assembly``): independent solutions written with loops
pass them, the references give the worked numbers, and a student's typical mistakes get the hint that names them."""
from __future__ import annotations

import numpy as np
import pytest

from mnistloc import canvas, decoder, targets
from mnistloc.checks import EXERCISES, check
from mnistloc.grading.exercises import assembly

NAMES = ("bump_sigmas", "detector_targets", "detect_digits")


def bump_loop(boxes, stride=8):
    b = np.asarray(boxes, np.float64)
    out = np.zeros(b.shape[:-1], np.float32)
    for idx in np.ndindex(out.shape):
        x0, y0, x1, y1 = b[idx]
        out[idx] = max(0.5, 0.4 * (max(x1 - x0, 0) * max(y1 - y0, 0)) ** 0.5 / stride)
    return out


def targets_loop(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Each slot's bump drawn by heatmap_fn at its own width (one call per box), owners found cell by cell."""
    n, k, g = len(boxes), boxes.shape[1], size // 8
    sig = np.asarray(sigma_fn(boxes))
    heat = np.zeros((n, g, g))
    for i in range(n):
        for s in range(k):
            one = heatmap_fn(boxes[i:i + 1, s:s + 1], mask[i:i + 1, s:s + 1], size=size, stride=8, sigma=float(sig[i, s]))
            heat[i] = np.maximum(heat[i], one[0])
    dist, cells = box_fn(boxes, mask, size=size, stride=8)
    cls = np.zeros((n, g, g, 10))
    for i in range(n):
        centres = [(int((b[1] + b[3]) / 2 // 8), int((b[0] + b[2]) / 2 // 8)) for b in boxes[i]]
        for r in range(g):
            for c in range(g):
                if cells[i, r, c]:
                    d2 = [(r - cr) ** 2 + (c - cc) ** 2 if mask[i, s] else np.inf for s, (cr, cc) in enumerate(centres)]
                    cls[i, r, c, classes[i, int(np.argmin(d2))]] = 1
    w = np.where(cells, heat, 0)[..., None]
    return {"presence": heat[..., None].astype(np.float32), "box": np.concatenate([w, dist], -1).astype(np.float32),
            "class": np.concatenate([w, cls], -1).astype(np.float32)}


def detect_loop(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    rows, cols, scores = peaks_fn(outputs["presence"][..., 0], k=k)
    every = cells_fn(outputs["box"])
    side = outputs["box"].shape[1] * 8
    result = ([], [], [])
    for i in range(len(rows)):
        found = [j for j in range(k) if rows[i, j] >= 0]
        b = np.array([np.clip(every[i, rows[i, j], cols[i, j]], 0, side) for j in found]).reshape(-1, 4)
        s = np.array([scores[i, j] for j in found])
        dets = []
        for j in nms_fn(b, s, iou_threshold):
            p = outputs["class"][i, rows[i, found[j]], cols[i, found[j]]]
            dets.append((s[j] * p.max(), int(p.argmax()), b[j]))
        dets = sorted((d for d in dets if d[0] >= min_score), key=lambda d: -d[0])
        result[0].append(np.array([d[2] for d in dets], np.float32).reshape(-1, 4))
        result[1].append(np.array([d[1] for d in dets], np.int64))
        result[2].append(np.array([d[0] for d in dets], np.float32))
    return result


@pytest.mark.parametrize("name, func", [("bump_sigmas", bump_loop), ("detector_targets", targets_loop),
                                        ("detect_digits", detect_loop)])
def test_an_independent_loop_passes_public_and_seeded_cases(name, func):
    result = check(name, func, seed=2027)
    assert result.passed and result.points == EXERCISES[name].points, result.hint


def test_the_capstone_has_at_least_five_named_mistakes_each_and_its_points():
    assert {n: EXERCISES[n].points for n in NAMES} == {"bump_sigmas": 2, "detector_targets": 4, "detect_digits": 4}
    assert all(len(EXERCISES[n].mistakes) >= 5 for n in NAMES)


def test_bump_sigmas_reference_grows_at_least_twofold_from_a_12_to_a_45_px_digit():
    # 0.4 * 12 / 8 = 0.6 cells; 0.4 * 45 / 8 = 2.25 cells: 3.75 times as wide; an inverted box: the floor 0.5
    got = EXERCISES["bump_sigmas"].reference(np.float32([[0, 0, 12, 12], [0, 0, 45, 45], [9, 9, 1, 1]]))
    np.testing.assert_allclose(got, [0.6, 2.25, 0.5], rtol=1e-6)


def test_detect_digits_reference_gives_the_worked_numbers_of_its_first_public_case():
    case = EXERCISES["detect_digits"].cases(None)[0]
    boxes, labels, scores = assembly._run_detect(EXERCISES["detect_digits"].reference, case)
    # canvas 0: softmax of a logit 6 among nine zeros = e^6 / (e^6 + 9) = 0.97818; of 5: 0.94283
    np.testing.assert_allclose(boxes[0], [[12, 12, 36, 28], [20, 12, 44, 28], [44, 44, 64, 64]])
    assert labels[0].tolist() == [3, 3, 7]
    np.testing.assert_allclose(scores[0], [0.9 * 0.97818, 0.8 * 0.94283, 0.6 * 0.97818], rtol=1e-4)
    # canvas 1: class 4 at e^2.3 / (e^2.3 + e^1.9 + 8) = 0.40447, scored 0.3 x that; the cell's 16 px box
    np.testing.assert_allclose(boxes[1], [[4, 36, 20, 52]])
    np.testing.assert_allclose(scores[1], [0.3 * 0.40447], rtol=1e-4)
    # canvas 2: the boxes overlap by IoU 0.6 > 0.5: the higher presence (0.7, class 1 at e^1.2 / (e^1.2 + 9)) stays
    assert labels[2].tolist() == [1]
    np.testing.assert_allclose(scores[2], [0.7 * np.exp(1.2) / (np.exp(1.2) + 9)], rtol=1e-4)


def test_detector_targets_on_canvases_agrees_with_the_package_encoder_and_its_power_trick():
    ds = canvas.make_dataset(5, 8, seed=3)
    got = targets_loop(ds.boxes, ds.classes, ds.mask, targets.heatmap_targets, targets.box_targets,
                       targets.size_sigmas)
    ref = targets.encode_targets(ds.boxes, ds.classes, ds.mask, sigma="size")
    np.testing.assert_allclose(got["presence"], ref["presence"], atol=1e-6)
    np.testing.assert_allclose(got["box"], ref["box"], atol=1e-6)
    weighted = ref["class"][..., :1] > 0
    np.testing.assert_allclose(got["class"] * weighted, ref["class"] * weighted, atol=1e-6)
    # the power trick of the lesson: the unit bump to the power 1 / s^2 is the bump of width s
    unit = targets.heatmap_targets(ds.boxes[:, :1], ds.mask[:, :1], sigma=1.0)
    s = targets.size_sigmas(ds.boxes[:, 0])
    wide = targets.heatmap_targets(ds.boxes[:, :1], ds.mask[:, :1], sigma=np.where(ds.mask[:, :1], s[:, None], 1))
    np.testing.assert_allclose(unit.astype(np.float64) ** (1 / s[:, None, None] ** 2) * ds.mask[:, :1, None],
                               wide, atol=1e-5)


def test_detect_digits_reference_is_the_package_decoder_without_refinement_one_label_a_peak():
    rng = np.random.default_rng(5)
    outputs = {"presence": rng.random((3, 16, 16, 1)) ** 4, "box": rng.uniform(0.3, 2.5, (3, 16, 16, 4)),
               "class": assembly._softmax(rng.normal(0, 2, (3, 16, 16, 10)))}
    mine = detect_loop(outputs, decoder.find_peaks, decoder.boxes_from_cells, decoder.nms)
    found = decoder.detect(outputs, refine_boxes=False)
    ref = decoder.detections(found, all_labels=False)
    for a, b in zip(mine, ref):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5)


def _wrong_detect(**change):
    def detect_digits(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
        if change.get("no_nms"):
            nms_fn = lambda b, s, t: np.argsort(-np.asarray(s), kind="stable")  # noqa: E731
        if change.get("fixed_iou"):
            iou_threshold = 0.5
        b, labels, scores = detect_loop(outputs, peaks_fn, cells_fn, nms_fn, k=k, iou_threshold=iou_threshold,
                                        min_score=min_score)
        return b, labels, scores
    return detect_digits


def _presence_only(outputs, peaks_fn, cells_fn, nms_fn, **kw):
    flat = {**outputs, "class": np.where(outputs["class"] == outputs["class"].max(-1, keepdims=True), 1.0, 0.0)}
    return detect_loop(flat, peaks_fn, cells_fn, nms_fn, **kw)


def _targets_weight_ones(*args, **kw):
    """A student who writes 1 wherever a cell learns a box, in the box and the class channels."""
    out = targets_loop(*args, **kw)
    for name in ("box", "class"):
        out[name][..., 0] = (out[name][..., 0] > 0).astype(np.float32)
    return out


def _targets_sum(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """A student who adds the bumps where they meet (np.sum over the slots) instead of keeping the larger."""
    out = targets_loop(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, size=size)
    sig = np.asarray(sigma_fn(boxes))
    total = sum(heatmap_fn(boxes[:, s:s + 1], mask[:, s:s + 1], size=size, stride=8, sigma=1.0) ** (1 / sig[:, s, None,
                None] ** 2) * mask[:, s, None, None] for s in range(boxes.shape[1]))
    cells = out["box"][..., 0] > 0
    out["presence"] = total[..., None].astype(np.float32)
    for name in ("box", "class"):
        out[name][..., 0] = np.where(cells, total, 0).astype(np.float32)
    return out


STUDENT_WRONG = [  # (exercise, a student's wrong implementation, a phrase the hint must contain)
    ("bump_sigmas", lambda boxes, stride=8: bump_loop(boxes, stride=1), "divide its size in pixels by `stride`"),
    ("bump_sigmas", lambda boxes, stride=8: bump_loop(boxes, stride=8), "not a fixed 8"),
    ("bump_sigmas", lambda boxes, stride=8: np.ones(np.shape(boxes)[:-1], np.float32), "must grow with the digit"),
    ("detector_targets", lambda b, c, m, h, bx, s, **kw: targets_loop(b, c, m, h, bx, lambda x: np.ones(x.shape[:-1]),
                                                                       **kw), "a fixed width"),
    ("detect_digits", _wrong_detect(no_nms=True), "run nms_fn"),
    ("detect_digits", _wrong_detect(fixed_iou=True), "not a fixed 0.5"),
    ("detect_digits", _presence_only, "presence x the probability"),
    ("detector_targets", _targets_weight_ones, "the heat there, not 1"),
    ("detector_targets", _targets_sum, "not their sum"),
]


@pytest.mark.parametrize("name, wrong, phrase", STUDENT_WRONG)
def test_a_students_mistake_gets_the_hint_that_names_it(name, wrong, phrase):
    result = check(name, wrong)
    assert not result.passed and phrase in result.hint, result.hint
