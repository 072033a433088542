"""Scoring on imperfect predictions built by hand, with the expected numbers worked out in comments."""
import numpy as np
import pytest

from mnistloc import evaluation
from mnistloc.canvas import CanvasDataset

TEN = [0, 0, 10, 10]  # a 10 x 10 box: area 100
LOW = [0, 0, 10, 4]  # inside TEN: 10 x 4 = 40 of it, so IoU(TEN, LOW) = 40 / 100 = 0.4


def _dataset(case, boxes, classes):
    """A CanvasDataset of blank canvases with these boxes (n, K<=2, 4) and classes (n, K); K used slots."""
    n = len(boxes)
    b = np.zeros((n, 2, 4), np.float32)
    c = np.full((n, 2), -1, np.int64)
    mask = np.zeros((n, 2), bool)
    for i, (bs, cs) in enumerate(zip(boxes, classes)):
        if bs:
            b[i, :len(bs)], c[i, :len(cs)], mask[i, :len(bs)] = bs, cs, True
    return CanvasDataset(case=case, images=np.zeros((n, 128, 128), np.uint8), boxes=b, mask=mask, classes=c,
                         count=mask.sum(1).astype(np.int64), digit_ids=np.where(mask, 0, -1))


def _slots(boxes, classes, k=2):
    """Predictions in ``decoder.decode``'s format: up to ``k`` digits a canvas, left to right."""
    n = len(boxes)
    out = {"boxes": np.zeros((n, k, 4), np.float32), "mask": np.zeros((n, k), bool),
           "classes": np.full((n, k), -1), "scores": np.zeros((n, k), np.float32)}
    for i, (b, c) in enumerate(zip(boxes, classes)):
        if len(b):
            out["boxes"][i, :len(b)], out["mask"][i, :len(b)], out["classes"][i, :len(b)] = b, True, c[:len(b)]
        out["scores"][i, :len(b)] = 1
    out["count"] = out["mask"].sum(axis=1)
    return out


def test_case_3_joint_accuracy_needs_both_class_and_box():
    ds = _dataset(3, [[TEN]] * 4, [[3]] * 4)
    pred = _slots([[TEN], [LOW], [TEN], [LOW]], [[3], [3], [5], [5]])
    scores = evaluation.score_predictions(3, ds, pred)
    # canvas: 0 right class, IoU 1 | 1 right class, IoU 0.4 | 2 wrong class, IoU 1 | 3 wrong class, IoU 0.4
    assert scores["class_accuracy"] == pytest.approx(2 / 4)
    assert scores["mean_iou"] == pytest.approx((1 + 0.4 + 1 + 0.4) / 4)  # 0.7
    assert scores["iou50"] == pytest.approx(2 / 4) and scores["iou75"] == pytest.approx(2 / 4)
    assert scores["joint_accuracy"] == pytest.approx(1 / 4)  # only canvas 0 has both; "or" would give 3 / 4
    quality = evaluation.per_canvas_quality_from_predictions(3, ds, pred)
    np.testing.assert_allclose(quality, [1, 0.4, 0, 0], atol=1e-6)  # a wrong class scores 0 whatever the box


def test_case_2_scores_the_union_box_only_where_there_is_a_digit():
    far = [50, 50, 60, 60]
    ds = _dataset(2, [[], [TEN], [TEN, far]], [[], [1], [2, 4]])
    pred = _slots([[TEN], [[0, 0, 10, 5]], []], [[-1], [-1], []])  # canvas 2: no digit found
    scores = evaluation.score_predictions(2, ds, pred)
    # presence: canvas 0 empty but said present (wrong), 1 right, 2 has two digits but said empty (wrong): 1 / 3
    assert scores["presence_accuracy"] == pytest.approx(1 / 3)
    # box, on the two canvases with digits: canvas 1: 50 / 100 = 0.5; canvas 2: union (0, 0, 60, 60) vs nothing: 0.
    # The empty canvas adds nothing (counting it would give (0 + 0.5 + 0) / 3).
    assert scores["mean_iou"] == pytest.approx((0.5 + 0) / 2)
    assert scores["iou50"] == pytest.approx(1 / 2)


def test_case_4_matches_digits_by_overlap_and_counts_unmatched_ones_out():
    a, b, c = TEN, [50, 50, 60, 60], [20, 20, 30, 30]
    b_low = [50, 50, 60, 56]  # IoU with b: 60 / 100 = 0.6
    stray = [100, 100, 110, 110]  # overlaps nothing
    ds = _dataset(4, [[a, b], [c]], [[3, 7], [1]])
    pred = {"boxes": np.array([[b_low, a], [c, stray]], np.float32), "mask": np.array([[True, True], [True, True]]),
            "classes": np.array([[7, 2], [1, 5]]), "scores": np.ones((2, 2), np.float32), "count": np.array([2, 2])}
    found = ([pred["boxes"][0], pred["boxes"][1]], [pred["classes"][0], pred["classes"][1]],
             [np.array([0.9, 0.8], np.float32), np.array([0.9, 0.3], np.float32)])
    scores = evaluation.score_predictions(4, ds, pred, found)
    assert scores["count_accuracy"] == pytest.approx(1 / 2)  # canvas 1 has one digit, not two
    # matched pairs: a-a (IoU 1, class 3 vs 2: wrong), b-b_low (0.6, right), c-c (1, right); the stray is left out
    assert scores["mean_iou"] == pytest.approx((1 + 0.6 + 1) / 3)
    assert scores["class_accuracy"] == pytest.approx(2 / 3)
    # AP50 per class with a true digit (COCO skips classes 2 and 5, which have none): 7 found (1), 3 never
    # labelled (0), 1 found (1): (1 + 0 + 1) / 3
    assert scores["map50"] == pytest.approx(2 / 3, abs=1e-6)
    with pytest.raises(ValueError, match="found"):
        evaluation.score_predictions(4, ds, pred)
