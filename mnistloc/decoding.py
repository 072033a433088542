"""From boxes to per-cell training maps and back: the dense models' targets and decoding.

The grid has one cell per ``STRIDE x STRIDE`` pixels; cell (i, j) covers rows
``8i .. 8i+7`` and columns ``8j .. 8j+7`` and its centre is at pixel
``(8j + 4, 8i + 4)`` (x, y). A digit belongs to the cell that holds its box's
centre. NumPy only: no TensorFlow here.

Encoding (``encode_targets``), for ``n`` canvases of side ``size``, ``S = size / 8``:
    presence (n, S, S, 1): 1 at each digit's cell, a Gaussian bump of
        ``SIGMA`` cells around it (CenterNet), 0 far away.
    box (n, S, S, 5): a weight (the bump, cut to the 3x3 cells around the
        centre), then the distances (left, top, right, bottom) in cells from
        each cell's centre to the sides of its nearest digit's box.
    class (n, S, S, 11): the same weight, then the digit's one-hot class.
    count (n, 3): one-hot count.

Decoding (``decode``) reads the boxes and classes at the presence peaks.
"""
from __future__ import annotations

import numpy as np

from mnistloc.canvas import NUM_CLASSES, SLOTS

STRIDE = 8
SIGMA = 1.0  # width of the centre bump, in cells
RADIUS = 1  # cells around a centre that learn its box and class
REFINE = True  # average the boxes of the cells around a peak


def _check_boxes(boxes, classes, mask):
    boxes = np.asarray(boxes, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    classes = np.asarray(classes)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or mask.shape != boxes.shape[:2] or classes.shape != mask.shape:
        raise ValueError(f"Expected boxes (n, K, 4), classes (n, K) and mask (n, K). "
                         f"Got {boxes.shape}, {classes.shape} and {mask.shape}.")
    return boxes, classes, mask


def encode_targets(boxes, classes, mask, *, size: int = 128) -> dict[str, np.ndarray]:
    """Per-cell training targets for the dense models.

    Args:
        boxes (float[n, K, 4]): ``xyxy`` pixels.
        classes (int[n, K]): classes, -1 (or anything) where unused.
        mask (bool[n, K]): used slots.
        size: canvas side in pixels, a multiple of ``STRIDE``.

    Returns:
        dict of float32 arrays: ``presence`` (n, S, S, 1), ``box`` (n, S, S, 5),
        ``class`` (n, S, S, 11), ``count`` (n, 3); S = size / 8 (see the module docstring).
    """
    boxes, classes, mask = _check_boxes(boxes, classes, mask)
    if size % STRIDE:
        raise ValueError(f"`size` should be a multiple of {STRIDE}. Got size={size}.")
    n, k = mask.shape
    s = size // STRIDE
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [n, K, 2] x, y pixels
    cell = np.clip(np.floor(centre / STRIDE), 0, s - 1)  # [n, K, 2] column, row
    grid = np.arange(s, dtype=np.float32)
    dx = grid[None, None, None, :] - cell[..., 0, None, None]  # [n, K, 1, S] columns from the centre
    dy = grid[None, None, :, None] - cell[..., 1, None, None]  # [n, K, S, 1] rows from the centre
    heat = np.exp(-(dx ** 2 + dy ** 2) / (2 * SIGMA ** 2)) * mask[..., None, None]  # [n, K, S, S]
    near = (np.abs(dx) <= RADIUS) & (np.abs(dy) <= RADIUS)
    weight = np.where(near, heat, 0)  # [n, K, S, S]
    owner = np.argmax(heat, axis=1)  # [n, S, S] the nearest digit of each cell

    ctr = (grid + 0.5) * STRIDE  # [S] cell centres in pixels
    b = np.take_along_axis(boxes, owner.reshape(n, -1, 1), axis=1).reshape(n, s, s, 4)
    ltrb = np.stack([ctr[None, None, :] - b[..., 0], ctr[None, :, None] - b[..., 1],
                     b[..., 2] - ctr[None, None, :], b[..., 3] - ctr[None, :, None]], axis=-1) / STRIDE
    w = weight.max(axis=1)[..., None]  # [n, S, S, 1]
    cls = np.take_along_axis(np.where(mask, classes, 0), owner.reshape(n, -1), axis=1).reshape(n, s, s)
    one_hot = (cls[..., None] == np.arange(NUM_CLASSES)).astype(np.float32)
    count = (mask.sum(axis=1)[:, None] == np.arange(SLOTS + 1)).astype(np.float32)
    return {"presence": heat.max(axis=1)[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, one_hot], axis=-1).astype(np.float32),
            "count": count}


def _peaks(heat: np.ndarray, k: int):
    """The ``k`` highest local maxima (3x3) of each map.

    Args:
        heat (float[n, S, S]).

    Returns:
        rows, cols (int[n, k]), scores (float[n, k]), best first.
    """
    n, s, _ = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local_max = np.max([padded[:, i:i + s, j:j + s] for i in range(3) for j in range(3)], axis=0)
    peak = np.where(heat >= local_max, heat, -np.inf).reshape(n, -1)  # [n, S*S]
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]  # [n, k]
    scores = np.take_along_axis(peak, idx, axis=1)
    return idx // s, idx % s, np.maximum(scores, 0)


def _boxes_at(ltrb: np.ndarray, rows, cols, size: int, heat: np.ndarray | None = None) -> np.ndarray:
    """``xyxy`` pixel boxes (n, k, 4) decoded from ltrb maps (n, S, S, 4) at cells (n, k).

    With ``heat`` (n, S, S), each box is the mean of the boxes that the 3x3
    cells around the peak give, weighted by their presence: they all learned
    the same digit's box (``RADIUS``), and their errors partly cancel.
    """
    n, s = len(ltrb), ltrb.shape[1]
    i = np.arange(n)[:, None]
    offsets = [(0, 0)] if heat is None else [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    total, weight = 0.0, 0.0
    for di, dj in offsets:
        r, c = rows + di, cols + dj
        inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
        r, c = np.clip(r, 0, s - 1), np.clip(c, 0, s - 1)
        d = ltrb[i, r, c] * STRIDE  # [n, k, 4] pixels
        cx, cy = (c + 0.5) * STRIDE, (r + 0.5) * STRIDE
        xyxy = np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1)
        w = (inside * (1.0 if heat is None else heat[i, r, c]))[..., None]  # [n, k, 1]
        total, weight = total + w * xyxy, weight + w
    return np.clip(total / np.maximum(weight, 1e-12), 0, size).astype(np.float32)


def _class_probs(probs: np.ndarray, heat: np.ndarray, rows, cols) -> np.ndarray:
    """Class probabilities (n, k, K) at cells (n, k): the mean over the 3x3 cells around each,
    weighted by the presence map, since every cell near a centre learned its class.
    """
    n, s, _ = heat.shape
    padded_p = np.pad(probs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    padded_h = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    i = np.arange(n)[:, None]
    total, weight = 0.0, 0.0
    for di in range(3):
        for dj in range(3):
            w = padded_h[i, rows + di, cols + dj][..., None]  # [n, k, 1]
            total = total + w * padded_p[i, rows + di, cols + dj]
            weight = weight + w
    return total / np.maximum(weight, 1e-12)


def _outputs(outputs) -> dict[str, np.ndarray]:
    if not isinstance(outputs, dict) or "presence" not in outputs or "box" not in outputs:
        raise ValueError("`outputs` should be a model's outputs: a dict with at least 'presence' and 'box'. "
                         f"Got {type(outputs).__name__}"
                         + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "") + ".")
    return {key: np.asarray(value) for key, value in outputs.items()}


def decode(case: int, outputs, *, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Canvas-level predictions from a dense model's outputs.

    Case 1 and 3: the highest presence peak is the digit. Case 2: every peak
    scoring >= ``threshold`` (at most two) is a digit. Case 4: the count head
    says how many digits; the highest peaks are they. Slots are ordered left
    to right, like ``mnistloc.canvas``.

    Args:
        case: 1 to 4.
        outputs: the model's outputs (``model.predict(images)``): ``presence``
            (n, S, S, 1), ``box`` (n, S, S, 4), and ``class`` (n, S, S, 10) and
            ``count`` (n, 3) where the case has them.
        threshold: presence score that counts as a digit (case 2).

    Returns:
        dict: ``boxes`` float32 (n, 2, 4) ``xyxy`` pixels, zeros where unused;
        ``mask`` bool (n, 2); ``classes`` int64 (n, 2), -1 where unused or
        unknown (cases 1, 2); ``scores`` float32 (n, 2); ``count`` int64 (n,);
        and as in ``CanvasDataset.targets`` but in pixels: ``box`` (n, 4)
        (cases 1 to 3; case 2: the union box, zeros when empty), ``presence``
        bool (n,) (case 2), ``class`` int64 (n,) (case 3).
    """
    if case not in (1, 2, 3, 4):
        raise ValueError(f"`case` should be one of (1, 2, 3, 4). Got case={case!r}.")
    out = _outputs(outputs)
    heat = out["presence"][..., 0]
    n, s, _ = heat.shape
    rows, cols, scores = _peaks(heat, SLOTS)  # [n, 2]
    boxes = _boxes_at(out["box"], rows, cols, s * STRIDE, heat if REFINE else None)  # [n, 2, 4]
    if case in (1, 3):
        count = np.ones(n, dtype=np.int64)
    elif case == 2:
        count = (scores >= threshold).sum(axis=1)
    else:
        if "count" not in out:
            raise ValueError("`outputs` of case 4 should hold 'count'. Got keys " + str(sorted(out)) + ".")
        count = out["count"].argmax(axis=-1)
    mask = np.arange(SLOTS) < count[:, None]  # [n, 2]
    if "class" in out:
        classes = _class_probs(out["class"], heat, rows, cols).argmax(axis=-1)
    else:
        classes = np.full((n, SLOTS), -1)
    result = _left_to_right(np.where(mask[..., None], boxes, 0), np.where(mask, classes, -1),
                            np.where(mask, scores, 0), mask)
    result["count"] = count.astype(np.int64)
    if case in (1, 3):
        result["box"] = result["boxes"][:, 0]
    if case == 2:
        result["presence"] = count > 0
        result["box"] = _union(result["boxes"], result["mask"])
    if case == 3:
        result["class"] = result["classes"][:, 0]
    return result


def _left_to_right(boxes, classes, scores, mask) -> dict[str, np.ndarray]:
    x0 = np.where(mask, boxes[..., 0], np.inf)
    order = np.argsort(x0, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)  # noqa: E731
    return {"boxes": take(boxes).astype(np.float32), "mask": take(mask), "classes": take(classes).astype(np.int64),
            "scores": take(scores).astype(np.float32)}


def _union(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Union box (n, 4) of the used slots; zeros where none is used."""
    lo = np.where(mask[..., None], boxes[..., :2], np.inf).min(axis=1)
    hi = np.where(mask[..., None], boxes[..., 2:], -np.inf).max(axis=1)
    return np.where(mask.any(axis=1)[:, None], np.concatenate([lo, hi], axis=-1), 0).astype(np.float32)


def detections(outputs, *, k: int = 10, classes_per_peak: int = NUM_CLASSES, min_score: float = 0.01):
    """Scored, labelled boxes for average precision, as CenterNet decodes: several classes a peak.

    Each of the ``k`` highest presence peaks gives its box once for each of its
    ``classes_per_peak`` most probable classes (all by default), scored
    ``presence x class probability``, dropping scores below ``min_score``. A
    digit the model is unsure of (a 4 or a 9?) is then found under both labels,
    the right one usually with the higher score: what COCO's AP rewards, and
    what a detector with one heatmap per class (CenterNet) reports too. On a
    case 4 model: AP50 0.918 with one label a peak, 0.967 with all.

    Args:
        outputs: a case 4 (or 3) model's outputs, as for ``decode``.
        k: peaks a canvas.
        classes_per_peak: labels each peak's box is reported with.
        min_score: detections scoring less are dropped.

    Returns:
        (boxes, labels, scores): lists of n arrays: float32 (P_i, 4) ``xyxy``
        pixels, int64 (P_i,), float32 (P_i,); best first.
    """
    out = _outputs(outputs)
    if "class" not in out:
        raise ValueError("`outputs` should hold 'class' to label detections. Got keys " + str(sorted(out)) + ".")
    heat = out["presence"][..., 0]
    n, s, _ = heat.shape
    rows, cols, peak = _peaks(heat, k)
    boxes = _boxes_at(out["box"], rows, cols, s * STRIDE, heat if REFINE else None)  # [n, k, 4]
    probs = _class_probs(out["class"], heat, rows, cols)  # [n, k, 10]
    labels = np.argsort(-probs, axis=-1, kind="stable")[..., :classes_per_peak]  # [n, k, c]
    scores = peak[..., None] * np.take_along_axis(probs, labels, axis=-1)  # [n, k, c]
    boxes = np.repeat(boxes[:, :, None], labels.shape[-1], axis=2)  # [n, k, c, 4]
    result = ([], [], [])
    for i in range(n):
        sc = scores[i].ravel()
        order = np.argsort(-sc, kind="stable")
        order = order[sc[order] >= min_score]
        result[0].append(boxes[i].reshape(-1, 4)[order])
        result[1].append(labels[i].ravel()[order].astype(np.int64))
        result[2].append(sc[order].astype(np.float32))
    return result
