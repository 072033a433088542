"""Picking detections out of a dense model's outputs: heatmap peaks, and greedy IoU NMS.

``find_peaks`` keeps the cells that score highest in their 3x3 neighbourhood
(CenterNet's "NMS": a max-pool), so one digit gives one peak, not a bump of
cells. ``nms`` removes boxes that overlap a better-scored box too much: the
duplicates that two peaks on one digit, or one box reported under several
labels, would otherwise leave. NumPy only; ``mnistloc.decoding`` uses both.
"""
from __future__ import annotations

import numpy as np

from mnistloc.boxes import pairwise_iou

NMS_IOU = 0.5  # detections of one class that overlap more than this are duplicates


def _whole(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` should be a whole number >= 1. Got {name}={value!r}.")


def find_peaks(heatmap, *, k: int = 10, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` highest local maxima of each heatmap: CenterNet's NMS (a 3x3 max-pool).

    A cell is a peak when no cell of its 3x3 neighbourhood scores higher (cells
    off the grid do not count; equal neighbours are both peaks) and it scores at
    least ``threshold``.

    Args:
        heatmap (float[N, H, W]): scores, e.g. ``presence[..., 0]``.
        k: peaks to return per map.
        threshold: the lowest score a peak may have.

    Returns:
        (rows, cols, scores): int64[N, k], int64[N, k], float32[N, k]; the peaks of
        each map by descending score (equal scores in row-major order). A map with
        fewer than ``k`` peaks pads with row = col = -1 and score 0.

    Raises:
        ValueError: ``heatmap`` not (N, H, W), or ``k`` not a whole number >= 1.
    """
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 3:
        raise ValueError(f"`heatmap` should be a batch of maps of shape (N, H, W). Got shape {heat.shape}.")
    _whole(k, "k")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"`threshold` should be a number. Got threshold={threshold!r}.")
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local_max = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)  # [N, H, W]
    peak = np.where((heat >= local_max) & (heat >= threshold), heat, -np.inf).reshape(n, h * w)  # [N, H*W]
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]  # [N, min(k, H*W)]
    idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
    scores = np.take_along_axis(peak, idx, axis=1)
    scores[:, h * w:] = -np.inf  # k > H*W: no cell left
    found = np.isfinite(scores)
    return (np.where(found, idx // w, -1).astype(np.int64), np.where(found, idx % w, -1).astype(np.int64),
            np.where(found, scores, 0).astype(np.float32))


def nms(boxes, scores, iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression: the best box, then the best that overlaps no kept box too much, ...

    Boxes are taken by descending score (equal scores in the given order); a
    box is dropped when its IoU with a box already kept is above
    ``iou_threshold``. Dropped boxes drop nothing.

    Args:
        boxes (float[M, 4]): ``xyxy`` pixels.
        scores (float[M]): one per box.
        iou_threshold: in [0, 1]; IoU above it means "the same object".

    Returns:
        int64[K]: indices of the kept boxes into ``boxes``, by descending score.

    Raises:
        ValueError: shapes that disagree, or ``iou_threshold`` outside [0, 1].
    """
    b, s = np.asarray(boxes, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if b.size == 0 and b.ndim <= 2:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` should be xyxy boxes of shape (M, 4). Got shape {b.shape}.")
    if s.shape != (len(b),):
        raise ValueError(f"`scores` should hold one score per box, shape ({len(b)},). Got shape {s.shape}.")
    if isinstance(iou_threshold, bool) or not np.isscalar(iou_threshold) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"`iou_threshold` should be a number in [0, 1]. Got iou_threshold={iou_threshold!r}.")
    ious = pairwise_iou(b, b)  # [M, M]
    dropped = np.zeros(len(b), dtype=bool)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)
