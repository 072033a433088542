"""Lesson 5's parts: ``mnistloc.nms_sweep`` (NMS at several thresholds, choosing one, size groups, recall by size),
the ``sigma_fn`` hook of ``targets.encode_targets``, and the checks of ``scale_sigmas`` and
``choose_nms_threshold``: mistakes written as a student would get the hint naming them, others fail."""
from __future__ import annotations

import numpy as np
import pytest

from mnistloc import decoder, nms_sweep, targets
from mnistloc.checks import check
from mnistloc.grading.exercises.crowds import _scale_sigmas
from mnistloc.grading.registry import EXERCISES, QUESTIONS, RETIRED, exercises_of, questions_of


# ---- mnistloc.nms_sweep ------------------------------------------------------------------------------

def test_nms_keeps_runs_nms_per_canvas_and_threshold_and_drops_empty_peaks():
    # canvas 0: [0, 0, 10, 10] and [0, 0, 10, 5] overlap by 50 / 100 = 0.5: dropped only at thresholds < 0.5
    # canvas 1: one box and a padded peak of score 0, never kept
    boxes = np.float32([[[0, 0, 10, 10], [0, 0, 10, 5]], [[20, 20, 30, 30], [0, 0, 0, 0]]])
    scores = np.float32([[0.9, 0.8], [0.7, 0.0]])
    keeps = nms_sweep.nms_keeps(boxes, scores, [0.3, 0.5, 0.7])
    assert keeps.shape == (3, 2, 2) and keeps.dtype == bool
    assert keeps[:, 0].tolist() == [[True, False], [True, True], [True, True]]
    assert keeps[:, 1].tolist() == [[True, False]] * 3


def test_nms_keeps_uses_the_given_nms_and_checks_shapes():
    calls = []

    def keep_first(b, s, t):
        calls.append(t)
        return np.array([0])

    keeps = nms_sweep.nms_keeps(np.ones((2, 3, 4), np.float32), np.ones((2, 3), np.float32), [0.2, 0.6],
                             nms_fn=keep_first)
    assert calls == [0.2, 0.2, 0.6, 0.6] and keeps[..., 0].all() and not keeps[..., 1:].any()
    with pytest.raises(ValueError, match="boxes"):
        nms_sweep.nms_keeps(np.ones((3, 4)), np.ones(3), [0.5])


def test_choose_nms_threshold_counts_kept_peaks_above_the_score():
    # the lesson's first public case: counts [1, 1], [2, 1], [2, 2] against truth [2, 1]
    keeps = np.array([[[1, 0, 1], [1, 0, 0]], [[1, 1, 1], [1, 0, 0]], [[1, 1, 1], [1, 1, 0]]], bool)
    scores = np.float32([[0.9, 0.8, 0.2], [0.9, 0.5, 0.0]])
    best, accuracy = nms_sweep.choose_nms_threshold(keeps, scores, [2, 1], [0.3, 0.5, 0.7])
    assert best == 0.5 and accuracy.tolist() == [0.5, 1.0, 0.5] and accuracy.dtype == np.float64


def test_size_groups_split_by_the_geometric_mean_side():
    # sqrt(w h): 10 (small), sqrt(16 * 16) = 16 (medium: the edge belongs above), sqrt(12 * 48) = 24 (large),
    # an inverted box has no size (small)
    b = np.float32([[0, 0, 10, 10], [5, 5, 21, 21], [0, 0, 12, 48], [30, 30, 0, 0]])
    assert nms_sweep.size_groups(b).tolist() == [0, 1, 2, 0]
    assert nms_sweep.size_groups(b.reshape(2, 2, 4)).shape == (2, 2)


def test_recall_by_size_matches_each_detection_once():
    # canvas 0: a small and a large digit, two detections on the small one (the second finds nothing new)
    # canvas 1: a medium digit, its detection shifted 4 px: IoU 16 * 12 / (2 * 256 - 192) = 0.6
    truth = [np.float32([[0, 0, 10, 10], [50, 50, 80, 80]]), np.float32([[0, 0, 16, 16]])]
    pred = [np.float32([[0, 0, 10, 10], [0, 0, 10, 10]]), np.float32([[0, 4, 16, 20]])]
    got = nms_sweep.recall_by_size(truth, pred)
    assert got == {"small": (1.0, 1), "medium": (1.0, 1), "large": (0.0, 1)}
    got = nms_sweep.recall_by_size(truth, pred, iou_threshold=0.7)
    assert got["medium"] == (0.0, 1)
    assert np.isnan(nms_sweep.recall_by_size([np.zeros((0, 4))], [np.zeros((0, 4))])["small"][0])


# ---- the sigma_fn hook -------------------------------------------------------------------------------

def test_encode_targets_takes_a_sigma_function():
    boxes = np.float32([[[8, 8, 56, 56], [70, 70, 82, 82]]])  # 48 px: sigma 0.4 * 6 = 2.4 cells; 12 px: 0.6
    classes, mask = np.int64([[3, 7]]), np.ones((1, 2), bool)
    same = targets.encode_targets(boxes, classes, mask, sigma="size", sigma_fn=targets.size_sigmas)
    default = targets.encode_targets(boxes, classes, mask, sigma="size")
    assert all(np.array_equal(same[k], default[k]) for k in default)
    wide = targets.encode_targets(boxes, classes, mask, sigma="size", sigma_fn=lambda b: np.full(b.shape[:-1], 2.0))
    # the first centre is at cell (4, 4); one cell right: exp(-1 / (2 * 2.4^2)) with sigma 2.4, exp(-1 / 8) with 2
    assert default["presence"][0, 4, 5, 0] == pytest.approx(np.exp(-1 / (2 * 2.4 ** 2)), rel=1e-5)
    assert wide["presence"][0, 4, 5, 0] == pytest.approx(np.exp(-1 / 8), rel=1e-5)


# ---- the exercises -----------------------------------------------------------------------------------

def test_lesson_5_has_its_exercises_and_question():
    assert {n: (EXERCISES[n].lesson, EXERCISES[n].points) for n in exercises_of("05-many-digits")} == {
        "choose_nms_threshold": ("05-many-digits", 3), "bump_sigmas": ("05-many-digits", 2),
        "detector_targets": ("05-many-digits", 4), "detect_digits": ("05-many-digits", 4)}
    assert RETIRED["scale_sigmas"] == "bump_sigmas" and EXERCISES["scale_sigmas"].lesson == "05-many-digits"
    assert questions_of("05-many-digits") == ["q_crowd_nms"] and QUESTIONS["q_crowd_nms"].points == 2
    assert all(len(EXERCISES[n].mistakes) >= 5 for n in ("scale_sigmas", "choose_nms_threshold"))


def test_scale_sigmas_reference_agrees_with_an_independent_loop():
    rng = np.random.default_rng(0)
    b = np.concatenate([rng.uniform(0, 60, (50, 2)), rng.uniform(0, 120, (50, 2))], 1).astype(np.float32)
    loop = [max(0.5, np.sqrt(max(x1 - x0, 0) * max(y1 - y0, 0)) / 8 / 6) for x0, y0, x1, y1 in b]
    np.testing.assert_allclose(_scale_sigmas(b), loop, rtol=1e-6)


@pytest.mark.parametrize("name", ["scale_sigmas", "choose_nms_threshold"])
def test_the_reference_passes_and_a_stub_is_told_it_is_not_done(name):
    result = check(name, EXERCISES[name].reference, seed=99)
    assert result.passed and result.points == EXERCISES[name].points, result.hint

    def stub(*args, **kwargs):
        raise NotImplementedError()

    assert "not done yet" in check(name, stub).hint


def sigmas_loop(*, floor=True, pixels=False, longest=False):
    def scale_sigmas(boxes):
        b = np.asarray(boxes, np.float32)
        out = np.zeros(b.shape[:-1], np.float32)
        for idx in np.ndindex(out.shape):
            x0, y0, x1, y1 = b[idx]
            w, h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
            side = max(w, h) if longest else (w * h) ** 0.5
            s = side / 6 if pixels else side / 8 / 6
            out[idx] = max(0.5, s) if floor else s
        return out
    return scale_sigmas


def choose_loop(*, strict=False, last=False, no_nms=False, right="=="):
    def choose_nms_threshold(keeps, scores, counts, thresholds, min_score=0.5):
        accuracy = []
        for t in range(len(thresholds)):
            good = 0
            for i in range(len(counts)):
                enough = scores[i] > min_score if strict else scores[i] >= min_score
                n = sum(1 for j in range(scores.shape[1]) if (no_nms or keeps[t, i, j]) and enough[j])
                good += {"==": n == counts[i], ">=": n >= counts[i], "<=": n <= counts[i]}[right]
            accuracy.append(good / len(counts))
        best = max(range(len(accuracy)), key=lambda t: (accuracy[t], t if last else -t))
        return float(thresholds[best]), np.array(accuracy)
    return choose_nms_threshold


STUDENT_WRONG = [  # (exercise, a student's wrong implementation, a phrase the hint must contain)
    ("scale_sigmas", sigmas_loop(floor=False), "keep the floor"),
    ("scale_sigmas", sigmas_loop(pixels=True), "in cells, not pixels"),
    ("scale_sigmas", sigmas_loop(longest=True), "longest side"),
    ("choose_nms_threshold", choose_loop(strict=True), ">=, not >"),
    ("choose_nms_threshold", choose_loop(last=True), "the first threshold"),
    ("choose_nms_threshold", choose_loop(no_nms=True), "NMS kept"),
    # "at least right" got the hint of another mistake (">=, not >"): the first public case now tells them apart
    ("choose_nms_threshold", choose_loop(right=">="), "more peaks than digits"),
    ("choose_nms_threshold", choose_loop(right="<="), "fewer peaks than digits"),
]


@pytest.mark.parametrize("name, wrong, phrase", STUDENT_WRONG, ids=[f"{n}-{p}" for n, _, p in STUDENT_WRONG])
def test_a_mistake_written_as_a_student_would_gets_the_hint_naming_it(name, wrong, phrase):
    result = check(name, wrong)
    assert not result.passed and result.points == 0 and phrase in result.hint, result.hint


def test_the_loops_without_a_mistake_pass():
    assert check("scale_sigmas", sigmas_loop(), seed=5).passed
    assert check("choose_nms_threshold", choose_loop(), seed=5).passed


OUTSIDE = [
    ("scale_sigmas", lambda boxes: _scale_sigmas(boxes) + 0.01),
    ("scale_sigmas", lambda boxes: np.maximum(0.5, _scale_sigmas(boxes) * 6 / 5)),  # divisor 5
    ("choose_nms_threshold", lambda keeps, scores, counts, thresholds, min_score=0.5: (
        float(np.median(thresholds)), nms_sweep.choose_nms_threshold(keeps, scores, counts, thresholds, min_score)[1])),
]


@pytest.mark.parametrize("name, wrong", OUTSIDE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OUTSIDE)])
def test_a_wrong_answer_outside_the_catalogue_fails_without_a_catalogued_hint(name, wrong):
    result = check(name, wrong, seed=7)
    assert not result.passed and result.points == 0
    assert result.hint not in {f"{name}: {hint}" for hint, _ in EXERCISES[name].mistakes}, result.hint


def test_decoder_nms_is_the_default_nms():
    boxes, scores = np.float32([[[0, 0, 10, 10], [1, 0, 11, 10]]]), np.float32([[0.9, 0.8]])
    assert nms_sweep.nms_keeps(boxes, scores, [0.5])[0, 0].tolist() == [True, False]
    assert decoder.nms(boxes[0], scores[0], 0.5).tolist() == [0]


def test_bad_shapes_get_errors_that_name_the_arguments():
    with pytest.raises(ValueError, match=r"`keeps` \(T, n, k\) with T = len\(thresholds\) = 1.*Got \(2, 3, 4\)"):
        nms_sweep.choose_nms_threshold(np.zeros((2, 3, 4), bool), np.zeros((3, 4)), np.zeros(3), [0.5])
    with pytest.raises(ValueError, match="`true_boxes` and `pred_boxes` should list the same canvases. Got 1 and 0"):
        nms_sweep.recall_by_size([np.zeros((1, 4))], [])
