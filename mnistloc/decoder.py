"""From a detector's per-cell outputs back to digits: the one decoder of every case.

The maps are those of ``mnistloc.targets``: ``presence`` (n, G, G, 1), ``box``
(n, G, G, 4) distances ``(l, t, r, b)`` in cells, ``class`` (n, G, G, 10)
probabilities. The steps, each a short public function (most are the course's
exercises):

1. ``find_peaks``: the cells that score highest in their 3x3 neighbourhood
   (CenterNet's max-pool), so one digit gives one peak, not a bump of cells;
2. ``boxes_from_cells``: the box each cell predicts (the inverse of ``targets.box_targets``);
3. ``refine``: each peak's box and class probabilities averaged over the
   agreeing cells around it (every cell near a centre learned that digit);
4. ``nms``: greedy non-maximum suppression drops a box that overlaps a
   better-scored one by IoU above a threshold;
5. ``detect`` runs 1-4 and keeps the peaks scoring at least ``threshold``;
   ``detections`` turns its result into the scored, labelled boxes that
   average precision takes, and ``slots`` into the left-to-right slots of the
   cases with at most two digits.

NumPy only: no TensorFlow here. Each step of ``detect`` takes a stand-in
(``peaks_fn``, ``cells_fn``, ``nms_fn``) so a lesson can run it with a student's own part.
"""
from __future__ import annotations

import numpy as np

from mnistloc import cases
from mnistloc.boxes import iou, pairwise_iou
from mnistloc.canvas import left_to_right_order, take_slots
from mnistloc.targets import STRIDE

NMS_IOU = 0.5  # boxes that overlap more than this are one digit
THRESHOLD = 0.5  # presence score that counts as a digit
MAX_DETECTIONS = 20  # peaks a canvas
AGREE = 0.5  # IoU with a peak's own box that a neighbouring cell needs to count in ``refine``
MIN_SCORE = 0.01  # detections scoring less are not reported for AP


def _whole(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` should be a whole number >= 1. Got {name}={value!r}.")


def _unit(value, name: str) -> None:
    if isinstance(value, bool) or not np.isscalar(value) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` should be a number in [0, 1]. Got {name}={value!r}.")


# ---- the parts --------------------------------------------------------------------------------

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


def boxes_from_cells(distances, *, stride: int = STRIDE) -> np.ndarray:
    """The box each cell predicts: the inverse of ``targets.box_targets``.

    Cell (i, j), centre ``(cx, cy) = ((j + 0.5) stride, (i + 0.5) stride)``, with
    distances ``(l, t, r, b)`` in cells gives ``(cx - l stride, cy - t stride,
    cx + r stride, cy + b stride)``. No clipping.

    Args:
        distances (float[..., H, W, 4]): ``(l, t, r, b)`` in cells, e.g. a box
            head's output (N, G, G, 4).
        stride: pixels a cell side.

    Returns:
        float32[..., H, W, 4]: ``xyxy`` pixels, one box per cell.

    Raises:
        ValueError: ``distances`` not of shape (..., H, W, 4).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim < 3 or d.shape[-1] != 4:
        raise ValueError(f"`distances` should be (l, t, r, b) per cell, of shape (..., H, W, 4). Got shape {d.shape}.")
    _whole(stride, "stride")
    cy = (np.arange(d.shape[-3]) + 0.5)[:, None] * stride  # [H, 1] pixels
    cx = (np.arange(d.shape[-2]) + 0.5)[None, :] * stride  # [1, W]
    d = d * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


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
    _unit(iou_threshold, "iou_threshold")
    ious = pairwise_iou(b, b)  # [M, M]
    dropped = np.zeros(len(b), dtype=bool)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


def _at(maps: np.ndarray, rows, cols) -> np.ndarray:
    """``maps[i, rows[i, j], cols[i, j]]``: (n, k, C) from maps (n, H, W, C) at cells (n, k)."""
    return maps[np.arange(len(maps))[:, None], rows, cols]


def refine(every_box, probs, heat, rows, cols, *, agree: float = AGREE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and class probabilities at peaks, averaged over the 3x3 cells around each.

    Every cell within one cell of a centre learned that digit's box and class
    (``targets.RADIUS``), so their answers average out part of each cell's
    error. A neighbour counts, weighted by its presence score, only when its
    box overlaps the peak's own by IoU >= ``agree``: in a crowd it may belong
    to another digit.

    Args:
        every_box (float[n, S, S, 4]): each cell's ``xyxy`` box (``boxes_from_cells``).
        probs (float[n, S, S, C] | None): class probabilities, or None.
        heat (float[n, S, S]): the presence map.
        rows, cols (int[n, k]): the peaks, inside the grid.
        agree: IoU with the peak's box that a neighbour needs to count.

    Returns:
        (boxes float32 (n, k, 4), probs float32 (n, k, C) or None).
    """
    n, s = heat.shape[:2]
    i = np.arange(n)[:, None]
    own = _at(every_box, rows, cols)  # [n, k, 4]
    total_b, total_p, weight = 0.0, 0.0, 0.0
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            r, c = rows + di, cols + dj
            inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
            r, c = np.clip(r, 0, s - 1), np.clip(c, 0, s - 1)
            b = _at(every_box, r, c)  # [n, k, 4]
            w = (inside & (iou(b, own) >= agree)) * heat[i, r, c]  # [n, k]
            if di == 0 and dj == 0:
                w = np.maximum(w, 1e-6)  # the peak itself always counts
            total_b = total_b + w[..., None] * b
            if probs is not None:
                total_p = total_p + w[..., None] * _at(probs, r, c)
            weight = weight + w[..., None]
    boxes = (total_b / weight).astype(np.float32)
    return boxes, (None if probs is None else (total_p / weight).astype(np.float32))


# ---- the pipeline -----------------------------------------------------------------------------

def _outputs(outputs) -> dict[str, np.ndarray]:
    if not isinstance(outputs, dict) or not {"presence", "box"} <= set(outputs):
        raise ValueError("`outputs` should be a detector's outputs: a dict with at least 'presence' and 'box'. "
                         f"Got {type(outputs).__name__}"
                         + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "") + ".")
    return {key: np.asarray(value) for key, value in outputs.items()}


def detect(outputs, *, k: int = MAX_DETECTIONS, threshold: float = THRESHOLD, iou_threshold: float | None = NMS_IOU,
           refine_boxes: bool = True, peaks_fn=None, cells_fn=None, nms_fn=None) -> dict[str, np.ndarray]:
    """The digits a detector finds: peaks, their boxes and classes, after NMS.

    Args:
        outputs: ``presence`` (n, S, S, 1), ``box`` (n, S, S, 4), and ``class``
            (n, S, S, 10) where the model has it.
        k: peaks considered a canvas.
        threshold: presence score that counts as a digit.
        iou_threshold: NMS's (class-agnostic); None for none (the max-pool of the peaks only).
        refine_boxes: average boxes and classes over the agreeing cells around each peak (``refine``).
        peaks_fn, cells_fn, nms_fn: stand in for ``find_peaks``, ``boxes_from_cells``, ``nms``.

    Returns:
        dict, slots best first: ``boxes`` float32 (n, k, 4) ``xyxy`` pixels
        clipped to the canvas; ``scores`` float32 (n, k) presence (0 where no
        peak); ``probs`` float32 (n, k, 10) class probabilities (absent without
        ``class``); ``classes`` int64 (n, k), -1 without ``class``; ``kept`` bool
        (n, k): a peak (scoring > 0) that NMS keeps; ``mask`` bool (n, k): kept and scoring >=
        ``threshold``; ``count`` int64 (n,) = ``mask.sum(1)``.
    """
    out = _outputs(outputs)
    heat = out["presence"][..., 0]
    n, s = heat.shape[:2]
    rows, cols, scores = (np.asarray(a) for a in (peaks_fn or find_peaks)(heat, k=k, threshold=0.0))  # [n, k]
    found = (rows >= 0) & (scores > 0)  # a peak of an all-zero neighbourhood is no digit
    rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)  # read anywhere: a missing peak is never kept
    every = np.asarray((cells_fn or boxes_from_cells)(out["box"], stride=STRIDE))  # [n, S, S, 4] pixels
    probs = out.get("class")
    if refine_boxes:
        boxes, probs = refine(every, probs, heat, rows, cols)
    else:
        boxes = _at(every, rows, cols)
        probs = None if probs is None else _at(probs, rows, cols).astype(np.float32)
    boxes = np.clip(boxes, 0, s * STRIDE).astype(np.float32)
    kept = found.copy()
    if iou_threshold is not None:
        _unit(iou_threshold, "iou_threshold")
        for i in range(n):
            keep = np.zeros(k, dtype=bool)
            keep[np.asarray((nms_fn or nms)(boxes[i], scores[i], iou_threshold), dtype=np.int64)] = True
            kept[i] &= keep
    mask = kept & (scores >= threshold)
    result = {"boxes": boxes, "scores": np.where(found, scores, 0).astype(np.float32), "kept": kept, "mask": mask,
              "count": mask.sum(axis=1).astype(np.int64),
              "classes": (np.full((n, k), -1) if probs is None else probs.argmax(-1)).astype(np.int64)}
    if probs is not None:
        result["probs"] = probs
    return result


def detections(found: dict, *, all_labels: bool = True, min_score: float = MIN_SCORE):
    """Scored, labelled boxes for average precision, from ``detect``'s result: every kept peak.

    With ``all_labels`` (CenterNet's way, whose heatmaps are per class) each
    box is reported once per class, scored presence x class probability: a
    digit the model is unsure of (a 4 or a 9?) is found under both labels, the
    right one usually with the higher score, which COCO's AP rewards (on a
    case 4 model: AP50 0.918 with one label a peak, 0.967 with all).
    Without, each box is reported once, with its most probable class.
    Detections scoring below ``min_score`` are dropped.

    Returns:
        (boxes, labels, scores): lists of n arrays: float32 (P_i, 4) ``xyxy``
        pixels, int64 (P_i,), float32 (P_i,); best first.
    """
    if "probs" not in found:
        raise ValueError("`found` should come from a model with a 'class' output, to label detections. "
                         f"Got keys {sorted(found)}.")
    joint = found["scores"][..., None] * found["probs"] * found["kept"][..., None]  # [n, k, 10]
    if not all_labels:
        best = joint.argmax(-1)[..., None]
        joint = np.where(np.arange(joint.shape[-1]) == best, joint, 0)
    result = ([], [], [])
    for b, j in zip(found["boxes"], joint):
        p, c = np.nonzero(j >= min_score)
        order = np.argsort(-j[p, c], kind="stable")
        result[0].append(b[p[order]].astype(np.float32))
        result[1].append(c[order].astype(np.int64))
        result[2].append(j[p[order], c[order]].astype(np.float32))
    return result


def slots(found: dict, count, *, k: int) -> dict[str, np.ndarray]:
    """The ``count`` best kept peaks of each canvas as ``k`` slots, left to right (``mnistloc.canvas``'s order).

    Args:
        found: ``detect``'s result.
        count (int[n]): digits a canvas (at most ``k``).
        k: slots a canvas.

    Returns:
        dict: ``boxes`` float32 (n, k, 4), zeros where unused; ``mask`` bool (n, k);
        ``classes`` int64 (n, k), -1 where unused or unknown; ``scores`` float32 (n, k); ``count`` int64 (n,).
    """
    count = np.asarray(count, dtype=np.int64)
    best = np.argsort(~found["kept"], axis=1, kind="stable")[:, :k]  # [n, k] kept peaks first, by score
    take = lambda a: np.take_along_axis(a, best.reshape(best.shape + (1,) * (a.ndim - 2)), axis=1)  # noqa: E731
    mask = (np.arange(k) < count[:, None]) & take(found["kept"])
    boxes = np.where(mask[..., None], take(found["boxes"]), 0)
    classes, scores = np.where(mask, take(found["classes"]), -1), np.where(mask, take(found["scores"]), 0)
    order = left_to_right_order(boxes, mask)
    boxes, mask, classes, scores = (take_slots(a, order) for a in (boxes, mask, classes, scores))
    return {"boxes": boxes.astype(np.float32), "mask": mask, "classes": classes.astype(np.int64),
            "scores": scores.astype(np.float32), "count": mask.sum(axis=1).astype(np.int64)}


def decode(case: int, outputs, *, threshold: float = THRESHOLD, **parts) -> dict[str, np.ndarray]:
    """A case's digits from its detector's outputs, as its spec (``mnistloc.cases``) says to read them.

    ``spec.pick`` chooses which peaks are digits: the ``best`` one; every one
    scoring at least ``threshold`` (at most ``spec.slots``); as many as the
    ``count_head`` says; or ``all`` that NMS keeps and score at least
    ``threshold``. Each digit's box and class are read at its peak (``detect``).

    Args:
        case: 1 to 5.
        outputs: the model's outputs (``model.predict(images)``).
        threshold: the presence score that counts as a digit.
        **parts: ``peaks_fn``, ``cells_fn``, ``nms_fn``, ``refine_boxes`` for ``detect``.

    Returns:
        dict: ``found`` (``detect``'s result), and the ``spec.slots`` digits a canvas, left to right
        (``slots``): ``boxes`` float32 (n, K, 4) ``xyxy`` pixels, ``mask`` bool (n, K),
        ``classes`` int64 (n, K) (-1 where unused or unlabelled), ``scores`` float32 (n, K); ``count`` int64 (n,)
        the digits found (more than K where ``all`` finds more).
    """
    spec = cases.get(case)
    out = _outputs(outputs)
    found = detect(out, k=spec.peaks, threshold=threshold, iou_threshold=spec.nms_iou, **parts)
    if spec.pick == "best":
        count = np.ones(len(found["count"]), dtype=np.int64)
    elif spec.pick == "count_head":
        if "count" not in out:
            raise ValueError(f"`outputs` of case {spec.number} should hold 'count'. Got keys {sorted(out)}.")
        count = out["count"].argmax(axis=-1)
    else:  # "threshold" and "all": the kept peaks that score at least the threshold
        count = found["count"]
    return {**slots(found, np.minimum(count, spec.slots), k=spec.slots), "count": count.astype(np.int64),
            "found": found}
