"""Checks for the decoder's parts: ``boxes_from_cells``, ``find_peaks`` and ``nms`` (references in
``mnistloc.decoder``).

Fixed public cases carry their arithmetic in the note; random cases vary the
grid, the stride and the scores. Each typical mistake is a wrong
implementation written as a student would, so a failing hint can name it;
every mistake differs from the reference on some public case.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import decoder as D
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, call_kwargs, numpy_exercise
from mnistloc.grading.exercises.outputs import value_of

L1, L2, L3 = LESSONS[:3]


# boxes_from_cells ------------------------------------------------------------------------------------

def _cells_case(distances, stride, note) -> dict:
    return {"args": (np.asarray(distances, np.float32),), "kwargs": {"stride": int(stride)}, "note": note}


def _cells_fixed() -> list:
    one = np.zeros((1, 16, 16, 4), np.float32)
    one[0, 4, 2] = (1.25, 2, 1.5, 1.25)
    grid = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4) / 8
    edge = np.zeros((1, 2, 2, 4), np.float32)
    edge[0, 0, 0] = (1, 1, 0.5, 0.5)  # centre (4, 4): (-4, -4, 8, 8) runs past the top-left corner
    edge[0, 1, 1] = (0.5, 0.5, 1, 1)  # centre (12, 12): (8, 8, 20, 20) runs past the bottom-right corner
    single = np.zeros((2, 3, 4), np.float32)  # one map, no leading axis: an answer that needs a batch axis fails
    single[1, 2] = (0.5, 1, 0.25, 0.5)  # centre (20, 12): (20 - 4, 12 - 8, 20 + 2, 12 + 4) = (16, 4, 22, 16)
    return [_cells_case(single, 8, "one map of shape (2, 3, 4), with no leading (batch) axis: a 2 x 3 grid "
                        "(2 rows, 3 columns), stride=8, distances (0.5, 1, 0.25, 0.5) at cell (1, 2), centre (20, 12): "
                        "(20 - 0.5 * 8, 12 - 1 * 8, 20 + 0.25 * 8, 12 + 0.5 * 8) = (16, 4, 22, 16); zeros elsewhere "
                        "(each cell's box is the point at its centre)"),
            _cells_case(one, 8, "distances (1.25, 2, 1.5, 1.25) at cell (4, 2), centre (20, 36), stride=8: "
                        "(20 - 1.25 * 8, 36 - 2 * 8, 20 + 1.5 * 8, 36 + 1.25 * 8) = (10, 20, 32, 46); zeros elsewhere "
                        "(each cell's box is the point at its centre)"),
            _cells_case(edge, 8, "a 2 x 2 grid (a 16 px canvas), stride=8: distances (1, 1, 0.5, 0.5) at cell (0, 0), "
                        "centre (4, 4), give (4 - 8, 4 - 8, 4 + 4, 4 + 4) = (-4, -4, 8, 8), and (0.5, 0.5, 1, 1) at "
                        "cell (1, 1), centre (12, 12), give (8, 8, 20, 20): boxes may run past the canvas, no "
                        "clipping"),
            _cells_case(grid, 4, "a 2 x 3 grid (2 rows, 3 columns) of distances 0, 0.125, ..., stride=4")]


def _cells_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        shape = (int(rng.integers(1, 4)), int(rng.integers(2, 9)), int(rng.integers(2, 9)), 4)
        stride = int(rng.choice([4, 8, 16]))
        out.append(_cells_case(rng.uniform(-1, 4, shape), stride, f"random distances of shape {shape}, "
                               f"stride={stride}"))
    return out


def _cells_variant(*, scale=True, corner=False, swap=False, signs=False, xywh=False, order=(0, 1, 2, 3),
                   first_axes=False, clip=False, single_map=False):
    def boxes_from_cells(distances, *, stride=8):
        d = np.asarray(distances, np.float64)[..., list(order)] * (stride if scale else 1)
        off = 0 if corner else 0.5
        h, w = d.shape[:2] if first_axes else d.shape[-3:-1]  # first_axes: as if there were no leading axes
        if single_map:  # the shape unpacked as (H, W, 4): a ValueError on leading axes
            h, w, _ = d.shape
        rows, cols = (np.arange(h) + off)[:, None] * stride, (np.arange(w) + off)[None, :] * stride
        cx, cy = (rows + 0 * cols, cols + 0 * rows) if swap else (cols + 0 * rows, rows + 0 * cols)  # [H, W]
        if first_axes:  # the centres of a (shape[0], shape[1]) grid spread over the real one, as broadcasting
            cx, cy = (np.resize(c, d.shape[-3:-1]) for c in (cx, cy))  # does for (1, H, W, 4), without its errors
        s = -1 if signs else 1
        x0, y0, x1, y1 = cx - s * d[..., 0], cy - s * d[..., 1], cx + s * d[..., 2], cy + s * d[..., 3]
        out = np.stack([x0, y0, x1 - x0, y1 - y0] if xywh else [x0, y0, x1, y1], -1)
        out = np.clip(out, 0, d.shape[-2] * stride) if clip else out  # the canvas is square
        return out.astype(np.float32)
    return boxes_from_cells


# find_peaks ------------------------------------------------------------------------------------------

def _peaks_case(heat, k, threshold, note) -> dict:
    return {"args": (np.asarray(heat, np.float32),), "kwargs": {"k": int(k), "threshold": float(threshold)},
            "note": note}


def _peaks_fixed() -> list:
    heat = np.zeros((1, 5, 5), np.float32)
    heat[0, 1, 1], heat[0, 1, 2], heat[0, 3, 3], heat[0, 4, 0], heat[0, 0, 4] = 0.9, 0.5, 0.7, 0.3, 0.05
    flat = np.zeros((2, 4, 4), np.float32)
    flat[0, 2, 1] = flat[0, 2, 2] = flat[0, 0, 3] = 0.8  # a plateau of two, and an equal peak elsewhere
    flat[1, 3, 3], flat[1, 0, 0] = 0.6, 0.4
    return [_peaks_case(heat, 3, 0.1, "a 5x5 map with 0.9 at (1, 1), 0.5 at (1, 2) (next to 0.9: no peak), 0.7 at "
                        "(3, 3), 0.3 at the corner (4, 0), 0.05 at (0, 4), k=3, threshold=0.1: rows [1, 3, 4], "
                        "cols [1, 3, 0], scores [0.9, 0.7, 0.3]"),
            _peaks_case(heat, 5, 0.5, "the same map, k=5, threshold=0.5: two peaks, then rows = cols = -1, score 0"),
            _peaks_case(flat, 3, 0.1, "two 4x4 maps: 0.8 at (2, 1), (2, 2) (equal neighbours: both peaks) and "
                        "(0, 3); 0.6 at (3, 3) and 0.4 at (0, 0) (corners of the grid, not neighbours)")]


def _peaks_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        shape = (int(rng.integers(1, 4)), int(rng.integers(3, 12)), int(rng.integers(3, 12)))
        heat = np.round(rng.random(shape) ** 2, 1).astype(np.float32)  # rounded: plateaus and ties
        k, t = int(rng.integers(1, 12)), float(rng.choice([0.0, 0.2, 0.5]))
        out.append(_peaks_case(heat, k, t, f"random maps of shape {shape}, k={k}, threshold={t}"))
    return out


def _peaks_variant(*, strict=False, local=True, ascending=False, use_threshold=True, swap=False, wrap=False,
                   pad=-1, above=False, cross=False, reversed_ties=False):
    def find_peaks(heatmap, *, k=10, threshold=0.0):
        heat = np.asarray(heatmap, np.float64)
        n, h, w = heat.shape
        if wrap:  # neighbours by np.roll: the edges wrap around
            best = np.max([np.roll(heat, (di, dj), (1, 2)) for di in (-1, 0, 1) for dj in (-1, 0, 1)
                           if (di, dj) != (0, 0)], 0)
        else:
            p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
            best = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)
                           if (i, j) != (1, 1) and not (cross and i != 1 and j != 1)], 0)
        peak = (heat > best if strict else heat >= best) if local else np.ones(heat.shape, bool)
        if use_threshold:
            peak &= heat > threshold if above else heat >= threshold
        score = np.where(peak, heat, -np.inf).reshape(n, h * w)
        idx = np.argsort(score if ascending else -score, 1, kind="stable")
        if reversed_ties:  # ascending, then reversed: descending, but equal scores in reverse row-major order
            idx = np.argsort(score, 1, kind="stable")[:, ::-1]
        if ascending:  # the lowest peaks first, the non-peaks last
            idx = np.take_along_axis(idx, np.argsort(~np.isfinite(np.take_along_axis(score, idx, 1)), 1,
                                                     kind="stable"), 1)
        idx = np.pad(idx[:, :k], ((0, 0), (0, max(0, k - h * w))))
        s = np.take_along_axis(score, idx, 1)
        s[:, h * w:] = -np.inf
        ok = np.isfinite(s)
        r, c = (idx % w, idx // w) if swap else (idx // w, idx % w)
        return np.where(ok, r, pad), np.where(ok, c, pad), np.where(ok, s, 0).astype(np.float32)
    return find_peaks


# nms -------------------------------------------------------------------------------------------------

def _nms_case(boxes, scores, threshold, note) -> dict:
    return {"args": (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), float(threshold)),
            "kwargs": {}, "note": note}


def _nms_fixed() -> list:
    return [_nms_case([[1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30], [22, 20, 32, 30]], [0.8, 0.9, 0.3, 0.6],
                      0.5, "boxes [[1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30], [22, 20, 32, 30]], scores "
                      "[0.8, 0.9, 0.3, 0.6], iou_threshold=0.5 (IoU of the first two 90 / 110 = 0.82, of the last "
                      "two 80 / 120 = 0.67): keep [1, 3]"),
            _nms_case([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], 0.4,
                      "three boxes in a row [[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], scores [0.9, 0.8, "
                      "0.7], iou_threshold=0.4 (neighbours overlap 60 / 140 = 0.43, the outer two 0.11): box 0 drops "
                      "box 1, and a dropped box drops nothing: keep [0, 2]"),
            _nms_case([[0, 0, 20, 20], [2, 2, 8, 8]], [0.9, 0.8], 0.5,
                      "a small box [2, 2, 8, 8] inside a big one [0, 0, 20, 20], scores [0.9, 0.8], iou_threshold=0.5 "
                      "(IoU 36 / 400 = 0.09): keep [0, 1]"),
            _nms_case([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 10]], [0.9, 0.8, 0.9], 0.5,
                      "boxes [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 10]], scores [0.9, 0.8, 0.9], "
                      "iou_threshold=0.5 (IoU of the first two 50 / 100 = 0.5, not above 0.5; the first and last "
                      "tie at 0.9: the first one given wins): keep [0, 1]"),
            _nms_case(np.zeros((0, 4)), [], 0.5, "no boxes at all"),
            _nms_case([[0, 0, 10, 10], [1, 0, 11, 10], [30, 0, 40, 10], [2, 0, 12, 10]], [0.9, 0.8, 0.7, 0.3], 0.5,
                      "boxes [[0, 0, 10, 10], [1, 0, 11, 10], [30, 0, 40, 10], [2, 0, 12, 10]], scores [0.9, 0.8, 0.7, "
                      "0.3], iou_threshold=0.5: box 0 drops box 1 (IoU 0.82) and box 3 (IoU 80 / 120 = 0.67); box 2 "
                      "overlaps nothing and is kept, and box 3 stays dropped: keep [0, 2]")]


def _nms_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        m = int(rng.integers(2, 30))
        xy = rng.uniform(0, 60, (m, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, 30, (m, 2))], 1)
        t = float(rng.choice([0.3, 0.5, 0.7]))
        out.append(_nms_case(boxes, rng.random(m), t, f"{m} random boxes, iou_threshold={t}"))
    return out


def _nms_variant(*, ascending=False, by_score=False, ge=False, chain=False, given_order=False, as_boxes=False,
                 smaller=False, unsorted=False, forget=False, reversed_ties=False):
    def nms(boxes, scores, iou_threshold):
        b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
        order = np.arange(len(s)) if unsorted else np.argsort(s if ascending else -s, kind="stable")
        order = np.argsort(s, kind="stable")[::-1] if reversed_ties else order  # equal scores: the later first
        ious = B.pairwise_iou(b, b)
        if smaller:  # intersection over the smaller box's area
            inter = np.clip(np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2]),
                            0, None).prod(-1)
            area = B.area(b)
            ious = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
        dropped, keep = np.zeros(len(b), bool), []
        for i in order:
            if not dropped[i]:
                keep.append(i)
            if chain or not dropped[i]:
                over = s < iou_threshold if by_score else (ious[i] >= iou_threshold if ge else ious[i] > iou_threshold)
                if forget:  # only the last kept box's overlaps count
                    dropped = over & (np.arange(len(b)) != i)
                else:
                    dropped |= over & (np.arange(len(b)) != i)
        keep = np.array(sorted(keep) if given_order else keep, np.int64)
        return b[keep] if as_boxes else keep
    return nms


def _cells_sizes(case, got) -> bool:
    d, b = np.asarray(case["args"][0], np.float64) * case["kwargs"]["stride"], value_of(got)
    return bool(np.allclose(b[..., 2] - b[..., 0], d[..., 0] + d[..., 2], atol=1e-3)
                and np.allclose(b[..., 3] - b[..., 1], d[..., 1] + d[..., 3], atol=1e-3))


def _cells_centres(case, got) -> bool:
    d, b, s = np.asarray(case["args"][0]), value_of(got), case["kwargs"]["stride"]
    zero = np.all(d == 0, -1)  # [..., H, W], any leading axes (none too)
    cy, cx = (np.arange(d.shape[-3])[:, None] + .5) * s, (np.arange(d.shape[-2])[None, :] + .5) * s
    centre = np.broadcast_to(np.stack(np.broadcast_arrays(cx, cy, cx, cy), -1), d.shape)  # [..., H, W, 4]
    return bool(np.allclose(b[zero], centre[zero]))


def _peaks_descending(case, got) -> bool:
    s = value_of(got["items"][2] if got["type"] != "dict" else got)
    return bool(np.all(np.diff(s, axis=-1) <= 0))


def _peaks_on_map(case, got) -> bool:
    heat = np.asarray(case["args"][0])
    r, c, s = (np.asarray(i["value"]) for i in got["items"])
    n = np.arange(len(heat))[:, None].repeat(r.shape[1], 1)
    found = r >= 0
    if np.any(r >= heat.shape[1]) or np.any(c >= heat.shape[2]):
        return False  # a row or column off the map
    return bool(np.allclose(heat[n[found], r[found], c[found]], s[found]) and np.all(s[~found] == 0)
                and np.all(c[~found] == -1))


def _nms_subset(case, got) -> bool:
    keep, scores = value_of(got).astype(int), np.asarray(case["args"][1])
    return (keep.ndim == 1 and len(set(keep.tolist())) == len(keep) and bool(np.all((keep >= 0) & (keep < len(scores))))
            and bool(np.all(np.diff(scores[keep]) <= 0)))


def _nms_apart(case, got) -> bool:
    keep, boxes, t = value_of(got).astype(int), np.asarray(case["args"][0], np.float64), case["args"][2]
    ious = B.pairwise_iou(boxes[keep], boxes[keep])
    return bool(np.all(ious[~np.eye(len(keep), dtype=bool)] <= t + 1e-9))


def _nms_best_kept(case, got) -> bool:
    scores = np.asarray(case["args"][1])
    return not len(scores) or int(np.argmax(scores)) in value_of(got).astype(int).tolist()
_CELLS_PROPS = [Property("each box is (l + r) * stride wide and (t + b) * stride high", _cells_sizes),
                Property("distances of 0 give the point at the cell's centre", _cells_centres)]
_PEAKS_PROPS = [Property("each peak's score is the map's value at its (row, col), and a missing peak has row = col = "
                         "-1 and score 0", _peaks_on_map),
                Property("the peaks come by descending score", _peaks_descending)]
_NMS_PROPS = [Property("NMS keeps a subset: distinct indices of the given boxes, ordered by descending score",
                       _nms_subset),
              Property("the highest-scoring box is always kept", _nms_best_kept),
              Property("no two kept boxes overlap by an IoU above iou_threshold", _nms_apart)]


EXERCISES = (
    numpy_exercise("boxes_from_cells", L1, 2, D.boxes_from_cells, _cells_fixed, _cells_random, [
        ("distances are in cells: multiply them by stride to get pixels.", _cells_variant(scale=False)),
        ("a cell's centre is ((j + 0.5) * stride, (i + 0.5) * stride), not its top-left corner.",
         _cells_variant(corner=True)),
        ("x and y swapped: a cell's centre x comes from its column j (axis -2), y from its row i (axis -3).",
         _cells_variant(swap=True)),
        ("signs: x0 = cx - l * stride, y0 = cy - t * stride, x1 = cx + r * stride, y1 = cy + b * stride.",
         _cells_variant(signs=True)),
        ("the boxes are xyxy (x0, y0, x1, y1), not xywh.", _cells_variant(xywh=True)),
        ("the distances come in the order (l, t, r, b): left, top, right, bottom.",
         _cells_variant(order=(0, 2, 1, 3))),
        ("the grid's H and W were read from shape[0] and shape[1]: distances have shape (..., H, W, 4), so H and W "
         "are the axes -3 and -2, and the function must work for any leading (batch) axes.",
         _cells_variant(first_axes=True)),
        ("the shape was unpacked as one map (H, W, 4), three names, so distances with leading (batch) axes, "
         "e.g. (N, H, W, 4), raised a ValueError: distances have shape (..., H, W, 4), so read H and W from the "
         "end of the shape (axes -3 and -2), whatever comes before them.", _cells_variant(single_map=True)),
        ("the boxes were clipped to the canvas: boxes_from_cells does no clipping, a box may start below 0 or end "
         "past the canvas (the decoder clips later).", _cells_variant(clip=True)),
    ], run=call_kwargs, properties=_CELLS_PROPS),
    numpy_exercise("find_peaks", L2, 3, D.find_peaks, _peaks_fixed, _peaks_random, [
        ("a cell equal to its highest neighbour is still a peak: compare with >= (equal neighbours are both "
         "peaks).", _peaks_variant(strict=True)),
        ("keep only local maxima (cells no 3x3 neighbour beats): the k highest cells are mostly one bump.",
         _peaks_variant(local=False)),
        ("a peak beats all 8 neighbours of its 3x3 block, the diagonal ones too, not only the 4 beside it.",
         _peaks_variant(cross=True)),
        ("the highest peaks come first: sort by descending score.", _peaks_variant(ascending=True)),
        ("drop the peaks below `threshold` (pad with row = col = -1 and score 0).",
         _peaks_variant(use_threshold=False)),
        ("a peak scoring exactly `threshold` is kept (>=, not >).", _peaks_variant(above=True)),
        ("equal scores come in row-major order (the earlier cell first, as a stable sort by descending score "
         "keeps them): sorting ascending and reversing puts the tied peaks in reverse order.",
         _peaks_variant(reversed_ties=True)),
        ("rows and columns swapped: in a flat index over (H, W), row = index // W and col = index % W.",
         _peaks_variant(swap=True)),
        ("cells off the grid do not count: np.roll wraps around, so an edge cell was compared with the far edge.",
         _peaks_variant(wrap=True)),
        ("pad missing peaks with row = col = -1 (and score 0), not 0: row 0 is a real cell.",
         _peaks_variant(pad=0)),
    ], run=call_kwargs, properties=_PEAKS_PROPS),
    numpy_exercise("nms", L3, 3, D.nms, _nms_fixed, _nms_random, [
        ("take the boxes by descending score: the best box first.", _nms_variant(ascending=True)),
        ("suppress a box for its overlap (IoU above iou_threshold with a kept box), not for its score.",
         _nms_variant(by_score=True)),
        ("drop a box only when its IoU is above iou_threshold (>): an IoU equal to it stays.", _nms_variant(ge=True)),
        ("a dropped box drops nothing: only kept boxes suppress others.", _nms_variant(chain=True)),
        ("the overlap is the IoU (intersection over union), not the intersection over the smaller box: a small box "
         "inside a big one overlaps it little.", _nms_variant(smaller=True)),
        ("return the kept indices by descending score (the order NMS keeps them), not sorted.",
         _nms_variant(given_order=True)),
        ("take the boxes by descending score (the best box first), not in the order given.",
         _nms_variant(unsorted=True)),
        ("return the indices of the kept boxes, not the boxes.", _nms_variant(as_boxes=True)),
        ("equal scores keep their given order (the earlier box first, as a stable sort by descending score "
         "keeps them): sorting ascending and reversing puts the tied boxes in reverse order, so the later of "
         "two boxes with equal scores came first.", _nms_variant(reversed_ties=True)),
        ("a dropped box stays dropped: the boxes suppressed by every kept box so far accumulate (|=), so keeping "
         "a new box must not replace the earlier kept boxes' overlaps with its own.", _nms_variant(forget=True)),
    ], run=call_kwargs, properties=_NMS_PROPS),
)
