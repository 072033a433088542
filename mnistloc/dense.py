"""Case 5's detector around the dense heads: targets for digits of any size, peaks, NMS, detections.

The model (``models.build_case5_model``) has the dense heads of cases 1 to 4
(``presence``, ``box``, ``class`` per 8x8 cell) and no count head: a canvas
holds as many digits as its presence map has peaks.

Encoding (``encode_targets``), as ``mnistloc.decoding`` but scale-aware: a
digit's centre bump has ``sigma = max(SIGMA_MIN, sqrt(w h) / STRIDE * SIGMA_PER_CELL)``
cells (CenterNet scales its Gaussian radius with the box): a digit at scale
0.6 is about 1.5 cells tall, one at 1.6 about 4, and one fixed width would
either blur small neighbours together or leave large digits with a single
sharp cell. Cells learn the box and class of the digit whose bump is highest
there, within ``RADIUS`` cells of its centre.

Decoding (``detect``): every 3x3 local maximum of the presence map (at most
``k`` a canvas, ``mnistloc.peaks.find_peaks``) is a candidate; its box is read
at its cell; greedy non-maximum suppression (``nms``: ``mnistloc.peaks.nms``
on each canvas) drops a candidate overlapping a higher-scoring one by IoU >
``iou_threshold``. The count is the
number of kept peaks scoring >= ``threshold``; for average precision every
kept peak is reported under each class, scored presence x class probability.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import metrics, peaks

STRIDE = 8
SIGMA_MIN = 0.5  # cells
SIGMA_PER_CELL = 1 / 6  # sigma per cell of box size: CenterNet's diameter / 6
RADIUS = 1  # cells around a centre that learn its box and class
NUM_CLASSES = 10
THRESHOLD = 0.5  # presence score that counts as a digit
IOU_THRESHOLD = 0.5  # NMS
MAX_DETECTIONS = 20  # peaks a canvas
REFINE = True  # average the boxes and classes of the agreeing cells around a peak (``refine``)


def sigmas(boxes) -> np.ndarray:
    """The centre bump's width in cells for each box: float32[...] from ``xyxy`` pixel boxes [..., 4]."""
    b = np.asarray(boxes, dtype=np.float32)
    side = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)) / STRIDE
    return np.maximum(SIGMA_MIN, side * SIGMA_PER_CELL).astype(np.float32)


def encode_targets(boxes, classes, mask, *, size: int = 128, sigma_fn=None) -> dict[str, np.ndarray]:
    """Per-cell training targets for any number of digits of any size.

    Args:
        boxes (float[n, K, 4]): ``xyxy`` pixels.
        classes (int[n, K]): classes, -1 where unused.
        mask (bool[n, K]): used slots.
        size: canvas side in pixels, a multiple of ``STRIDE``.
        sigma_fn: stands in for ``sigmas`` (e.g. a student's, lesson 5), same argument and result.

    Returns:
        dict of float32 arrays, S = size / 8: ``presence`` (n, S, S, 1) (1 at
        each centre's cell, a bump of ``sigmas(box)`` cells around it);
        ``box`` (n, S, S, 5): a weight (the bump within ``RADIUS`` cells), then
        the distances (left, top, right, bottom) in cells from the cell's centre
        to the sides of the cell's digit; ``class`` (n, S, S, 11): the weight,
        then the one-hot class.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    mask, classes = np.asarray(mask, dtype=bool), np.asarray(classes)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or mask.shape != boxes.shape[:2] or classes.shape != mask.shape:
        raise ValueError(f"Expected boxes (n, K, 4), classes (n, K) and mask (n, K). "
                         f"Got {boxes.shape}, {classes.shape} and {mask.shape}.")
    if size % STRIDE:
        raise ValueError(f"`size` should be a multiple of {STRIDE}. Got size={size}.")
    n, s = len(boxes), size // STRIDE
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [n, K, 2] x, y pixels
    cell = np.clip(np.floor(centre / STRIDE), 0, s - 1)  # [n, K, 2] column, row
    grid = np.arange(s, dtype=np.float32)
    dx = grid[None, None, None, :] - cell[..., 0, None, None]  # [n, K, 1, S]
    dy = grid[None, None, :, None] - cell[..., 1, None, None]  # [n, K, S, 1]
    sigma = np.asarray((sigma_fn or sigmas)(boxes), np.float32)[..., None, None]  # [n, K, 1, 1]
    heat = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)) * mask[..., None, None]  # [n, K, S, S]
    near = (np.abs(dx) <= RADIUS) & (np.abs(dy) <= RADIUS)
    owner = np.argmax(heat, axis=1)  # [n, S, S] the digit whose bump is highest in each cell
    weight = np.where(near, heat, 0).max(axis=1)[..., None]  # [n, S, S, 1]

    ctr = (grid + 0.5) * STRIDE  # [S] cell centres in pixels
    b = np.take_along_axis(boxes, owner.reshape(n, -1, 1), axis=1).reshape(n, s, s, 4)
    ltrb = np.stack([ctr[None, None, :] - b[..., 0], ctr[None, :, None] - b[..., 1],
                     b[..., 2] - ctr[None, None, :], b[..., 3] - ctr[None, :, None]], axis=-1) / STRIDE
    cls = np.take_along_axis(np.where(mask, classes, 0), owner.reshape(n, -1), axis=1).reshape(n, s, s)
    one_hot = (cls[..., None] == np.arange(NUM_CLASSES)).astype(np.float32)
    return {"presence": heat.max(axis=1)[..., None].astype(np.float32),
            "box": np.concatenate([weight, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, one_hot], axis=-1).astype(np.float32)}


def boxes_at(ltrb, rows, cols) -> np.ndarray:
    """``xyxy`` pixel boxes (n, k, 4) from per-cell distances (n, S, S, 4) in cells, at cells (n, k)."""
    ltrb = np.asarray(ltrb, dtype=np.float32)
    s = ltrb.shape[1]
    d = ltrb[np.arange(len(ltrb))[:, None], rows, cols] * STRIDE  # [n, k, 4] pixels
    cx, cy = (cols + 0.5) * STRIDE, (rows + 0.5) * STRIDE
    xyxy = np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1)
    return np.clip(xyxy, 0, s * STRIDE).astype(np.float32)


def refine(ltrb, probs, heat, rows, cols, *, agree: float = 0.5):
    """Boxes and class probabilities at peaks, averaged over the 3x3 cells around each.

    Every cell within ``RADIUS`` of a centre learned that digit's box and
    class, so their answers average out part of each cell's error. A
    neighbour counts, weighted by its presence score, only when its box
    overlaps the peak's own by IoU >= ``agree``: in a crowd it may belong to
    another digit.

    Args:
        ltrb (float[n, S, S, 4]), probs (float[n, S, S, C]), heat (float[n, S, S]): the maps.
        rows, cols (int[n, k]): the peaks.
        agree: IoU with the peak's box that a neighbour needs to count.

    Returns:
        boxes float32 (n, k, 4) ``xyxy`` pixels, probs float32 (n, k, C).
    """
    n, s = heat.shape[:2]
    i = np.arange(n)[:, None]
    own = boxes_at(ltrb, rows, cols)
    total_b, total_p, weight = 0.0, 0.0, 0.0
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            r, c = rows + di, cols + dj
            inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
            r, c = np.clip(r, 0, s - 1), np.clip(c, 0, s - 1)
            b = boxes_at(ltrb, r, c)  # [n, k, 4]
            w = (inside & (B.iou(b, own) >= agree)) * heat[i, r, c]  # [n, k]
            if di == 0 and dj == 0:
                w = np.maximum(w, 1e-6)  # the peak itself always counts
            total_b = total_b + w[..., None] * b
            total_p = total_p + w[..., None] * probs[i, r, c]
            weight = weight + w[..., None]
    return (total_b / weight).astype(np.float32), (total_p / weight).astype(np.float32)


def nms(boxes, scores, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """Greedy non-maximum suppression over each canvas, class-agnostic: ``peaks.nms`` per canvas, as a mask.

    Going down the scores, a box is kept unless it overlaps an already kept
    box by IoU > ``iou_threshold``.

    Args:
        boxes (float[n, k, 4]): ``xyxy`` boxes.
        scores (float[n, k]): their scores.
        iou_threshold: the largest overlap a kept box may have with a better one.

    Returns:
        bool[n, k]: which boxes are kept.
    """
    boxes, scores = np.asarray(boxes, dtype=np.float32), np.asarray(scores, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]:
        raise ValueError(f"Expected boxes (n, k, 4) and scores (n, k). Got {boxes.shape} and {scores.shape}.")
    keep = np.zeros(scores.shape, dtype=bool)
    for i, (b, s) in enumerate(zip(boxes, scores)):
        keep[i, peaks.nms(b, s, iou_threshold)] = True
    return keep


def _outputs(outputs) -> dict[str, np.ndarray]:
    if not isinstance(outputs, dict) or not {"presence", "box", "class"} <= set(outputs):
        raise ValueError("`outputs` should be a case 5 model's outputs: a dict with 'presence', 'box' and 'class'. "
                         f"Got {type(outputs).__name__}"
                         + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "") + ".")
    return {key: np.asarray(value) for key, value in outputs.items()}


def detect(outputs, *, k: int = MAX_DETECTIONS, threshold: float = THRESHOLD,
           iou_threshold: float = IOU_THRESHOLD) -> dict[str, np.ndarray]:
    """The digits a case 5 model finds: peaks, their boxes and classes, after NMS.

    Args:
        outputs: ``presence`` (n, S, S, 1), ``box`` (n, S, S, 4) and ``class`` (n, S, S, 10).
        k: peaks considered a canvas.
        threshold: presence score that counts as a digit.
        iou_threshold: NMS overlap.

    Returns:
        dict, slots best first: ``boxes`` float32 (n, k, 4) ``xyxy`` pixels;
        ``scores`` float32 (n, k) presence; ``probs`` float32 (n, k, 10) class
        probabilities; ``classes`` int64 (n, k); ``kept`` bool (n, k) after
        NMS; ``mask`` bool (n, k) kept and scoring >= ``threshold``;
        ``count`` int64 (n,) = ``mask.sum(1)``.
    """
    out = _outputs(outputs)
    heat = out["presence"][..., 0]
    rows, cols, scores = peaks.find_peaks(heat, k=k)  # [n, k]; missing peaks: row = col = -1, score 0
    rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)  # read anywhere: a score of 0 is never kept
    if REFINE:
        boxes, probs = refine(out["box"], out["class"], heat, rows, cols)
    else:
        boxes = boxes_at(out["box"], rows, cols)
        probs = out["class"][np.arange(len(rows))[:, None], rows, cols].astype(np.float32)  # [n, k, 10]
    kept = nms(boxes, scores, iou_threshold) & (scores > 0)
    mask = kept & (scores >= threshold)
    return {"boxes": boxes, "scores": scores, "probs": probs, "classes": probs.argmax(-1).astype(np.int64),
            "kept": kept, "mask": mask, "count": mask.sum(axis=1).astype(np.int64)}


def detections(found: dict, *, min_score: float = 0.01):
    """Scored, labelled boxes for average precision: each kept peak under every class.

    Each box is reported once per class, scored presence x class probability,
    dropping scores below ``min_score`` (as CenterNet, whose heatmaps are per
    class): a digit the model is unsure of is found under both labels.

    Args:
        found: ``detect``'s result.
        min_score: detections scoring less are dropped.

    Returns:
        (boxes, labels, scores): lists with one array per canvas, (m, 4), (m,), (m,).
    """
    joint = found["scores"][..., None] * found["probs"] * found["kept"][..., None]  # [n, k, 10]
    boxes, labels, scores = [], [], []
    for b, j in zip(found["boxes"], joint):
        p, c = np.nonzero(j >= min_score)
        boxes.append(b[p])
        labels.append(c.astype(np.int64))
        scores.append(j[p, c])
    return boxes, labels, scores


def score(ds, outputs) -> dict[str, float]:
    """Case 5 metrics on a dataset: ``count_accuracy`` and COCO ``map``, ``map50``, ``map75``."""
    found = detect(outputs)
    true_boxes, true_labels = ds.box_lists()
    ap = metrics.mean_average_precision(true_boxes, true_labels, *detections(found))
    return {"count_accuracy": float(np.mean(found["count"] == ds.count)),
            "map": ap["map"], "map50": ap["map50"], "map75": ap["map75"]}


def picture(outputs, index=None) -> dict:
    """The found digits of canvases ``index`` as ``viz.sample_grid`` takes them: lists of boxes, labels, scores."""
    found = detect(outputs)
    index = np.arange(len(found["count"])) if index is None else np.asarray(index)
    m = found["mask"]
    return {key: [found[src][i][m[i]] for i in index]
            for key, src in (("boxes", "boxes"), ("labels", "classes"), ("scores", "scores"))}


def per_canvas_quality(ds, outputs) -> np.ndarray:
    """A score per canvas (n,), higher is better: the mean best IoU of its true digits, 0 if the count is wrong."""
    found = detect(outputs)
    q = np.ones(len(ds))
    for i in range(len(ds)):
        t, p = ds.boxes[i][ds.mask[i]], found["boxes"][i][found["mask"][i]]
        if len(t) and len(p):
            q[i] = B.pairwise_iou(t, p).max(axis=1).mean()
        elif len(t) or len(p):
            q[i] = 0.0
    return np.where(found["count"] == ds.count, q, 0.0)
