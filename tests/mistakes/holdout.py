"""Mistakes written after the checks were tuned on the other modules here: a held-out set, run once to measure
(tests/test_mistake_corpus.py counts them with the rest; their first run is reported in the issue's notes)."""
import numpy as np

from mnistloc.checks import keras


def place_transposed(canvas, digit, x, y):
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = np.asarray(digit).T
    return out


def tight_int(image):
    r, c = np.nonzero(image)
    if len(r) == 0:
        return np.zeros(4, np.int64)
    return np.array([c.min(), r.min(), c.max() + 1, r.max() + 1])


def union_used_only(boxes, mask):
    used = mask.any(1)
    b = np.where(mask[..., None], boxes, np.nan)[used]
    return np.concatenate([np.nanmin(b[..., :2], 1), np.nanmax(b[..., 2:], 1)], -1).astype(np.float32)


def onehot_from_max(labels, num_classes):
    labels = np.asarray(labels)
    k = labels.max() + 1
    return (labels[..., None] == np.arange(k)).astype(np.float32)


def iou_percent(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh.prod(-1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return 100 * np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def iou_builtin_max(a, b):
    x0, y0 = max(a[:, 0], b[:, 0]), max(a[:, 1], b[:, 1])
    x1, y1 = min(a[:, 2], b[:, 2]), min(a[:, 3], b[:, 3])
    return (x1 - x0) * (y1 - y0)


def ap_final_precision(scores, matched, num_true):
    return float(np.mean(matched)) if len(matched) else 0.0


def match_in_score_order(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    from mistakes.metrics import match_reuse  # noqa: F401
    from mistakes.metrics import _ious
    ious = _ious(pred_boxes, true_boxes)
    out, taken = [], np.zeros(ious.shape[1], bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1, ious[d])
        g = len(cand) - 1 - int(np.argmax(cand[::-1])) if cand.size and cand.max() >= iou_threshold else -1
        if g >= 0:
            taken[g] = True
        out.append(g)
    return np.array(out, np.int64)


def heat_distance_not_squared(boxes, mask, *, size=128, stride=8, sigma=1.0):
    from mistakes.detector import _centre_cells
    g = size // stride
    c = _centre_cells(boxes, stride, g)
    i = np.arange(g)
    out = np.zeros((len(boxes), g, g), np.float32)
    for n, k in zip(*np.nonzero(mask)):
        d = np.sqrt((i[:, None] - c[n, k, 1]) ** 2 + (i[None, :] - c[n, k, 0]) ** 2)
        out[n] = np.maximum(out[n], np.exp(-d / (2 * sigma ** 2)))
    return out


def box_distances_only(boxes, mask, *, size=128, stride=8, radius=1):
    from mistakes.detector import _targets
    return _targets(boxes, mask, size, stride, radius)[0]


def cells_centre_without_stride(distances, *, stride=8):
    d = np.asarray(distances, float) * stride
    h, w = d.shape[-3:-1]
    cx = (np.arange(w) + 0.5)[None, :].repeat(h, 0)
    cy = (np.arange(h) + 0.5)[:, None].repeat(w, 1)
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1).astype(np.float32)


def peaks_cross_neighbours(heatmap, *, k=10, threshold=0.0):  # only the 4 side neighbours
    heat = np.asarray(heatmap, float)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    best = np.max([p[:, 0:h, 1:w + 1], p[:, 2:h + 2, 1:w + 1], p[:, 1:h + 1, 0:w], p[:, 1:h + 1, 2:w + 2]], 0)
    peak = (heat >= best) & (heat >= threshold)
    rows, cols, scores = np.full((n, k), -1), np.full((n, k), -1), np.zeros((n, k), np.float32)
    for b in range(n):
        flat = np.where(peak[b], heat[b], -np.inf).ravel()
        order = np.argsort(-flat, kind="stable")[:k]
        order = order[np.isfinite(flat[order])]
        rows[b, :len(order)], cols[b, :len(order)] = np.divmod(order, w)
        scores[b, :len(order)] = flat[order]
    return rows, cols, scores


def nms_keep_mask(boxes, scores, iou_threshold):
    from mistakes.detector import _nms_keep
    keep = np.zeros(len(scores), bool)
    keep[_nms_keep(boxes, scores, iou_threshold)] = True
    return keep


def masked_no_reduction(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return y_true[..., 0] * err


def focal_over_bump_cells(y_true, y_pred, alpha=2.0, beta=4.0):
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(y_true >= 1.0, p.dtype)
    cost = -pos * (1 - p) ** alpha * ops.log(p) - (1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(cost) / ops.maximum(ops.sum(ops.cast(y_true > 0, p.dtype)), 1.0)


MISTAKES = [
    ("place_digit", place_transposed, ("appears unchanged",)),
    ("tight_box", tight_int, ("dtype", "float")),
    ("union_box", union_used_only, ("shape", "no used slot", "[0, 0, 0, 0]")),
    ("one_hot", onehot_from_max, ("num_classes", "shape")),
    ("iou", iou_percent, ("within [0, 1]",)),
    ("iou", iou_builtin_max, ("np.maximum", "elementwise")),
    ("average_precision", ap_final_precision, ("envelope", "recall")),
    ("match_detections", match_in_score_order, ("given order", "order given")),
    ("heatmap_targets", heat_distance_not_squared, ("squared", "d^2")),
    ("box_targets", box_distances_only, ("cells", "2 items", "tuple")),
    ("boxes_from_cells", cells_centre_without_stride, ("stride", "cell's centre")),
    ("find_peaks", peaks_cross_neighbours, ("3x3", "local maxima", "neighbour")),
    ("nms", nms_keep_mask, ("indices",)),
    ("masked_box_loss", masked_no_reduction, ("scalar", "shape")),
    ("focal_loss", focal_over_bump_cells, ("number of centres", "y_true == 1")),
]
