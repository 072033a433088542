"""Checks for the box and metric exercises: ``iou``, ``average_precision`` and ``match_detections``.

Fixed public cases carry their arithmetic in the note; random cases cover
disjoint, touching, nested and empty boxes, and ties in scores. Typical
mistakes (unclamped overlap, +1, union counting the overlap twice, NaN for
empty boxes, wrong format; unsorted scores, no precision envelope, wrong
recall) are wrong implementations, so a failing hint can name them.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import metrics as M
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, numpy_exercise
from mnistloc.grading.exercises.outputs import value_of

L1, L2, L3, L4 = LESSONS[:4]


# iou ------------------------------------------------------------------------------------------------

def _iou_fixed() -> list:
    pairs = [([0, 0, 10, 10], [5, 5, 15, 15], "partial overlap: inter 5*5 = 25, union 100+100-25 = 175"),
             ([0, 0, 10, 10], [20, 30, 25, 40], "boxes apart in x and in y"),
             ([0, 0, 10, 10], [10, 0, 20, 10], "touching boxes (x1 of one = x0 of the other)"),
             ([0, 0, 20, 20], [5, 5, 10, 10], "one box inside the other"),
             ([3, 4, 9, 12], [3, 4, 9, 12], "identical boxes"),
             ([0, 0, 0, 0], [0, 0, 0, 0], "two empty boxes"),
             ([2, 2, 8, 30], [0, 10, 40, 12], "a cross: tall box and wide box")]
    a = np.float32([p[0] for p in pairs])
    b = np.float32([p[1] for p in pairs])
    small, big = np.float32([[0, 0, 10, 10], [2, 0, 12, 4]]), np.float32([[5, 0, 25, 10], [0, 0, 20, 20]])
    both = np.concatenate([small, big]), np.concatenate([big, small])  # the same pairs, each way round
    return [{"args": both, "mirrored": True, "note": "two pairs of boxes, a=[0, 0, 10, 10], b=[5, 0, 25, 10] (inter "
             "50, union 100 + 200 - 50 = 250) and a=[2, 0, 12, 4], b=[0, 0, 20, 20] (inter 40, union 400), then the "
             "same pairs with a and b swapped: [0.2, 0.1, 0.2, 0.1]"},
            {"args": (a, b), "note": "seven pairs of boxes a, b (one a row): "
             + "; ".join(f"{p[0]}, {p[1]} ({p[2]})" for p in pairs)}]


def _iou_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        n = int(rng.integers(5, 40))
        xy = rng.integers(0, 100, size=(2, n, 2))
        wh = rng.integers(0, 40, size=(2, n, 2))
        a, b = (np.concatenate([xy[i], xy[i] + wh[i]], -1).astype(np.float32) for i in (0, 1))
        out.append({"args": (a, b), "note": f"{n} random pairs of boxes"})
    return out


def _iou_from(inter_fn, union_fn=None):
    def wrong(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        inter = inter_fn(a, b)
        area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
        union = union_fn(a, b, inter) if union_fn else area(a) + area(b) - inter
        with np.errstate(all="ignore"):
            return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    return wrong


def _wh(a, b):
    return np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2])


def _iou_unclamped(a, b):
    return _iou_from(lambda a, b: _wh(a, b).prod(-1))(a, b)


def _iou_clamped_product(a, b):
    return _iou_from(lambda a, b: np.maximum(_wh(a, b).prod(-1), 0))(a, b)


def _iou_plus_one(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    wh = np.clip(_wh(a, b) + 1, 0, None)
    inter = wh.prod(-1)
    area = lambda x: (x[..., 2] - x[..., 0] + 1) * (x[..., 3] - x[..., 1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _iou_no_minus(a, b):
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return _iou_from(lambda a, b: np.clip(_wh(a, b), 0, None).prod(-1),
                     lambda a, b, i: area(a) + area(b))(a, b)


def _iou_nan(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = np.clip(_wh(a, b), 0, None).prod(-1)
    with np.errstate(all="ignore"):
        return inter / (B.area(a) + B.area(b) - inter)


def _iou_xywh(a, b):
    return B.iou(B.convert(a, "xywh", "xyxy"), B.convert(b, "xywh", "xyxy"))


# average_precision --------------------------------------------------------------------------------

def _ap_case(scores, matched, num_true, note) -> dict:
    return {"args": (np.asarray(scores, np.float64), np.asarray(matched, bool), int(num_true)), "note": note}


def _ap_fixed() -> list:
    return [_ap_case([.9, .8, .7, .6], [1, 0, 1, 0], 3,
                     "scores [.9, .8, .7, .6], matched [T, F, T, F], 3 true boxes (precision 1, .5, .67, .5 at "
                     "recall 1/3, 1/3, 2/3, 2/3: AP = (34 * 1 + 33 * 2/3) / 101 = 56/101)"),
            _ap_case([.3, .9, .6], [0, 1, 1], 2, "scores [.3, .9, .6] (not sorted), matched [F, T, T], 2 true boxes"),
            _ap_case([.5, .5, .5], [0, 1, 1], 2, "equal scores [.5, .5, .5], matched [F, T, T], 2 true boxes"),
            _ap_case([], [], 2, "no detections, 2 true boxes"),
            _ap_case([.8, .4], [1, 1], 2, "two detections, both matched, 2 true boxes")]


def _ap_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        d = int(rng.integers(1, 40))
        scores = np.round(rng.random(d), 1)  # rounded: ties happen
        matched = rng.random(d) < 0.6
        out.append(_ap_case(scores, matched, matched.sum() + rng.integers(0, 4) + (matched.sum() == 0),
                            f"{d} random detections"))
    return out


def _ap_from(order_fn, *, recall_of=None, envelope=True, points=True, levels=101, unreached=0.0, to_one=True):
    def wrong(scores, matched, num_true):
        s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
        if len(s) == 0:
            return 0.0
        tp = np.cumsum(m[order_fn(s)])
        precision = tp / np.arange(1, len(tp) + 1)
        recall = tp / (recall_of(s, m, num_true) if recall_of else num_true)
        env = np.maximum.accumulate(precision[::-1])[::-1] if envelope else precision
        if not points:  # area under the envelope, every recall step (VOC 2010 style)
            steps = np.diff(np.concatenate([[0], recall]))
            return float(np.sum(steps * env))
        grid = np.linspace(0, 1, levels) if to_one else np.arange(0, 1, 1 / (levels - 1))  # not to_one: 1 left out
        idx = np.searchsorted(recall, grid, side="left")
        last = env[-1] if unreached == "last" else unreached  # "last": a recall never reached keeps the last one
        return float(np.mean(np.where(idx < len(recall), env[np.minimum(idx, len(recall) - 1)], last)))
    return wrong


def _by_score(s):
    return np.argsort(-s, kind="stable")


_ap_unsorted = _ap_from(lambda s: np.arange(len(s)))
_ap_ascending = _ap_from(lambda s: np.argsort(s, kind="stable"))
_ap_reversed_ties = _ap_from(lambda s: np.argsort(s, kind="stable")[::-1])
_ap_no_envelope = _ap_from(_by_score, envelope=False)
_ap_recall_of_detections = _ap_from(_by_score, recall_of=lambda s, m, n: len(s))
_ap_recall_of_matches = _ap_from(_by_score, recall_of=lambda s, m, n: max(int(m.sum()), 1))
_ap_all_points = _ap_from(_by_score, points=False)
_ap_eleven = _ap_from(_by_score, levels=11)
_ap_unreached_last = _ap_from(_by_score, unreached="last")
_ap_hundred = _ap_from(_by_score, to_one=False)  # np.arange(0, 1, 0.01): 100 levels, recall 1 left out

# match_detections ---------------------------------------------------------------------------------

def _match_case(pred, scores, true, threshold, note) -> dict:
    return {"args": (np.asarray(pred, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
                     np.asarray(true, np.float64).reshape(-1, 4), float(threshold)), "note": note}


_TWO = [[0, 0, 10, 10], [20, 0, 30, 10]]
_DETS = [[1, 0, 11, 10], [0, 0, 10, 10], [20, 0, 30, 6], [50, 50, 60, 60], [0, 0, 10, 9]]


def _match_fixed() -> list:
    note = (f"detections {_DETS} with scores [.6, .9, .8, .7, .5] and true boxes {_TWO}: by score, det 1 (IoU 1) "
            "takes true 0, det 2 (IoU 60 / 100 = 0.6) takes true 1, det 3 overlaps nothing, dets 0 and 4 find true "
            "0 taken")
    return [_match_case(_DETS, [.6, .9, .8, .7, .5], _TWO, 0.5, note + ", iou_threshold=0.5: [-1, 0, 1, -1, -1]"),
            _match_case(_DETS, [.6, .9, .8, .7, .5], _TWO, 0.6, note + ", iou_threshold=0.6 (an IoU of 0.6 matches)"),
            _match_case([[0, 0, 10, 6], [0, 0, 10, 9]], [.9, .8], [[0, 0, 10, 10]], 0.5,
                        "detections [[0, 0, 10, 6], [0, 0, 10, 9]], scores [.9, .8], one true box [0, 0, 10, 10]: "
                        "det 0 (IoU 0.6) chooses first and takes it; det 1 (IoU 0.9) finds it taken: [0, -1]"),
            _match_case([[1, 0, 11, 10], [0, 0, 10, 10]], [.9, .8], [[3, 0, 13, 10], [0, 0, 10, 10]], 0.5,
                        "detections [[1, 0, 11, 10], [0, 0, 10, 10]], scores [.9, .8], true boxes [[3, 0, 13, 10], "
                        "[0, 0, 10, 10]]: det 0 overlaps true 0 by 80 / 120 = 0.67 and true 1 by 90 / 110 = 0.82, "
                        "so takes true 1; det 1 (IoU 1 with true 1, taken) takes true 0 (0.54): [1, 0]"),
            _match_case(np.zeros((0, 4)), [], _TWO, 0.5, "no detections"),
            _match_case(_TWO, [.5, .4], np.zeros((0, 4)), 0.5, "no true boxes"),
            _match_case([[0, 0, 10, 10], [20, 0, 30, 10]], [.9, .8], [[0, 0, 20, 10], [0, 0, 10, 10]], 0.4,
                        "detections [[0, 0, 10, 10], [20, 0, 30, 10]], scores [.9, .8], true boxes [[0, 0, 20, 10], "
                        "[0, 0, 10, 10]], iou_threshold=0.4: det 0 overlaps true 0 by 100 / 200 = 0.5 and true 1 by "
                        "1, takes true 1; det 1 overlaps true 0 by 0 (touching): [1, -1]"),
            _match_case([[5, 0, 15, 10]], [.9], [[0, 0, 10, 10], [10, 0, 20, 10]], 0.3,
                        "one detection [5, 0, 15, 10] between true boxes [[0, 0, 10, 10], [10, 0, 20, 10]], "
                        "iou_threshold=0.3: it overlaps each by 50 / 150 = 0.33, a tie: the later true box, as COCO: "
                        "[1]")]


def _match_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 100, (g, 2))
        true = np.concatenate([xy, xy + rng.uniform(5, 30, (g, 2))], 1)
        copies = true[rng.integers(0, g, int(rng.integers(0, 2 * g + 1)))] if g else np.zeros((0, 4))
        found = copies + rng.normal(0, 3, copies.shape)
        pred = np.concatenate([found, rng.uniform(0, 100, (int(rng.integers(0, 4)), 4))])  # and false positives
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2])
        t = float(rng.choice([0.3, 0.5, 0.7]))
        out.append(_match_case(pred, rng.random(len(pred)), true, t,
                               f"{len(pred)} random detections of {g} true boxes, iou_threshold={t}"))
    return out


def _best(ious_row: np.ndarray, earlier: bool) -> int:
    """The index of the highest IoU; on a tie the later one (as COCO), or the earlier one (np.argmax)."""
    return int(np.argmax(ious_row)) if earlier else len(ious_row) - 1 - int(np.argmax(ious_row[::-1]))


def _match_truth_chooses(pred_boxes, scores, true_boxes, iou_threshold):
    """Each true box, in the given order, takes the free detection it overlaps most (the loops the wrong way)."""
    ious = B.pairwise_iou(np.asarray(pred_boxes, np.float64).reshape(-1, 4),
                          np.asarray(true_boxes, np.float64).reshape(-1, 4))  # [D, G]
    out = np.full(ious.shape[0], -1, np.int64)
    for g in range(ious.shape[1]):
        free = np.where(out < 0, ious[:, g], -1.0)
        d = int(np.argmax(free)) if len(free) else -1
        if d >= 0 and free[d] >= iou_threshold:
            out[d] = g
    return out


def _match_variant(*, order="score", reuse=False, first=False, strict=False, best_of_all=False, as_bool=False,
                   earlier=False, ranked=False):
    def match_detections(pred_boxes, scores, true_boxes, iou_threshold):
        s = np.asarray(scores, np.float64)
        ious = B.pairwise_iou(np.asarray(pred_boxes, np.float64).reshape(-1, 4),
                              np.asarray(true_boxes, np.float64).reshape(-1, 4))  # [D, G]
        ranks = {"score": np.argsort(-s, kind="stable"), "given": np.arange(len(s)),
                 "ascending": np.argsort(s, kind="stable")}[order]
        out, taken = np.full(len(s), -1, np.int64), np.zeros(ious.shape[1], bool)
        for d in ranks:
            ok = (ious[d] > iou_threshold) if strict else (ious[d] >= iou_threshold)
            free = ok if reuse else ok & ~taken
            if best_of_all:
                g = _best(ious[d], earlier) if ious.shape[1] else -1
                g = g if g >= 0 and free[g] else -1
            elif free.any():
                g = int(np.flatnonzero(free)[0]) if first else _best(np.where(free, ious[d], -1), earlier)
            else:
                g = -1
            if g >= 0:
                out[d], taken[g] = g, True
        out = out[ranks] if ranked else out  # the answers listed in the order they were made
        return out >= 0 if as_bool else out
    return match_detections


# properties: what every right answer has, named when no catalogued mistake matches ---------------------

def _iou_in_range(case, got) -> bool:
    v = value_of(got)
    return bool(np.all((v >= 0) & (v <= 1)))  # NaN fails too


def _iou_symmetric(case, got) -> bool:
    v = value_of(got)
    return not case.get("mirrored") or bool(np.allclose(v[: len(v) // 2], v[len(v) // 2:]))


def _iou_known(case, got) -> bool:
    a, b = (np.asarray(x, np.float64) for x in case["args"])
    v = value_of(got)
    same = np.all(a == b, -1) & (B.area(a) > 0)
    apart = (np.minimum(a[:, 2:], b[:, 2:]) <= np.maximum(a[:, :2], b[:, :2])).any(-1)
    return bool(np.all(v[same] == 1) and np.all(v[apart] == 0))


def _ap_in_range(case, got) -> bool:
    return 0 <= float(value_of(got)) <= 1


def _ap_extremes(case, got) -> bool:
    scores, matched, num_true = case["args"]
    v = float(value_of(got))
    if len(scores) == 0:
        return v == 0
    return v == 1 if matched.all() and matched.sum() == num_true else True


def _match_indices(case, got) -> bool:
    m = value_of(got)
    return m.shape == (len(case["args"][0]),) and bool(np.all((m == -1) | ((m >= 0) & (m < len(case["args"][2])))))


def _match_once(case, got) -> bool:
    m = value_of(got)
    used = m[m >= 0]
    return len(np.unique(used)) == len(used)


def _match_overlaps(case, got) -> bool:
    pred, _, true, t = case["args"]
    m = value_of(got).astype(int)
    ious = B.pairwise_iou(pred, true)
    return all(ious[d, g] >= t - 1e-9 for d, g in enumerate(m) if g >= 0)


_IOU_PROPS = [Property("an IoU lies within [0, 1] (a number, never NaN)", _iou_in_range),
              Property("iou(a, b) equals iou(b, a)", _iou_symmetric),
              Property("identical boxes give 1, and disjoint or touching boxes 0", _iou_known)]
_AP_PROPS = [Property("an AP lies within [0, 1]", _ap_in_range),
             Property("no detections give AP 0, and detections that all match and find every true box give 1",
                      _ap_extremes)]
_MATCH_PROPS = [Property("each entry is -1 or the index of a true box, one per detection", _match_indices),
                Property("a match never reuses a true box", _match_once),
                Property("a detection matches only a true box it overlaps by IoU >= iou_threshold", _match_overlaps)]


EXERCISES = [
    numpy_exercise("iou", L1, 3, B.iou, _iou_fixed, _iou_random, [
        ("overlap not clamped at zero: boxes apart in x and y give a negative width times a negative height; "
         "use max(0, ...) on the width and on the height separately.", _iou_unclamped),
        ("overlap not clamped at zero per side: clamp the width and the height separately, not their product.",
         _iou_clamped_product),
        ("off by one: boxes have an exclusive max, so width = x1 - x0 with no + 1.", _iou_plus_one),
        ("the union counts the overlap twice: the two areas added together hold the intersection twice.",
         _iou_no_minus),
        ("two empty boxes gave NaN (0 / 0): return 0 where the union is 0.", _iou_nan),
        ("wrong box format: the boxes are xyxy (x0, y0, x1, y1), not xywh.", _iou_xywh),
    ], properties=_IOU_PROPS),
    numpy_exercise("average_precision", L4, 3, M.average_precision, _ap_fixed, _ap_random, [
        ("rank the detections by descending score first (np.argsort(-scores, kind='stable')).", _ap_unsorted),
        ("wrong direction: the most confident detection comes first (sort by -scores).", _ap_ascending),
        ("equal scores must keep their given order: np.argsort(scores)[::-1] reverses them; "
         "use np.argsort(-scores, kind='stable').", _ap_reversed_ties),
        ("no precision envelope: at each recall r use the highest precision reached at recall >= r.",
         _ap_no_envelope),
        ("recall is true positives / num_true (the number of true boxes), not / the number of detections.",
         _ap_recall_of_detections),
        ("recall is true positives / num_true (every true box, found or not), not / the number of matched "
         "detections: that way the recall reaches 1 even when some true boxes were never found, and they cost "
         "nothing.", _ap_recall_of_matches),
        ("COCO averages the envelope at the 101 recalls 0, 0.01, ..., 1, not the area under every recall step.",
         _ap_all_points),
        ("COCO averages 101 recall levels 0, 0.01, ..., 1, not the 11 levels 0, 0.1, ..., 1 of the old VOC rule.",
         _ap_eleven),
        ("a recall level never reached (above the last recall) counts precision 0, not the last precision: "
         "detections that miss true boxes must cost AP.", _ap_unreached_last),
        ("COCO averages 101 recall levels 0, 0.01, ..., 1, recall 1 included: np.arange(0, 1, 0.01) stops "
         "before 1 and gives only 100 points.", _ap_hundred),
    ], properties=_AP_PROPS),
    numpy_exercise("match_detections", L4, 3, M.match_detections, _match_fixed, _match_random, [
        ("take the detections by descending score (the most confident first), not in the order given.",
         _match_variant(order="given")),
        ("two free true boxes with the same IoU: the later one is taken, as COCO does (np.argmax picks the "
         "earlier one).", _match_variant(earlier=True)),
        ("take the free true box with the highest IoU, not the first one above the threshold.",
         _match_variant(first=True)),
        ("the detections choose, not the true boxes: loop over the detections by descending score, each taking "
         "the free true box it overlaps most.", _match_truth_chooses),
        ("wrong direction: the most confident detection chooses first (sort by -scores).",
         _match_variant(order="ascending")),
        ("each true box is matched at most once: once taken, later detections cannot take it.",
         _match_variant(reuse=True)),
        ("an IoU equal to iou_threshold matches (>=, not >).", _match_variant(strict=True)),
        ("choose among the true boxes not yet taken: when the best one is taken, the next best above the "
         "threshold can still match.", _match_variant(best_of_all=True)),
        ("one entry per detection in the order given (entry d for detection d), not in the order of the scores.",
         _match_variant(ranked=True)),
        ("return the index of the matched true box for each detection (-1 for none), not True/False.",
         _match_variant(as_bool=True)),
    ], properties=_MATCH_PROPS),
]
