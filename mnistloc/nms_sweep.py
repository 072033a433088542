"""What crowded scenes of digits at many sizes (case 5) add to the detector: choosing NMS's IoU threshold
on validation canvases, and measuring how well each size of digit is found.

``mnistloc.decoder`` detects; this module judges its choices. NMS drops a peak
overlapping a better one by IoU above a threshold: too low and two touching
digits become one, too high and one digit's neighbouring peaks both survive.
``nms_keeps`` runs NMS at several thresholds, ``choose_nms_threshold`` picks
the one whose count (kept peaks scoring >= ``min_score``) is right on the most
canvases. ``size_groups`` and ``recall_by_size`` split the true digits into
small, medium and large by the geometric mean of their box sides.
"""
from __future__ import annotations

import numpy as np

from mnistloc import decoder, metrics

NMS_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SIZE_EDGES = (16.0, 24.0)  # sqrt(w h) in pixels: small < 16 <= medium < 24 <= large
SIZE_NAMES = ("small", "medium", "large")


def nms_keeps(boxes, scores, thresholds=NMS_THRESHOLDS, *, nms_fn=decoder.nms) -> np.ndarray:
    """Which peaks NMS keeps on each canvas, at each IoU threshold.

    Args:
        boxes (float[n, k, 4]): each canvas's candidate boxes, ``xyxy`` pixels.
        scores (float[n, k]): their presence scores (0: no candidate).
        thresholds (float[T]): NMS IoU thresholds.
        nms_fn: ``nms_fn(boxes (k, 4), scores (k,), iou_threshold) -> int[kept]`` indices (``decoder.nms``
            or a student's).

    Returns:
        bool[T, n, k]: kept by NMS, and scoring above 0.
    """
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]:
        raise ValueError(f"Expected `boxes` (n, k, 4) and `scores` (n, k). Got {boxes.shape} and {scores.shape}.")
    keeps = np.zeros((len(thresholds),) + scores.shape, dtype=bool)
    for t, threshold in enumerate(thresholds):
        for i in range(len(boxes)):
            keeps[t, i, np.asarray(nms_fn(boxes[i], scores[i], float(threshold)), np.int64)] = True
    return keeps & (scores > 0)


def choose_nms_threshold(keeps, scores, counts, thresholds, min_score: float = 0.5):
    """The NMS IoU threshold whose count is right on the most canvases.

    A canvas's count at threshold ``t`` is the number of its peaks that NMS
    kept (``keeps[t]``) and that score at least ``min_score``.

    Args:
        keeps (bool[T, n, k]): kept by NMS at each threshold.
        scores (float[n, k]): the peaks' presence scores.
        counts (int[n]): the true number of digits on each canvas.
        thresholds (float[T]): the IoU thresholds tried.
        min_score: the presence score that counts as a digit.

    Returns:
        (best, accuracy): ``best`` (float) the threshold with the highest count accuracy (the first
        of equals); ``accuracy`` float64[T], the share of canvases counted right at each threshold.
    """
    keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores, np.float64), np.asarray(counts)
    thresholds = np.asarray(thresholds, np.float64).reshape(-1)
    if keeps.ndim != 3 or keeps.shape[0] != len(thresholds) or scores.shape != keeps.shape[1:] or \
            counts.shape != keeps.shape[1:2]:
        raise ValueError(f"Expected `keeps` (T, n, k) with T = len(thresholds) = {len(thresholds)}, `scores` (n, k) "
                         f"and `counts` (n,). Got {keeps.shape}, {scores.shape} and {counts.shape}.")
    counted = (keeps & (scores >= min_score)).sum(axis=-1)  # [T, n]
    accuracy = (counted == counts[None, :]).mean(axis=-1)  # [T]
    return float(thresholds[np.argmax(accuracy)]), accuracy.astype(np.float64)


def size_groups(boxes, edges=SIZE_EDGES) -> np.ndarray:
    """The size group of each box: 0 small, 1 medium, 2 large, by ``sqrt(w h)`` against ``edges``.

    Args:
        boxes (float[..., 4]): ``xyxy`` pixels.
        edges (float[2]): a box with ``sqrt(w h) < edges[0]`` is small, ``>= edges[1]`` large.

    Returns:
        int64[...]: the group of each box.
    """
    b = np.asarray(boxes, np.float64)
    side = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None))
    return np.searchsorted(np.asarray(edges, np.float64), side, side="right").astype(np.int64)


def recall_by_size(true_boxes, pred_boxes, *, iou_threshold: float = 0.5, edges=SIZE_EDGES) -> dict:
    """The share of true digits that some detection covers by IoU >= ``iou_threshold``, per size group.

    Each detection covers at most one digit: per canvas, detections are matched to the true boxes
    greedily in the given order (best first) by ``metrics.match_detections``.

    Args:
        true_boxes: list over canvases of float[m_i, 4] ``xyxy`` pixels.
        pred_boxes: list over canvases of float[d_i, 4], best first.

    Returns:
        dict: group name -> ``(recall, number of true digits)``; recall is NaN for an empty group.
    """
    if len(true_boxes) != len(pred_boxes):
        raise ValueError(f"`true_boxes` and `pred_boxes` should list the same canvases. Got {len(true_boxes)} and "
                         f"{len(pred_boxes)} canvases.")
    found, groups = [], []
    for t, p in zip(true_boxes, pred_boxes):
        t, p = np.asarray(t, np.float64).reshape(-1, 4), np.asarray(p, np.float64).reshape(-1, 4)
        matched = metrics.match_detections(p, -np.arange(len(p), dtype=np.float64), t, iou_threshold)  # given order
        hit = np.zeros(len(t), bool)
        hit[matched[matched >= 0]] = True
        found.append(hit)
        groups.append(size_groups(t, edges))
    found, groups = np.concatenate(found or [np.zeros(0, bool)]), np.concatenate(groups or [np.zeros(0, np.int64)])
    return {name: (float(found[groups == g].mean()) if (groups == g).any() else float("nan"), int((groups == g).sum()))
            for g, name in enumerate(SIZE_NAMES)}
