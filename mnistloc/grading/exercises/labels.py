"""Checks for the exercises on a canvas's labels: ``union_box`` (lesson 2's one box around every digit),
``one_hot`` (lesson 3's classes as vectors) and ``order_left_to_right`` (lesson 4's slot order).

As in ``canvas`` (the digits on a canvas and their boxes): fixed public cases with the arithmetic in the note,
random cases, the typical mistakes as wrong implementations, and the properties every right answer has.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import canvas as C
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, float64_mistake, numpy_exercise
from mnistloc.grading.exercises.outputs import _show, value_of

L2, L3, L4 = LESSONS[1:4]


# union_box ----------------------------------------------------------------------------------------

def _union_fixed() -> list:
    boxes = np.float32([[[10, 20, 30, 40], [50, 5, 60, 35]],
                        [[40, 40, 60, 70], [0, 0, 0, 0]],
                        [[0, 0, 0, 0], [0, 0, 0, 0]],
                        [[5, 60, 20, 90], [70, 10, 90, 30]]])
    mask = np.array([[True, True], [True, False], [False, False], [True, True]])
    return [{"args": (boxes, mask), "note": "boxes=" + _show(boxes[:2]) + "... with mask " + _show(mask)
             + " (two digits; one digit; an empty canvas; two digits)"}, _union_three_slots_case()]


def _union_three_slots_case() -> dict:
    """K = 3 slots, with digits in slot 2: an answer that only looks at two slots fails here."""
    boxes = np.float32([[[10, 20, 30, 40], [50, 5, 60, 35], [70, 60, 90, 80]],
                        [[0, 0, 0, 0], [0, 0, 0, 0], [40, 40, 60, 70]],
                        [[5, 60, 20, 90], [0, 0, 0, 0], [0, 10, 12, 30]]])
    mask = np.array([[True, True, True], [False, False, True], [True, False, True]])
    return {"args": (boxes, mask),
            "note": "three slots a canvas (K = 3): [10, 20, 30, 40], [50, 5, 60, 35], [70, 60, 90, 80] all used "
                    "(union [10, 5, 90, 80]); only slot 2 [40, 40, 60, 70] used; slots 0 [5, 60, 20, 90] and 2 "
                    "[0, 10, 12, 30] used, slot 1 unused (union [0, 10, 20, 90])"}


def _union_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        ds = C.make_dataset(2, int(rng.integers(5, 30)), seed=rng, split="test", source="bundled")
        out.append({"args": (ds.boxes, ds.mask), "note": f"{len(ds)} random canvases of case 2"})
    return out


def _union_ignore_mask(boxes, mask):
    b = np.asarray(boxes)
    return np.concatenate([b[:, :, :2].min(1), b[:, :, 2:].max(1)], -1).astype(np.float32)


def _union_intersection(boxes, mask):
    b, m = np.asarray(boxes), np.asarray(mask)
    lo = np.where(m[..., None], b[..., :2], -np.inf).max(1)
    hi = np.where(m[..., None], b[..., 2:], np.inf).min(1)
    return np.where(m.any(1)[:, None], np.concatenate([lo, hi], -1), 0).astype(np.float32)


def _union_inf(boxes, mask):
    b, m = np.asarray(boxes), np.asarray(mask)
    lo = np.where(m[..., None], b[..., :2], np.inf).min(1)
    hi = np.where(m[..., None], b[..., 2:], -np.inf).max(1)
    return np.concatenate([lo, hi], -1).astype(np.float32)


def _union_first(boxes, mask):
    return np.asarray(boxes)[:, 0].astype(np.float32)


def _union_slots(count):
    """The union over the first ``count`` slots only, as if every canvas had that many slots."""
    def union_box(boxes, mask):
        return B.union_box(np.asarray(boxes)[:, :count], np.asarray(mask)[:, :count])
    return union_box


def _union_inf_for_max(boxes, mask):
    """Unused slots filled with +inf for the maximum (x1, y1) as well as for the minimum: an unused slot wins it."""
    b, m = np.asarray(boxes), np.asarray(mask)
    filled = np.where(m[..., None], b, np.inf)
    out = np.concatenate([filled[..., :2].min(1), filled[..., 2:].max(1)], -1)
    return np.where(m.any(1)[:, None], out, 0).astype(np.float32)


def _union_min_everywhere(boxes, mask):
    b, m = np.asarray(boxes), np.asarray(mask)
    lo = np.where(m[..., None], b, np.inf).min(1)
    return np.where(m.any(1)[:, None], lo, 0).astype(np.float32)


# one_hot --------------------------------------------------------------------------------------------

def _onehot_fixed() -> list:
    return [{"args": (np.array([3, 0, 9, -1]), 10), "note": "labels [3, 0, 9, -1] with 10 classes"},
            {"args": (np.array([[1, -1], [0, 2]]), 3), "note": "labels [[1, -1], [0, 2]] with 3 classes"},
            {"args": (np.array([2, 1]), 3), "note": "labels [2, 1] with 3 classes"}]


def _onehot_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        k = int(rng.integers(2, 12))
        shape = tuple(rng.integers(1, 8, size=rng.integers(1, 3)))
        out.append({"args": (rng.integers(-1, k, size=shape), k), "note": f"labels of shape {shape}, {k} classes"})
    return out


def _run_onehot(func, case):
    labels = np.array(case["args"][0])
    out = func(labels, *case["args"][1:])
    return {"the one-hot array": out, "given labels unchanged": bool(np.array_equal(labels, case["args"][0]))}


def _onehot_in_place(labels, num_classes):
    """Right rows, but the labels given are changed in place on the way (their -1 entries overwritten)."""
    out = C.one_hot(labels, num_classes)
    np.maximum(labels, 0, out=labels)
    return out


def _onehot_eye(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels]


def _onehot_shifted(labels, num_classes):
    return C.one_hot(np.where(labels >= 0, (labels + 1) % num_classes, -1), num_classes)


def _onehot_shifted_down(labels, num_classes):
    return C.one_hot(np.where(labels >= 1, labels - 1, -1), num_classes)


def _onehot_transposed(labels, num_classes):
    return np.moveaxis(C.one_hot(labels, num_classes), -1, 0)


def _onehot_int(labels, num_classes):
    return (np.asarray(labels)[..., None] == np.arange(num_classes)).astype(np.int64)


# order_left_to_right ---------------------------------------------------------------------------------

def _order_fixed() -> list:
    return [_order_plain_case(), _order_full_case()]


def _order_plain_case() -> dict:
    """Five canvases and no tie in x0: a mistake gives the same output whether or not it breaks ties by y0; the
    last two tell a sort by the centre from a sort by x1 (both wrong)."""
    boxes = np.float32([[[60, 10, 80, 30], [10, 50, 30, 70]],
                        [[0, 0, 0, 0], [40, 40, 60, 60]],
                        [[5, 5, 25, 25], [50, 50, 70, 70]],
                        [[10, 0, 50, 20], [20, 30, 30, 40]],
                        [[0, 0, 40, 10], [12, 20, 32, 30]]])
    classes = np.array([[7, 2], [-1, 4], [3, 6], [5, 9], [1, 8]])
    mask = np.array([[True, True], [False, True], [True, True], [True, True], [True, True]])
    return {"args": (boxes, classes, mask),
            "note": "five canvases: a pair right to left [60, 10, 80, 30], [10, 50, 30, 70] (swap them); an unused "
                    "slot before a used one (it goes last); a pair already in order; a wide box [10, 0, 50, 20] left "
                    "of a narrow one [20, 30, 30, 40] that ends before it (in order by x0); a wide box [0, 0, 40, 10] "
                    "left of a narrow one [12, 20, 32, 30] that ends before it, their centres in the same order "
                    "(in order by x0)"}


def _order_full_case() -> dict:
    boxes = np.float32([[[60, 10, 80, 30], [10, 50, 30, 70]],
                        [[0, 0, 0, 0], [40, 40, 60, 60]],
                        [[20, 90, 40, 110], [20, 10, 40, 30]],
                        [[5, 5, 25, 25], [50, 50, 70, 70]],
                        [[10, 0, 50, 20], [20, 30, 30, 40]]])
    classes = np.array([[7, 2], [-1, 4], [1, 8], [3, 6], [5, 9]])
    mask = np.array([[True, True], [False, True], [True, True], [True, True], [True, True]])
    return {"args": (boxes, classes, mask),
            "note": "five canvases: swapped pair; unused slot first; same x0 (tie); already in order; a wide box "
                    "[10, 0, 50, 20] left of a narrow one [20, 30, 30, 40] that ends before it (in order by x0)"}


def _order_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        ds = C.make_dataset(4, int(rng.integers(5, 30)), seed=rng, split="test", source="bundled")
        flip = rng.random(len(ds)) < 0.5  # shuffle the slots of half the canvases
        idx = np.where(flip[:, None], [1, 0], [0, 1])
        take = lambda a: np.take_along_axis(a, idx.reshape(idx.shape + (1,) * (a.ndim - 2)), 1)  # noqa: E731
        out.append({"args": (take(ds.boxes), take(ds.classes), take(ds.mask)),
                    "note": f"{len(ds)} random canvases of case 4 with shuffled slots"})
    return out


def _order_by(key, *, move_classes=True, move_mask=True, descending=False):
    def wrong(boxes, classes, mask):
        boxes, classes, mask = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
        k = key(boxes, mask)
        order = np.argsort(-k if descending else k, axis=1, kind="stable")
        take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)  # noqa: E731
        return take(boxes), take(classes) if move_classes else classes, take(mask) if move_mask else mask
    return wrong


def _x0_masked(boxes, mask):
    return np.where(mask, boxes[..., 0], np.inf)


_order_by_y = _order_by(lambda b, m: np.where(m, b[..., 1], np.inf))
_order_classes_stay = _order_by(_x0_masked, move_classes=False)
_order_boxes_only = _order_by(_x0_masked, move_classes=False, move_mask=False)
_order_unused_first = _order_by(lambda b, m: b[..., 0])
_order_descending = _order_by(lambda b, m: np.where(m, b[..., 0], -np.inf), descending=True)
_order_by_x1 = _order_by(lambda b, m: np.where(m, b[..., 2], np.inf))
_order_by_centre = _order_by(lambda b, m: np.where(m, (b[..., 0] + b[..., 2]) / 2, np.inf))
_order_no_tiebreak = _order_by(_x0_masked)  # stable sort on x0 alone keeps the given order on ties


# properties: what every right answer has, named when no catalogued mistake matches ---------------------

def _holds_slots(case, got) -> bool:
    boxes, mask = case["args"]
    u = value_of(got)
    inside = (u[:, None, :2] <= boxes[..., :2]) & (u[:, None, 2:] >= boxes[..., 2:])  # [N, K, 2]
    return u.shape == (len(boxes), 4) and bool(np.all(inside.all(-1) | ~mask))


def _empty_union(case, got) -> bool:
    return bool(np.all(value_of(got)[~np.asarray(case["args"][1]).any(1)] == 0))


def _one_per_label(case, got) -> bool:
    labels, k = np.asarray(case["args"][0]), case["args"][1]
    v = value_of(got, "the one-hot array")
    return v.shape == labels.shape + (k,) and bool(np.array_equal(v.sum(-1), (labels >= 0).astype(float))
                                                   and np.isin(v, (0, 1)).all())


def _same_slots(case, got) -> bool:
    boxes, classes, mask = (np.asarray(a) for a in case["args"])
    b, c, m = (np.asarray(i["value"]) for i in got["items"])
    key = lambda bb, cc, mm: sorted(zip(map(tuple, bb.tolist()), cc.tolist(), mm.tolist()))  # noqa: E731
    return all(key(b[n], c[n], m[n]) == key(boxes[n], classes[n], mask[n]) for n in range(len(boxes)))


def _used_first_by_x0(case, got) -> bool:
    b, _, m = (np.asarray(i["value"]) for i in got["items"])
    key = np.where(m.astype(bool), b[..., 0], np.inf)
    return bool(np.all(np.diff(key, axis=1) >= 0))


_UNION_PROPS = [Property("the union box holds every used slot's box", _holds_slots),
                Property("a canvas with no used slot gives [0, 0, 0, 0]", _empty_union)]
_ONEHOT_PROPS = [Property("each label's row holds a single 1 (none for -1) and zeros elsewhere", _one_per_label)]
_ORDER_PROPS = [Property("each canvas keeps the same slots (a box with its class and mask), only reordered",
                         _same_slots),
                Property("used slots come first, by increasing x0, then the unused ones", _used_first_by_x0)]


_TOGETHER = "the classes (and mask) must move together with their boxes."

EXERCISES = [
    numpy_exercise("union_box", L2, 2, B.union_box, _union_fixed, _union_random, [
        ("unused slots (mask False) must be ignored: their zero boxes pulled x0 and y0 to 0.", _union_ignore_mask),
        ("that is the intersection: the union box takes the minimum of x0, y0 and the maximum of x1, y1.",
         _union_intersection),
        ("a canvas with no digit should give [0, 0, 0, 0], not infinities.", _union_inf),
        ("only the first slot was used: combine every slot that the mask marks.", _union_first),
        ("only the first two slots were combined: a canvas has K slots (K = boxes.shape[1], often more than two), "
         "so take every slot the mask marks, not a hard-coded two.", _union_slots(2)),
        ("x1 and y1 took the minimum too: the union box ends where the last digit ends, so x1 and y1 are the "
         "maximum over the used slots (only x0 and y0 take the minimum).", _union_min_everywhere),
        ("unused slots were filled with +inf for x1 and y1 too: +inf never wins a minimum, so it suits x0 and y0, "
         "but it always wins a maximum, so a canvas with an unused slot got x1 = y1 = inf; for the maximum an "
         "unused slot needs a value that never wins it (-inf).", _union_inf_for_max),
        float64_mistake(B.union_box, "the boxes", "float32[N, 4]"),
    ], properties=_UNION_PROPS, exact_dtype=True),
    numpy_exercise("one_hot", L3, 2, C.one_hot, _onehot_fixed, _onehot_random, [
        ("a label of -1 means 'no digit' and gives a row of zeros (np.eye(n)[-1] picks the last class).",
         _onehot_eye),
        ("off by one: class k sets column k.", _onehot_shifted),
        ("off by one: class k sets column k (columns start at 0).", _onehot_shifted_down),
        ("wrong shape: the classes go on a new last axis, shape labels.shape + (num_classes,).",
         _onehot_transposed),
        ("the result should be float32 (Keras trains on floats), not integers.", _onehot_int),
        ("the labels given were modified in place (their -1 entries overwritten): the caller's labels must stay "
         "unchanged, so work on a copy of the input or build the rows without writing into it.",
         _onehot_in_place),
        float64_mistake(C.one_hot, "the one-hot rows", "float32[..., number of classes]"),
    ], run=_run_onehot, properties=_ONEHOT_PROPS, exact_dtype=True),
    numpy_exercise("order_left_to_right", L4, 2, C.order_left_to_right, _order_fixed, _order_random, [
        ("x and y swapped: left to right means sorting by x0 (index 0), not y0.", _order_by_y),
        (_TOGETHER, _order_classes_stay),
        (_TOGETHER, _order_boxes_only),
        ("unused slots go last: their zero boxes have x0 = 0, so give them an infinite key.", _order_unused_first),
        ("wrong direction: left to right means by increasing x0, the leftmost box (smallest x0) first, not by "
         "descending x0.", _order_descending),
        ("sort by increasing x0, the left edge, not by the box's centre (x0 + x1) / 2: a wide box that starts "
         "further left comes first even when its centre lies right of a narrow box's.", _order_by_centre),
        ("sort by increasing x0, the left edge, not by the right edge x1: a wide box that starts further left "
         "comes first even when it ends after a narrow box.", _order_by_x1),
        ("ties: when two boxes have the same x0, the one with the smaller y0 comes first.", _order_no_tiebreak),
    ], properties=_ORDER_PROPS),
]
