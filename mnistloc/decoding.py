"""From boxes to per-cell training maps and back: the dense models' targets and decoding.

The grid has one cell per ``stride x stride`` pixels (``STRIDE = 8``): cell
(i, j) covers rows ``8i .. 8i+7`` and columns ``8j .. 8j+7``, and its centre is
at pixel ``(8j + 4, 8i + 4)`` (x, y). A digit belongs to the cell that holds
its box's centre. NumPy only: no TensorFlow here.

The parts, each a short public function (the course's exercises): ``heatmap_targets``
(the Gaussian centre heatmap), ``box_targets`` (per-cell distances to the box's sides),
``boxes_from_cells`` (their inverse), and from ``mnistloc.peaks`` ``find_peaks`` and ``nms``.

Encoding (``encode_targets``), for ``n`` canvases of side ``size``, ``S = size / 8``:
    presence (n, S, S, 1): ``heatmap_targets``: 1 at each digit's cell, a
        Gaussian bump of ``SIGMA`` cells around it (CenterNet), 0 far away.
    box (n, S, S, 5): a weight (the heatmap, cut to the cells ``box_targets``
        marks: the 3x3 cells around each centre), then ``box_targets``'s distances.
    class (n, S, S, 11): the same weight, then the digit's one-hot class.
    count (n, 3): one-hot count.

Decoding (``decode``, ``detections``) reads the boxes and classes at the presence peaks.
Each takes the parts as keyword arguments (defaults: the functions here), so a
lesson can run the pipeline with a student's own version of one part.
"""
from __future__ import annotations

import numpy as np

from mnistloc.canvas import NUM_CLASSES, SLOTS
from mnistloc.peaks import NMS_IOU, find_peaks, nms  # noqa: F401  (part of this module's API)

STRIDE = 8
SIGMA = 1.0  # width of the centre bump, in cells
RADIUS = 1  # cells around a centre that learn its box and class
REFINE = True  # average the boxes of the cells around a peak


# ---- checking arguments -----------------------------------------------------------------------

def _boxes_mask(boxes, mask) -> tuple[np.ndarray, np.ndarray]:
    b, m = np.asarray(boxes, dtype=np.float64), np.asarray(mask)
    if b.ndim != 3 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` should be xyxy pixel boxes of shape (N, K, 4). Got shape {b.shape}.")
    if m.shape != b.shape[:2] or not (m.dtype == bool or np.isin(m, (0, 1)).all()):
        raise ValueError(f"`mask` should be booleans of shape {b.shape[:2]} (N, K), one per box. "
                         f"Got dtype {m.dtype} and shape {m.shape}.")
    return b, m.astype(bool)


def _check_boxes(boxes, classes, mask):
    boxes, mask = _boxes_mask(boxes, mask)
    classes = np.asarray(classes)
    if classes.shape != mask.shape:
        raise ValueError(f"Expected boxes (n, K, 4), classes (n, K) and mask (n, K). "
                         f"Got {boxes.shape}, {classes.shape} and {mask.shape}.")
    return boxes, classes, mask


def _grid(size, stride) -> int:
    """Cells a side, G = size / stride, or raises naming the argument."""
    for name, value in (("size", size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` should be a whole number >= 1. Got {name}={value!r}.")
    if size % stride:
        raise ValueError(f"`size` should be a multiple of `stride` ({stride}). Got size={size}.")
    return size // stride


def _positive(value, name: str, *, whole: bool = False, zero: bool = False) -> None:
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (value >= 0 if zero else value > 0):
        want = ("a whole number" if whole else "a number") + (" >= 0" if zero else " > 0")
        raise ValueError(f"`{name}` should be {want}. Got {name}={value!r}.")


# ---- encoding: boxes -> per-cell targets ------------------------------------------------------

def _centre_offsets(boxes: np.ndarray, g: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of every cell from each box's centre cell: dy [n, K, G, 1], dx [n, K, 1, G]."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [n, K, 2] x, y pixels
    cell = np.clip(np.floor(centre / stride), 0, g - 1)  # [n, K, 2] column, row
    grid = np.arange(g, dtype=np.float64)
    return grid[:, None] - cell[..., 1, None, None], grid[None, :] - cell[..., 0, None, None]


def heatmap_targets(boxes, mask, *, size: int = 128, stride: int = STRIDE, sigma: float = SIGMA) -> np.ndarray:
    """The centre heatmap: a Gaussian bump around each digit's centre cell (CenterNet).

    A digit's centre cell is the cell holding its box's centre: row
    ``floor((y0 + y1) / 2 / stride)``, column ``floor((x0 + x1) / 2 / stride)``.
    Cell (i, j) scores ``exp(-((i - row)^2 + (j - col)^2) / (2 sigma^2))``,
    distances in cells, so exactly 1 at the centre cell; with two digits each
    cell keeps the larger of the two bumps (the max, not the sum).

    Args:
        boxes (float[N, K, 4]): ``xyxy`` pixels.
        mask (bool[N, K]): the slots that hold a digit; the others add nothing.
        size: the canvas side in pixels.
        stride: pixels a cell side; ``size`` is a multiple of it.
        sigma: the bump's width, in cells.

    Returns:
        float32[N, G, G]: the heatmap, G = size / stride; 0 on an empty canvas.

    Raises:
        ValueError: shapes that disagree, or sizes that are not positive.
    """
    b, m = _boxes_mask(boxes, mask)
    g = _grid(size, stride)
    _positive(sigma, "sigma")
    dy, dx = _centre_offsets(b, g, stride)
    heat = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)) * m[..., None, None]  # [N, K, G, G]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def _owners(boxes, mask, g: int, stride: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's nearest digit (slot index, int [n, G, G]) and whether it lies within ``radius`` of one."""
    dy, dx = _centre_offsets(boxes, g, stride)
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & mask[..., None, None]  # [n, K, G, G]
    d2 = np.where(mask[..., None, None], dy ** 2 + dx ** 2, np.inf)  # [n, K, G, G] squared cells
    owner = np.argmin(d2, axis=1) if boxes.shape[1] else np.zeros((len(boxes), g, g), np.int64)
    return owner, near.any(axis=1)


def box_targets(boxes, mask, *, size: int = 128, stride: int = STRIDE,
                radius: int = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the distances from the cell's centre to the sides of its digit's box.

    The cells that learn a box are those within ``radius`` cells (in rows and
    in columns) of a digit's centre cell (``heatmap_targets``): the 3x3 block
    for ``radius=1``. Each learns the box of the digit whose centre cell is
    nearest (squared distance in cells; on a tie, the earlier slot). Cell
    (i, j) has its centre at pixel ``(cx, cy) = ((j + 0.5) stride, (i + 0.5) stride)``
    and learns ``(l, t, r, b) = (cx - x0, cy - y0, x1 - cx, y1 - cy) / stride``:
    in cells, positive when the centre is inside the box.

    Args:
        boxes (float[N, K, 4]): ``xyxy`` pixels.
        mask (bool[N, K]): the slots that hold a digit.
        size: the canvas side in pixels.
        stride: pixels a cell side.
        radius: cells around a centre cell that learn its box.

    Returns:
        (distances, cells): float32[N, G, G, 4] ``(l, t, r, b)`` in cells, 0 where
        no box is learned; bool[N, G, G], the cells that learn a box.

    Raises:
        ValueError: shapes that disagree, or sizes that are not positive.
    """
    b, m = _boxes_mask(boxes, mask)
    g = _grid(size, stride)
    _positive(radius, "radius", whole=True, zero=True)
    owner, cells = _owners(b, m, g, stride, radius)
    own = np.take_along_axis(b, owner.reshape(len(b), -1, 1), axis=1).reshape(len(b), g, g, 4)  # [N, G, G, 4]
    ctr = (np.arange(g) + 0.5) * stride  # [G] cell centres in pixels
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


def encode_targets(boxes, classes, mask, *, size: int = 128, heatmap_fn=None, box_fn=None) -> dict[str, np.ndarray]:
    """Per-cell training targets for the dense models.

    Args:
        boxes (float[n, K, 4]): ``xyxy`` pixels.
        classes (int[n, K]): classes, -1 (or anything) where unused.
        mask (bool[n, K]): used slots.
        size: canvas side in pixels, a multiple of ``STRIDE``.
        heatmap_fn: stands in for ``heatmap_targets`` (e.g. a student's), same arguments.
        box_fn: stands in for ``box_targets``, same arguments.

    Returns:
        dict of float32 arrays: ``presence`` (n, S, S, 1), ``box`` (n, S, S, 5),
        ``class`` (n, S, S, 11), ``count`` (n, 3); S = size / 8 (see the module docstring).
    """
    boxes, classes, mask = _check_boxes(boxes, classes, mask)
    s = _grid(size, STRIDE)
    heat = np.asarray((heatmap_fn or heatmap_targets)(boxes, mask, size=size, stride=STRIDE, sigma=SIGMA))
    ltrb, cells = (box_fn or box_targets)(boxes, mask, size=size, stride=STRIDE, radius=RADIUS)
    w = np.where(cells, heat, 0)[..., None]  # [n, S, S, 1] the bump, cut to the cells that learn a box
    owner, _ = _owners(boxes, mask, s, STRIDE, RADIUS)
    cls = np.take_along_axis(np.where(mask, classes, 0), owner.reshape(len(boxes), -1), axis=1).reshape(-1, s, s)
    one_hot = (cls[..., None] == np.arange(NUM_CLASSES)).astype(np.float32)
    count = (mask.sum(axis=1)[:, None] == np.arange(SLOTS + 1)).astype(np.float32)
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, one_hot], axis=-1).astype(np.float32),
            "count": count}


# ---- decoding: per-cell outputs -> boxes ------------------------------------------------------

def boxes_from_cells(distances, *, stride: int = STRIDE) -> np.ndarray:
    """The box each cell predicts: the inverse of ``box_targets``.

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
    _positive(stride, "stride", whole=True)
    cy = (np.arange(d.shape[-3]) + 0.5)[:, None] * stride  # [H, 1] pixels
    cx = (np.arange(d.shape[-2]) + 0.5)[None, :] * stride  # [1, W]
    d = d * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def _peaks(heat: np.ndarray, k: int):
    """``find_peaks`` at threshold 0: rows, cols (int[n, k]), scores (float[n, k]), best first."""
    return find_peaks(heat, k=k, threshold=0.0)


def _boxes_at(ltrb: np.ndarray, rows, cols, size: int, heat: np.ndarray | None = None, cells_fn=None) -> np.ndarray:
    """``xyxy`` pixel boxes (n, k, 4) decoded from ltrb maps (n, S, S, 4) at cells (n, k).

    With ``heat`` (n, S, S), each box is the mean of the boxes that the 3x3
    cells around the peak give, weighted by their presence: they all learned
    the same digit's box (``RADIUS``), and their errors partly cancel.
    """
    every = np.asarray((cells_fn or boxes_from_cells)(ltrb, stride=STRIDE))  # [n, S, S, 4] pixels
    n, s = len(ltrb), ltrb.shape[1]
    i = np.arange(n)[:, None]
    offsets = [(0, 0)] if heat is None else [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    total, weight = 0.0, 0.0
    for di, dj in offsets:
        r, c = rows + di, cols + dj
        inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
        r, c = np.clip(r, 0, s - 1), np.clip(c, 0, s - 1)
        w = (inside * (1.0 if heat is None else heat[i, r, c]))[..., None]  # [n, k, 1]
        total, weight = total + w * every[i, r, c], weight + w
    return np.clip(total / np.maximum(weight, 1e-12), 0, size).astype(np.float32)


def _class_probs(probs: np.ndarray, heat: np.ndarray, rows, cols) -> np.ndarray:
    """Class probabilities (n, k, K) at cells (n, k): the mean over the 3x3 cells around each,
    weighted by the presence map, since every cell near a centre learned its class.
    """
    n, s, _ = heat.shape
    padded_p = np.pad(probs, ((0, 0), (1, 1), (1, 1), (0, 0)))
    padded_h = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    i = np.arange(n)[:, None]
    w = [padded_h[i, rows + di, cols + dj][..., None] for di in range(3) for dj in range(3)]  # 9 x [n, k, 1]
    total = sum(wk * padded_p[i, rows + di, cols + dj] for wk, (di, dj) in zip(w, np.ndindex(3, 3)))
    return total / np.maximum(sum(w), 1e-12)


def _outputs(outputs) -> dict[str, np.ndarray]:
    if not isinstance(outputs, dict) or "presence" not in outputs or "box" not in outputs:
        raise ValueError("`outputs` should be a model's outputs: a dict with at least 'presence' and 'box'. "
                         f"Got {type(outputs).__name__}"
                         + (f" with keys {sorted(outputs)}" if isinstance(outputs, dict) else "") + ".")
    return {key: np.asarray(value) for key, value in outputs.items()}


def decode(case: int, outputs, *, threshold: float = 0.5, peaks_fn=None, cells_fn=None) -> dict[str, np.ndarray]:
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
        peaks_fn: stands in for ``find_peaks`` (e.g. a student's), same arguments.
        cells_fn: stands in for ``boxes_from_cells``, same arguments.

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
    rows, cols, scores = (np.asarray(a) for a in (peaks_fn or find_peaks)(heat, k=SLOTS, threshold=0.0))  # [n, 2]
    boxes = _boxes_at(out["box"], rows, cols, s * STRIDE, heat if REFINE else None, cells_fn)  # [n, 2, 4]
    if case in (1, 3):
        count = np.ones(n, dtype=np.int64)
    elif case == 2:
        count = (scores >= threshold).sum(axis=1)
    else:
        if "count" not in out:
            raise ValueError("`outputs` of case 4 should hold 'count'. Got keys " + str(sorted(out)) + ".")
        count = out["count"].argmax(axis=-1)
    mask = (np.arange(SLOTS) < count[:, None]) & (rows >= 0)  # [n, 2] a slot needs a peak
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


def detections(outputs, *, k: int = 10, classes_per_peak: int = NUM_CLASSES, min_score: float = 0.01,
               iou_threshold: float | None = None, peaks_fn=None, cells_fn=None, nms_fn=None):
    """Scored, labelled boxes for average precision, as CenterNet decodes: several classes a peak.

    Each of the ``k`` highest presence peaks gives its box once for each of its
    ``classes_per_peak`` most probable classes (all by default), scored
    ``presence x class probability``, dropping scores below ``min_score``. A
    digit the model is unsure of (a 4 or a 9?) is then found under both labels,
    the right one usually with the higher score: what COCO's AP rewards, and
    what a detector with one heatmap per class (CenterNet) reports too. On a
    case 4 model: AP50 0.918 with one label a peak, 0.967 with all. The
    max-pool of ``find_peaks`` is CenterNet's only NMS; ``iou_threshold`` adds
    ``nms`` within each label, which drops duplicates (two peaks on one digit)
    but also the better-placed of two boxes: on noisy case 4 outputs, NMS at
    0.5 moved AP50 from 0.997 to 0.999 and AP from 0.732 to 0.711.

    Args:
        outputs: a case 4 (or 3) model's outputs, as for ``decode``.
        k: peaks a canvas.
        classes_per_peak: labels each peak's box is reported with.
        min_score: detections scoring less are dropped.
        iou_threshold: ``nms``'s, per label (e.g. ``NMS_IOU``); None (default) for no NMS.
        peaks_fn, cells_fn, nms_fn: stand in for ``find_peaks``, ``boxes_from_cells``, ``nms``.

    Returns:
        (boxes, labels, scores): lists of n arrays: float32 (P_i, 4) ``xyxy``
        pixels, int64 (P_i,), float32 (P_i,); best first.
    """
    out = _outputs(outputs)
    if "class" not in out:
        raise ValueError("`outputs` should hold 'class' to label detections. Got keys " + str(sorted(out)) + ".")
    heat = out["presence"][..., 0]
    n, s, _ = heat.shape
    rows, cols, peak = (np.asarray(a) for a in (peaks_fn or find_peaks)(heat, k=k, threshold=0.0))  # [n, k]
    boxes = _boxes_at(out["box"], rows, cols, s * STRIDE, heat if REFINE else None, cells_fn)  # [n, k, 4]
    probs = _class_probs(out["class"], heat, rows, cols)  # [n, k, 10]
    labels = np.argsort(-probs, axis=-1, kind="stable")[..., :classes_per_peak]  # [n, k, c]
    scores = np.where(rows[..., None] >= 0, peak[..., None] * np.take_along_axis(probs, labels, axis=-1), -1)
    boxes = np.repeat(boxes[:, :, None], labels.shape[-1], axis=2)  # [n, k, c, 4]
    result = ([], [], [])
    for i in range(n):
        sc = scores[i].ravel()
        order = np.argsort(-sc, kind="stable")
        order = order[(sc[order] >= min_score) & (sc[order] >= 0)]
        if iou_threshold is not None:
            order = order[_nms_per_label(boxes[i].reshape(-1, 4)[order], labels[i].ravel()[order], sc[order],
                                         iou_threshold, nms_fn or nms)]
        result[0].append(boxes[i].reshape(-1, 4)[order])
        result[1].append(labels[i].ravel()[order].astype(np.int64))
        result[2].append(sc[order].astype(np.float32))
    return result


def _nms_per_label(boxes, labels, scores, iou_threshold, nms_fn) -> np.ndarray:
    """Indices (sorted) of the detections that ``nms_fn`` keeps within each label: one call, with
    each label's boxes moved far from the others' so that they never overlap (torchvision's batched NMS)."""
    apart = boxes + (labels * (np.abs(boxes).max(initial=0) * 2 + 1))[:, None]
    return np.sort(np.asarray(nms_fn(apart, scores, iou_threshold), dtype=np.int64))
