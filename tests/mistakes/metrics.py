"""Lessons 1 and 4's metric exercises, got wrong the way a student would."""
import numpy as np


def _area(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def iou_no_clamp_nan(a, b):  # the formula from the lesson, without max(0, .) nor a guard
    a, b = np.asarray(a, float), np.asarray(b, float)
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return w * h / (_area(a) + _area(b) - w * h)


def iou_over_a(a, b):  # "overlap as a fraction of the box"
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh.prod(-1)
    return np.where(_area(a) > 0, inter / np.where(_area(a) > 0, _area(a), 1), 0)


def iou_over_min(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter, small = wh.prod(-1), np.minimum(_area(a), _area(b))
    return np.where(small > 0, inter / np.where(small > 0, small, 1), 0)


def iou_plus_one(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]) + 1, 0, None)
    inter = wh.prod(-1)
    area = lambda x: (x[..., 2] - x[..., 0] + 1) * (x[..., 3] - x[..., 1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def iou_no_minus(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    union = _area(a) + _area(b)
    return np.where(union > 0, wh.prod(-1) / np.where(union > 0, union, 1), 0)


def iou_max_min_swapped(a, b):  # the max of the maxima and the min of the minima
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.maximum(a[..., 2:], b[..., 2:]) - np.minimum(a[..., :2], b[..., :2]), 0, None)
    inter = wh.prod(-1)
    union = _area(a) + _area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def iou_nan_empty(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh.prod(-1)
    return inter / (_area(a) + _area(b) - inter)


def iou_one_for_empty(a, b):  # "two empty boxes are identical"
    a, b = np.asarray(a, float), np.asarray(b, float)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh.prod(-1)
    union = _area(a) + _area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


def _pr(scores, matched, num_true, order):
    m = np.asarray(matched, bool)[order]
    tp = np.cumsum(m)
    return tp / np.arange(1, len(m) + 1), tp / num_true


def _coco(precision, recall):
    env = np.maximum.accumulate(precision[::-1])[::-1]
    out = []
    for r in np.linspace(0, 1, 101):
        i = np.searchsorted(recall, r, side="left")
        out.append(env[i] if i < len(recall) else 0)
    return float(np.mean(out))


def ap_no_sort(scores, matched, num_true):
    if len(scores) == 0:
        return 0.0
    return _coco(*_pr(scores, matched, num_true, np.arange(len(scores))))


def ap_argsort_reversed(scores, matched, num_true):  # ties come out reversed
    if len(scores) == 0:
        return 0.0
    return _coco(*_pr(scores, matched, num_true, np.argsort(scores)[::-1]))


def ap_no_envelope(scores, matched, num_true):
    if len(scores) == 0:
        return 0.0
    p, r = _pr(scores, matched, num_true, np.argsort(-np.asarray(scores), kind="stable"))
    return float(np.mean([p[np.searchsorted(r, t)] if np.searchsorted(r, t) < len(r) else 0
                          for t in np.linspace(0, 1, 101)]))


def ap_eleven_points(scores, matched, num_true):  # the VOC 2007 11 recalls
    if len(scores) == 0:
        return 0.0
    p, r = _pr(scores, matched, num_true, np.argsort(-np.asarray(scores), kind="stable"))
    return float(np.mean([p[r >= t].max() if (r >= t).any() else 0 for t in np.linspace(0, 1, 11)]))


def ap_recall_by_detections(scores, matched, num_true):
    if len(scores) == 0:
        return 0.0
    return _coco(*_pr(scores, matched, len(scores), np.argsort(-np.asarray(scores), kind="stable")))


def ap_mean_precision(scores, matched, num_true):  # the mean of the precisions at each detection
    if len(scores) == 0:
        return 0.0
    p, _ = _pr(scores, matched, num_true, np.argsort(-np.asarray(scores), kind="stable"))
    return float(p.mean())


def ap_empty_nan(scores, matched, num_true):
    p, r = _pr(scores, matched, num_true, np.argsort(-np.asarray(scores), kind="stable"))
    return _coco(p, r) if len(p) else float("nan")


def _ious(p, t):
    p, t = np.asarray(p, float).reshape(-1, 4), np.asarray(t, float).reshape(-1, 4)
    lt = np.maximum(p[:, None, :2], t[None, :, :2])
    rb = np.minimum(p[:, None, 2:], t[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    union = _area(p)[:, None] + _area(t)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def match_given_order(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    taken = np.zeros(ious.shape[1], bool)
    for d in range(len(scores)):
        cand = np.where(taken, -1, ious[d])
        if cand.size and cand.max() >= iou_threshold:
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            out[d], taken[g] = g, True
    return out


def match_reuse(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        if ious.shape[1] and ious[d].max() >= iou_threshold:
            out[d] = len(ious[d]) - 1 - int(np.argmax(ious[d][::-1]))
    return out


def match_strict(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    taken = np.zeros(ious.shape[1], bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1, ious[d])
        if cand.size and cand.max() > iou_threshold:
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            out[d], taken[g] = g, True
    return out


def match_tie_first(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    taken = np.zeros(ious.shape[1], bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1, ious[d])
        if cand.size and cand.max() >= iou_threshold:
            g = int(np.argmax(cand))
            out[d], taken[g] = g, True
    return out


def match_truth_picks(pred_boxes, scores, true_boxes, iou_threshold=0.5):  # loops the other way round
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    for g in range(ious.shape[1]):
        cand = np.where(out >= 0, -1, ious[:, g])
        if cand.size and cand.max() >= iou_threshold:
            out[int(np.argmax(cand))] = g
    return out


def match_best_even_if_taken(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.full(len(scores), -1, np.int64)
    taken = np.zeros(ious.shape[1], bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        if not ious.shape[1]:
            continue
        g = len(ious[d]) - 1 - int(np.argmax(ious[d][::-1]))
        if ious[d, g] >= iou_threshold and not taken[g]:
            out[d], taken[g] = g, True
    return out


def match_bool(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    ious, out = _ious(pred_boxes, true_boxes), np.zeros(len(scores), bool)
    taken = np.zeros(ious.shape[1], bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1, ious[d])
        if cand.size and cand.max() >= iou_threshold:
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            out[d], taken[g] = True, True
    return out


MISTAKES = [
    ("iou", iou_no_clamp_nan, ("within [0, 1]", "not clamped", "NaN")),
    ("iou", iou_over_a, ("iou(a, b) equals iou(b, a)", "union")),
    ("iou", iou_over_min, ("union", "within [0, 1]", "identical boxes give 1")),
    ("iou", iou_plus_one, ("off by one", "+ 1")),
    ("iou", iou_no_minus, ("overlap twice",)),
    ("iou", iou_max_min_swapped, ("disjoint or touching boxes 0", "within [0, 1]")),
    ("iou", iou_nan_empty, ("NaN",)),
    ("iou", iou_one_for_empty, ("two empty boxes", "union is 0")),
    ("average_precision", ap_no_sort, ("descending score",)),
    ("average_precision", ap_argsort_reversed, ("equal scores", "given order")),
    ("average_precision", ap_no_envelope, ("envelope",)),
    ("average_precision", ap_eleven_points, ("101",)),
    ("average_precision", ap_recall_by_detections, ("num_true",)),
    ("average_precision", ap_mean_precision, ("101", "envelope", "recall")),
    ("average_precision", ap_empty_nan, ("no detections give AP 0", "within [0, 1]")),
    ("match_detections", match_given_order, ("descending score",)),
    ("match_detections", match_reuse, ("at most once", "never reuses")),
    ("match_detections", match_strict, ("(>=, not >)", "equal to iou_threshold")),
    ("match_detections", match_tie_first, ("same IoU", "later one")),
    ("match_detections", match_truth_picks, ("detections choose",)),
    ("match_detections", match_best_even_if_taken, ("not yet taken", "next best")),
    ("match_detections", match_bool, ("not True/False", "index of the matched")),
]
