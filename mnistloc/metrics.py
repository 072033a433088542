"""Metrics: accuracy, IoU of paired boxes, and COCO average precision.

Boxes are ``xyxy`` absolute pixels (``mnistloc.boxes``). Everything is numpy.

Detection metrics follow pycocotools' ``COCOeval`` for ``iouType="bbox"``
with area range "all" (``[0, 1e10]``) and ``maxDets=100``:

* per canvas and class, detections are sorted by descending score (stable
  mergesort, as COCO), the best 100 are kept, and each is matched greedily to
  the unmatched true box of its class with the highest IoU, if that IoU is at
  least the threshold (ties go to the later true box, as in COCO);
* each true box is matched at most once; every other detection is a false
  positive, including detections on canvases that hold no true box;
* AP for one class at one IoU threshold is the mean of the precision envelope
  sampled at the 101 recalls ``0, 0.01, ..., 1``;
* ``map`` averages AP over the IoU thresholds ``.50:.05:.95`` and over the
  classes that have at least one true box (COCO marks the others with -1 and
  leaves them out); a class with true boxes and no detection has AP 0.

Where this differs from pycocotools: an inverted box (``x1 < x0`` or
``y1 < y0``) counts as empty (area 0, IoU 0, so as a detection it is a false
positive); pycocotools would give it a negative area and ignore it.
``tests/test_metrics.py`` checks the rest against pycocotools to 1e-6.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mnistloc.boxes import area, iou, pairwise_iou

# Exactly the floats pycocotools uses (``Params.setDetParams``), so that an
# IoU of, say, 0.55 is matched at the 0.55 threshold in both implementations.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # [10]
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # [101]
MAX_DETECTIONS = 100  # per canvas and class, COCO's maxDets[-1]
AREA_RANGE = (0.0, 1e5**2)  # COCO's "all": boxes outside are ignored, neither true nor false
_NO_TRUE_BOX = -1.0  # COCO's value when no class has a true box


# --------------------------------------------------------------------------- classification


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the true labels.

    Args:
        y_true (array[N] int | array[N, C]): labels, or one-hot rows (argmax is taken).
        y_pred (array[N] int | array[N, C]): labels, or one-hot / probability rows.

    Returns:
        float: accuracy in [0, 1].

    Raises:
        ValueError: different numbers of samples, no sample, more than two
            axes, or 1-D values that are not integer labels (threshold binary
            probabilities first, e.g. ``probs > 0.5``).
    """
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"`y_true` and `y_pred` should hold the same number of samples. "
                         f"Got {t.shape[0]} and {p.shape[0]}.")
    if t.size == 0:
        raise ValueError("`y_true` is empty: accuracy of no sample is undefined.")
    return float(np.mean(t == p))


def _as_labels(y, name: str) -> np.ndarray:
    """Integer labels ``[N]`` from labels ``[N]`` or rows ``[N, C]``."""
    arr = np.asarray(y)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` should be numeric. Got dtype {arr.dtype}.")
    if arr.ndim == 2:
        return arr.argmax(axis=-1)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` should have shape (N,) for labels or (N, C) for one-hot or "
                         f"probability rows. Got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"`{name}` has shape (N,) so it should hold integer labels; it holds "
                         f"non-integer values. For binary probabilities pass `{name} > 0.5`.")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- paired boxes


def mean_iou(true_boxes, pred_boxes, mask=None) -> float:
    """Mean IoU of paired boxes, over the entries ``mask`` selects.

    Args:
        true_boxes (array[..., 4]): ``xyxy`` boxes.
        pred_boxes (array[..., 4]): ``xyxy`` boxes, the same shape.
        mask (array[...] bool | None): which pairs count; all of them when None
            (e.g. ``CanvasDataset.mask`` for case 4).

    Returns:
        float: mean IoU in [0, 1]; a pair of empty boxes counts as 0, never NaN.

    Raises:
        ValueError: shapes that disagree, or no pair selected (the mean of
            nothing is undefined, so this is an error rather than 0).
    """
    return float(np.mean(_selected_ious(true_boxes, pred_boxes, mask)))


def iou_rate(true_boxes, pred_boxes, threshold: float, mask=None) -> float:
    """Fraction of paired boxes whose IoU is at least ``threshold``.

    Args:
        true_boxes (array[..., 4]): ``xyxy`` boxes.
        pred_boxes (array[..., 4]): ``xyxy`` boxes, the same shape.
        threshold: in [0, 1], e.g. 0.5 for "localised".
        mask (array[...] bool | None): which pairs count; all of them when None.

    Returns:
        float: the fraction in [0, 1].

    Raises:
        ValueError: as ``mean_iou``, or ``threshold`` outside [0, 1].
    """
    if not np.isscalar(threshold) or not 0 <= threshold <= 1:
        raise ValueError(f"`threshold` should be a number in [0, 1]. Got threshold={threshold!r}.")
    return float(np.mean(_selected_ious(true_boxes, pred_boxes, mask) >= threshold))


def _selected_ious(true_boxes, pred_boxes, mask) -> np.ndarray:
    """IoUs ``[K]`` of the pairs that ``mask`` selects, float64."""
    t = _finite_boxes(true_boxes, "true_boxes")
    p = _finite_boxes(pred_boxes, "pred_boxes")
    if t.shape != p.shape:
        raise ValueError(f"`pred_boxes` should have the shape of `true_boxes` {t.shape}. Got {p.shape}.")
    ious = iou(t, p)  # [...]
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool or m.shape != ious.shape:
            raise ValueError(f"`mask` should be a bool array of shape {ious.shape} (the boxes' shape "
                             f"without the last axis). Got dtype {m.dtype} and shape {m.shape}.")
        ious = ious[m]
    if ious.size == 0:
        raise ValueError("No box pair to average: `true_boxes` is empty or `mask` selects nothing.")
    return ious.ravel()


def _finite_boxes(boxes, name: str, ndim: int | None = None) -> np.ndarray:
    """``boxes`` as float64 ``(..., 4)`` with finite values, or raises naming ``name``."""
    arr = np.asarray(boxes)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` should be numeric boxes of shape (..., 4). Got dtype {arr.dtype}.")
    if arr.size == 0 and ndim == 2:
        arr = arr.reshape(0, 4)  # [] for a canvas without boxes
    if arr.ndim == 0 or arr.shape[-1] != 4 or (ndim is not None and arr.ndim != ndim):
        want = "(n, 4), one row per box," if ndim == 2 else "(..., 4)"
        raise ValueError(f"`{name}` should have shape {want}. Got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` should hold finite numbers. Got NaN or infinity.")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------- COCO AP


def average_precision(scores, matched, num_true: int) -> float:
    """COCO's 101-point AP for one class at one IoU threshold.

    Args:
        scores (array[D] float): confidence of each detection.
        matched (array[D] bool): whether each detection matched a true box
            (a true positive); at most ``num_true`` of them.
        num_true: number of true boxes of the class, > 0.

    Returns:
        float: the mean, over recalls ``0, 0.01, ..., 1``, of the highest
        precision reached at that recall or beyond; 0 for recalls never
        reached. Detections are ranked by descending score; equal scores keep
        their given order (stable sort, as COCO).

    Raises:
        ValueError: shapes that disagree, non-finite scores, ``num_true`` < 1
            or fewer than the matches.
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(matched)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise ValueError(f"`scores` should be finite numbers of shape (D,). Got shape {s.shape}.")
    if m.shape != s.shape or not (m.dtype == bool or np.isin(m, (0, 1)).all()):
        raise ValueError(f"`matched` should be booleans of the shape of `scores` {s.shape}. "
                         f"Got dtype {m.dtype} and shape {m.shape}.")
    if int(num_true) != num_true or num_true < max(1, m.sum()):
        raise ValueError(f"`num_true` should be an integer >= 1 and >= the number of matches "
                         f"({int(m.sum())}). Got num_true={num_true!r}.")
    order = np.argsort(-s, kind="mergesort")  # [D] best first, ties in given order
    tp = np.cumsum(m[order].astype(bool))  # [D] true positives among the first k+1
    precision = tp / np.arange(1, len(tp) + 1)
    return _ap_101(precision, tp / num_true)


def _ap_101(precision: np.ndarray, recall: np.ndarray) -> float:
    """Mean of the precision envelope sampled at ``RECALL_THRESHOLDS``; inputs ``[D]`` ranked."""
    if len(recall) == 0:
        return 0.0  # no detection: no recall reached
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this rank or later
    idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")  # [101] first rank reaching r
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


def mean_average_precision(true_boxes: Sequence, true_labels: Sequence, pred_boxes: Sequence,
                           pred_labels: Sequence, pred_scores: Sequence, *, num_classes: int = 10) -> dict:
    """COCO mean average precision over canvases, as pycocotools' ``COCOeval``.

    One entry per canvas in each sequence; canvas ``i`` has ``Ti`` true boxes
    and ``Pi`` detections (either may be 0; ``[]`` is accepted for none).

    Args:
        true_boxes (list of array[Ti, 4]): ``xyxy`` pixels.
        true_labels (list of array[Ti] int): classes in ``[0, num_classes)``.
        pred_boxes (list of array[Pi, 4]): ``xyxy`` pixels.
        pred_labels (list of array[Pi] int): predicted classes.
        pred_scores (list of array[Pi] float): confidences, finite.
        num_classes: the number of classes.

    Returns:
        dict: ``map`` (AP at IoU .50:.05:.95), ``map50``, ``map75`` (floats),
        and ``per_class`` ``{class: AP at .50:.95}`` for the classes with at
        least one true box, which are the ones averaged. When no canvas has a
        true box AP is undefined: the maps are -1.0 (COCO's value) and
        ``per_class`` is empty.

    Raises:
        ValueError: sequences of different lengths, wrong shapes, non-finite
            values or labels out of range, naming the argument and canvas.
    """
    canvases = _check_scenes(true_boxes, true_labels, pred_boxes, pred_labels, pred_scores, num_classes)
    per_class_t = {}  # class -> [T] AP at each IoU threshold
    for c, (scores, matched, ignored, num_true) in _evaluate_classes(canvases).items():
        if num_true == 0:
            continue  # COCO: -1, left out of the mean
        per_class_t[c] = np.array([average_precision(scores[~ig], tp[~ig], num_true)
                                   for tp, ig in zip(matched, ignored)])
    if not per_class_t:
        return {"map": _NO_TRUE_BOX, "map50": _NO_TRUE_BOX, "map75": _NO_TRUE_BOX, "per_class": {}}
    ap = np.stack([per_class_t[c] for c in sorted(per_class_t)])  # [K, T]
    return {
        "map": float(ap.mean()),
        "map50": float(ap[:, _threshold_index(0.5)].mean()),
        "map75": float(ap[:, _threshold_index(0.75)].mean()),
        "per_class": {c: float(ap[k].mean()) for k, c in enumerate(sorted(per_class_t))},
    }


def _threshold_index(t: float) -> int:
    return int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, t))[0])


def _evaluate_classes(canvases: list) -> dict:
    """Matches every canvas, class by class, and joins the results per class.

    Returns:
        dict: ``class -> (scores [D], matched [T, D] bool, ignored [T, D] bool,
        num_true)`` with detections in canvas order, each canvas's best first.
    """
    parts: dict[int, list] = {}
    for tb, tl, pb, pl, ps in canvases:
        for c in np.union1d(tl, pl).tolist():
            parts.setdefault(c, []).append(_match_canvas_class(tb[tl == c], pb[pl == c], ps[pl == c]))
    out = {}
    for c, rows in sorted(parts.items()):
        scores, matched, ignored, num_true = zip(*rows)
        out[c] = (np.concatenate(scores), np.concatenate(matched, axis=1),
                  np.concatenate(ignored, axis=1), int(sum(num_true)))
    return out


def _in_area_range(boxes: np.ndarray) -> np.ndarray:
    a = area(boxes)
    return (a >= AREA_RANGE[0]) & (a <= AREA_RANGE[1])


def match_detections(pred_boxes, scores, true_boxes, iou_threshold: float = 0.5) -> np.ndarray:
    """Matches detections to true boxes greedily, best score first, as COCO does (one canvas, one class).

    By descending score (ties in given order), each detection takes the free true box it overlaps most,
    if that IoU is >= ``iou_threshold`` (equal IoUs: the later box, as COCO); a true box is taken once.
    ``average_precision(scores, matches >= 0, len(true_boxes))`` is then the class's AP.

    Args:
        pred_boxes (float[D, 4]): detections, ``xyxy`` pixels.
        scores (float[D]): their confidences.
        true_boxes (float[T, 4]): true boxes, ``xyxy`` pixels.
        iou_threshold: in [0, 1], e.g. 0.5.

    Returns:
        int64[D]: for each detection (in the given order), the index of the true
        box it matched, or -1.

    Raises:
        ValueError: wrong shapes, non-finite values, or ``iou_threshold`` outside [0, 1].
    """
    pb = _finite_boxes(pred_boxes, "pred_boxes", ndim=2)
    tb = _finite_boxes(true_boxes, "true_boxes", ndim=2)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(pb),) or not np.all(np.isfinite(s)):
        raise ValueError(f"`scores` should be {len(pb)} finite numbers, one per detection. Got shape {s.shape}.")
    if isinstance(iou_threshold, bool) or not np.isscalar(iou_threshold) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"`iou_threshold` should be a number in [0, 1]. Got iou_threshold={iou_threshold!r}.")
    order = np.argsort(-s, kind="mergesort")  # [D] best first, ties in given order
    matches = np.full(len(pb), -1, dtype=np.int64)
    matches[order] = _greedy_match(pairwise_iou(pb[order], tb), np.zeros(len(tb), bool), iou_threshold)
    return matches


def _greedy_match(ious: np.ndarray, gt_ignored: np.ndarray, threshold: float) -> np.ndarray:
    """COCO's greedy matching of ranked detections ``ious [D, G]``: the true box of each (int [D]), or -1."""
    taken = np.zeros(ious.shape[1], dtype=bool)  # [G]
    out = np.full(len(ious), -1, dtype=np.int64)
    for d in range(len(ious)):
        g = _best_match(ious[d], taken, gt_ignored, min(threshold, 1 - 1e-10))
        if g >= 0:
            taken[g], out[d] = True, g
    return out


def _match_canvas_class(tb: np.ndarray, pb: np.ndarray, ps: np.ndarray) -> tuple:
    """COCO's ``evaluateImg`` for one canvas and class.

    Args:
        tb (array[G, 4]): true boxes. pb (array[P, 4]): detections. ps (array[P]): their scores.

    Returns:
        tuple: ``scores [D]`` (best first, ``D = min(P, 100)``), ``matched
        [T, D]``, ``ignored [T, D]`` (matched to an ignored true box, or
        unmatched and outside the area range), and the number of true boxes
        that are not ignored.
    """
    order = np.argsort(-ps, kind="mergesort")[:MAX_DETECTIONS]
    pb, ps = pb[order], ps[order]
    gt_ignored = ~_in_area_range(tb)
    ious = pairwise_iou(pb, tb)  # [D, G]
    matched = np.zeros((len(IOU_THRESHOLDS), len(pb)), dtype=bool)
    ignored = np.zeros_like(matched)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        g = _greedy_match(ious, gt_ignored, threshold)  # [D] the same matching as ``match_detections``
        matched[t] = g >= 0
        ignored[t] = matched[t] & gt_ignored[np.maximum(g, 0)] if len(tb) else False
    ignored |= ~matched & ~_in_area_range(pb)[None, :]
    return ps, matched, ignored, int(np.sum(~gt_ignored))


def _best_match(ious: np.ndarray, taken: np.ndarray, gt_ignored: np.ndarray, threshold: float) -> int:
    """Index of the true box one detection matches, or -1; inputs ``[G]``.

    COCO's loop (over true boxes sorted regular first): the free true box
    with the highest IoU >= ``threshold``, the last one on ties, and a
    regular true box before any ignored one.
    """
    free = ~taken & (ious >= threshold)
    for group in (free & ~gt_ignored, free & gt_ignored):
        if group.any():
            best = np.where(group, ious, -np.inf)
            return len(best) - 1 - int(np.argmax(best[::-1]))  # last index of the maximum
    return -1


def _check_scenes(true_boxes, true_labels, pred_boxes, pred_labels, pred_scores, num_classes) -> list:
    """Validated canvases ``[(tb, tl, pb, pl, ps), ...]`` as float64/int64 arrays."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"`num_classes` should be a positive integer. Got num_classes={num_classes!r}.")
    args = {"true_boxes": true_boxes, "true_labels": true_labels, "pred_boxes": pred_boxes,
            "pred_labels": pred_labels, "pred_scores": pred_scores}
    for name, value in args.items():
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(f"`{name}` should be a sequence with one array per canvas. Got {type(value).__name__}.")
        if len(value) != len(true_boxes):
            raise ValueError(f"`{name}` should hold one entry per canvas like `true_boxes` "
                             f"({len(true_boxes)} canvases). Got {len(value)}.")
    canvases = []
    for i in range(len(true_boxes)):
        tb = _finite_boxes(true_boxes[i], f"true_boxes[{i}]", ndim=2)
        pb = _finite_boxes(pred_boxes[i], f"pred_boxes[{i}]", ndim=2)
        tl = _check_labels(true_labels[i], f"true_labels[{i}]", len(tb), num_classes)
        pl = _check_labels(pred_labels[i], f"pred_labels[{i}]", len(pb), num_classes)
        ps = np.asarray(pred_scores[i], dtype=np.float64)
        if ps.shape != (len(pb),) or not np.all(np.isfinite(ps)):
            raise ValueError(f"`pred_scores[{i}]` should be finite numbers of shape ({len(pb)},), one "
                             f"per box of `pred_boxes[{i}]`. Got shape {ps.shape}.")
        canvases.append((tb, tl, pb, pl, ps))
    return canvases


def _check_labels(labels, name: str, n: int, num_classes: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.size == 0:
        arr = arr.reshape(0)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"`{name}` should be {n} integer labels, one per box. Got dtype {arr.dtype} "
                         f"and shape {arr.shape}.")
    if np.any(arr != np.round(arr)) or np.any((arr < 0) | (arr >= num_classes)):
        raise ValueError(f"`{name}` should hold integer classes in [0, {num_classes}). Got {arr.tolist()}.")
    return arr.astype(np.int64)
