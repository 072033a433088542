"""Checks for the losses: ``masked_box_loss`` (a box where a digit is), ``focal_loss`` (the presence heatmap)
and ``iou_loss`` (the boxes at cells).

A loss is run on the same targets and predictions as the reference
(``mnistloc.losses``), with the keyword arguments a case gives (``focal_loss``'s
``alpha`` and ``beta``), and judged on its value and on whether a finite
gradient reaches the prediction. The cases include the edges a loss must
survive: predictions of exactly 0 and 1, a batch with no digit, a cell with
no box at all. When no catalogued mistake matches, the hint names the property
that failed: a loss is a finite number, >= 0 (<= 1 for the IoU loss), and 0
for a perfect prediction. Keras is imported on first use.
"""
from __future__ import annotations

import numpy as np

from mnistloc import targets as T
from mnistloc.grading.exercises.base import LESSONS, Exercise, Property, keras
from mnistloc.grading.exercises.outputs import value_of

L1, L2, L3, L4 = LESSONS[:4]


def _reference(name: str):
    def reference(y_true, y_pred, **kwargs):
        from mnistloc import losses
        return getattr(losses, name)(y_true, y_pred, **kwargs)
    reference.__name__ = name
    return reference


def _run_loss(func, case):
    import tensorflow as tf

    y_true = tf.constant(case["y_true"])
    y_pred = tf.Variable(case["y_pred"])
    with tf.GradientTape() as tape:
        loss = func(y_true, y_pred, **case.get("kwargs", {}))
    grad = tape.gradient(loss, y_pred) if tf.is_tensor(loss) else None
    value = np.asarray(loss, dtype=np.float64)
    return {"loss": value, "gradient reaches y_pred": grad is not None and bool(np.isfinite(np.asarray(grad)).all())}


def _loss_case(y_true, y_pred, note, **extra) -> dict:
    """A case: ``y_true``, ``y_pred``, a ``note``; ``kwargs`` for the loss, ``perfect`` when it should cost 0."""
    return {"y_true": np.asarray(y_true, np.float32), "y_pred": np.asarray(y_pred, np.float32), "note": note, **extra}


# masked_box_loss -----------------------------------------------------------------------------------

def _masked_fixed() -> list:
    rng = np.random.default_rng(3)
    cells = rng.uniform(size=(2, 3, 3, 5)).astype(np.float32)
    cells[..., 0] = rng.random((2, 3, 3)) < 0.3
    perfect = np.float32([[1, .1, .2, .6, .7], [0, .5, .5, .9, .9], [1, .3, .3, .4, .8]])
    return [_loss_case([[1, .1, .1, .5, .5], [0, .9, .9, .9, .9]], np.full((2, 4), .2),
                       "y_true=[[1, .1, .1, .5, .5], [0, .9, .9, .9, .9]] and y_pred all 0.2 "
                       "(row 0: mean |error| = (.1 + .1 + .3 + .3) / 4 = .2; row 1 masked out -> 0.2)"),
            _loss_case(perfect, [[.1, .2, .6, .7], [0, 0, 0, 0], [.3, .3, .4, .8]],
                       "y_true=[[1, .1, .2, .6, .7], [0, .5, .5, .9, .9], [1, .3, .3, .4, .8]] and y_pred the true box "
                       "in rows 0 and 2 (the digits), zeros in row 1 (no digit): a perfect prediction, loss 0",
                       perfect=True),
            _loss_case([[0, .1, .2, .3, .4], [0, .5, .6, .7, .8]], np.zeros((2, 4)),
                       "a batch with no digit (mask all 0)"),
            _loss_case(cells, rng.uniform(size=(2, 3, 3, 4)), "per-cell targets of shape (2, 3, 3, 5)")]


def _masked_random(rng) -> list:
    out = []
    for _ in range(4):
        shape = (int(rng.integers(1, 9)),) + tuple(int(v) for v in rng.integers(1, 5, size=rng.integers(0, 3)))
        y = rng.uniform(-1, 2, size=shape + (5,))
        y[..., 0] = rng.random(shape) < 0.5
        out.append(_loss_case(y, rng.uniform(-1, 2, size=shape + (4,)), f"random targets of shape {y.shape}"))
    return out


def _masked_variant(*, masked=True, denominator="mask", square=False, box=slice(1, None), floor=True, total4=False):
    def loss(y_true, y_pred):
        ops = keras.ops
        mask = y_true[..., 0]
        diff = y_true[..., box] - y_pred
        err = (ops.sum if total4 else ops.mean)(ops.square(diff) if square else ops.abs(diff), axis=-1)
        if not masked:
            return ops.mean(err)
        total = ops.sum(mask * err)
        if denominator == "all":
            return total / ops.cast(ops.size(mask), total.dtype)
        return total / (ops.maximum(ops.sum(mask), 1.0) if floor else ops.sum(mask))
    return loss


def _masked_numpy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    err = np.abs(y_true[..., 1:] - y_pred).mean(-1)
    return np.sum(y_true[..., 0] * err) / max(y_true[..., 0].sum(), 1.0)


# focal_loss ----------------------------------------------------------------------------------------

def _focal_fixed() -> list:
    y = np.zeros((1, 3, 3, 1))
    y[0, 1, 1], y[0, 1, 2], y[0, 0, 1] = 1.0, 0.5, 0.25  # a centre and two cells of its bump
    p = np.full((1, 3, 3, 1), 0.1)
    p[0, 1, 1], p[0, 1, 2] = 0.5, 0.5
    two = np.zeros((2, 4, 4, 1))
    two[0, 1, 1] = two[1, 2, 2] = 1.0
    two[0, 1, 2] = 0.6
    rng = np.random.default_rng(4)
    boxes = np.array([[[10, 20, 32, 46], [70, 60, 90, 88]]], np.float32)
    heat = T.heatmap_targets(boxes, np.ones((1, 2), bool), size=64, stride=8)[..., None]
    return [_loss_case(y, p, "y_true (1, 3, 3, 1): 1 at the centre (1, 1), 0.5 at (1, 2), 0.25 at (0, 1), 0 elsewhere; "
                       "y_pred 0.5 at the first two, 0.1 elsewhere: (1 - .5)^2 * -log(.5) + (1 - .5)^4 * .5^2 * "
                       "-log(.5) + (1 - .25)^4 * .1^2 * -log(.9) + 6 * .1^2 * -log(.9) = 0.1733 + 0.0108 + 0.0003 + "
                       "0.0063 = 0.1908, over 1 centre"),
            _loss_case(two, rng.uniform(0.05, 0.95, two.shape), "two maps (2, 4, 4, 1) with one centre each "
                       "(and a 0.6 beside the first): the sum is divided by the 2 centres"),
            _loss_case(np.zeros((1, 4, 4, 1)), np.full((1, 4, 4, 1), 0.3), "a map with no centre (all 0), y_pred "
                       "0.3: 16 * .3^2 * -log(.7) = 0.514, divided by max(0, 1) = 1"),
            _loss_case(heat, rng.uniform(0.02, 0.98, heat.shape), "heatmap_targets of two digits (1, 8, 8, 1) and "
                       "random y_pred"),
            _loss_case(y, p, "the first case's maps with alpha=3, beta=1: (1 - .5)^3 * -log(.5) + (1 - .5)^1 * .5^3 "
                       "* -log(.5) + (1 - .25)^1 * .1^3 * -log(.9) + 6 * .1^3 * -log(.9) = 0.0866 + 0.0433 + 0.0001 + "
                       "0.0006 = 0.1307",
                       kwargs={"alpha": 3.0, "beta": 1.0}),
            _loss_case(y, (y >= 1).astype(float), "the first case's y_true with y_pred exactly 1 at the centre and "
                       "exactly 0 elsewhere: only the 0.5 beside the centre costs (predicting 0 there costs 0), so "
                       "the loss is 0", perfect=True),
            _loss_case(y, 1 - (y >= 1), "the first case's y_true with y_pred exactly 0 at the centre and exactly 1 "
                       "elsewhere: every cell is confidently wrong, a large but finite loss (the log of 0 is "
                       "avoided)")]


def _focal_random(rng) -> list:
    out = []
    for _ in range(4):
        n = int(rng.integers(1, 4))
        xy = rng.integers(0, 40, size=(n, 2, 2))
        boxes = np.concatenate([xy, xy + rng.integers(4, 25, size=(n, 2, 2))], -1).astype(np.float32)
        heat = T.heatmap_targets(boxes, rng.random((n, 2)) < 0.7, size=64, stride=8,
                                 sigma=float(rng.choice([0.7, 1.0, 1.5])))[..., None]
        out.append(_loss_case(heat, rng.uniform(0.02, 0.98, heat.shape), f"heatmap targets of shape {heat.shape} "
                              "from random boxes, random y_pred"))
    return out


def _focal_variant(*, norm="centres", sign=1, beta_on_pos=False, reduce_neg=True, swap=False, pos_any=False,
                   floor=True, clip=True, constants=False, swap_neg=False):
    def focal_loss(y_true, y_pred, alpha=2.0, beta=4.0):
        ops = keras.ops
        a, b = (2.0, 4.0) if constants else (alpha, beta)
        a, b = (b, a) if swap else (a, b)
        na, nb = (b, a) if swap_neg else (a, b)  # the other cells' powers: p^na, (1 - y_true)^nb
        p = ops.clip(y_pred, 1e-6, 1 - 1e-6) if clip else y_pred
        pos = ops.cast(y_true > 0 if pos_any else y_true >= 1.0, p.dtype)
        pos_cost = -pos * (1 - p) ** a * ops.log(p) * ((1 - y_true) ** b if beta_on_pos else 1)
        neg_cost = -(1 - pos) * ((1 - y_true) ** nb if reduce_neg else 1) * p ** na * ops.log(1 - p)
        total = sign * ops.sum(pos_cost + neg_cost)
        if norm == "none":
            return total
        if norm == "cells":
            return total / ops.cast(ops.size(p), total.dtype)
        if norm == "bumps":
            return total / ops.maximum(ops.sum(ops.cast(y_true > 0, p.dtype)), 1.0)
        if norm == "heat":  # the heatmap's sum: the bumps' fractions add to the count of centres
            return total / ops.maximum(ops.sum(y_true), 1.0)
        return total / (ops.maximum(ops.sum(pos), 1.0) if floor else ops.sum(pos))
    return focal_loss


def _focal_cross_entropy(y_true, y_pred, alpha=2.0, beta=4.0):
    """Plain binary cross-entropy against the heatmap, divided by the centres: no focusing, no forgiving."""
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    cost = -(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
    return ops.sum(cost) / ops.maximum(ops.sum(ops.cast(y_true >= 1.0, p.dtype)), 1.0)


def _focal_numpy(y_true, y_pred, alpha=2.0, beta=4.0):
    y, p = np.asarray(y_true), np.clip(np.asarray(y_pred), 1e-6, 1 - 1e-6)
    pos = y >= 1
    cost = np.where(pos, -(1 - p) ** alpha * np.log(p), -(1 - y) ** beta * p ** alpha * np.log(1 - p))
    return cost.sum() / max(pos.sum(), 1)


# iou_loss ------------------------------------------------------------------------------------------

def _iou_fixed() -> list:
    rng = np.random.default_rng(6)
    cells = np.concatenate([(rng.random((2, 3, 3, 1)) < 0.4) * rng.uniform(0.3, 1, (2, 3, 3, 1)),
                            rng.uniform(0.2, 3, (2, 3, 3, 4))], -1)
    return [_loss_case([[1, 1, 1, 1, 1], [.5, 2, 1, 1, 1], [0, 5, 5, 5, 5]], [[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]],
                       "y_true [[1, 1, 1, 1, 1], [.5, 2, 1, 1, 1], [0, 5, 5, 5, 5]] (mask, then l, t, r, b), y_pred "
                       "[[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]: row 0 a 1 x 1 box inside a 2 x 2 one, IoU "
                       "1 / 4, loss .75; row 1 a 2 x 2 box inside a 3 x 2 one, IoU 4 / 6, loss 1 / 3; row 2 masked "
                       "out: (1 * .75 + .5 / 3) / 1.5 = 0.611"),
            _loss_case([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], [[-2, 1, 4, 1], [-2, -2, 4, 4]],
                       "y_true [[1, 1, 1, 1, 1]] twice and y_pred [[-2, 1, 4, 1], [-2, -2, 4, 4]]: boxes that miss "
                       "the true box (x from 2 to 4 against -1 to 1; then also y): IoU 0, loss 1"),
            _loss_case(np.zeros((2, 5)), [[1, 1, 1, 1], [2, 2, 2, 2]], "a batch with no digit (mask all 0)"),
            _loss_case(cells, rng.uniform(0.2, 3, (2, 3, 3, 4)), "per-cell targets of shape (2, 3, 3, 5) with weights "
                       "in the mask channel"),
            _loss_case([[1, 1, 2, 3, 1], [0, 0, 0, 0, 0]], [[1, 2, 3, 1], [0, 0, 0, 0]],
                       "y_true [[1, 1, 2, 3, 1], [0, 0, 0, 0, 0]], y_pred [[1, 2, 3, 1], [0, 0, 0, 0]]: row 0 a "
                       "perfect box, row 1 a cell of weight 0 with no box at all (zero target, zero prediction: "
                       "union 0): the loss is 0", perfect=True)]


def _iou_random(rng) -> list:
    out = []
    for _ in range(4):
        shape = (int(rng.integers(1, 6)),) + tuple(int(v) for v in rng.integers(1, 5, size=rng.integers(0, 3)))
        mask = (rng.random(shape + (1,)) < 0.5) * rng.choice([1.0, rng.uniform(0.2, 1)], size=shape + (1,))
        y = np.concatenate([mask, rng.uniform(0.1, 3, shape + (4,))], -1)
        out.append(_loss_case(y, rng.uniform(-0.5, 3, shape + (4,)), f"random targets of shape {y.shape}"))
    return out


def _iou_variant(*, masked=True, denominator="mask", clamp=True, minus=True, inter=None, one_minus=True,
                 giou=False, box=slice(1, None), guard=True, pairs=(0, 1, 2, 3), binary=False):
    def iou_loss(y_true, y_pred):
        ops = keras.ops
        mask, t, p = y_true[..., 0], y_true[..., box], y_pred
        if binary:  # the weights turned into a 0/1 mask: every cell with a digit counts 1
            mask = ops.cast(mask > 0, y_true.dtype)
        if pairs != (0, 1, 2, 3):  # the same wrong pairing of the four distances in both boxes
            t = ops.stack([t[..., i] for i in pairs], -1)
            p = ops.stack([p[..., i] for i in pairs], -1)
        pick = inter or ops.minimum
        w = pick(t[..., 0], p[..., 0]) + pick(t[..., 2], p[..., 2])
        h = pick(t[..., 1], p[..., 1]) + pick(t[..., 3], p[..., 3])
        overlap = ops.relu(w) * ops.relu(h) if clamp else w * h
        area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
        area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
        union = area_t + area_p - (overlap if minus else 0)
        iou = overlap / (ops.maximum(union, 1e-6) if guard else union)
        if giou:  # the smallest box holding both
            c = (ops.maximum(t[..., 0], p[..., 0]) + ops.maximum(t[..., 2], p[..., 2])) * \
                (ops.maximum(t[..., 1], p[..., 1]) + ops.maximum(t[..., 3], p[..., 3]))
            iou = iou - (c - union) / ops.maximum(c, 1e-6)
        cost = 1 - iou if one_minus else iou
        if not masked:
            return ops.mean(cost)
        total = ops.sum(mask * cost)
        if denominator == "all":
            return total / ops.cast(ops.size(mask), total.dtype)
        return total / (ops.maximum(ops.sum(mask), 1.0) if denominator == "mask" else ops.sum(mask))
    return iou_loss


def _iou_numpy(y_true, y_pred):
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    m, t = t[..., 0], t[..., 1:]
    w = np.maximum(np.minimum(t[..., 0], p[..., 0]) + np.minimum(t[..., 2], p[..., 2]), 0)
    h = np.maximum(np.minimum(t[..., 1], p[..., 1]) + np.minimum(t[..., 3], p[..., 3]), 0)
    area_p = np.maximum(p[..., 0] + p[..., 2], 0) * np.maximum(p[..., 1] + p[..., 3], 0)
    union = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3]) + area_p - w * h
    return np.sum(m * (1 - w * h / np.maximum(union, 1e-6))) / max(m.sum(), 1.0)


_OPS = ("use keras.ops (ops.log, ops.sum, ops.minimum, ops.maximum, ...), not numpy, so that Keras can "
        "differentiate the loss.")


# properties: what every right loss has, named when no catalogued mistake matches -------------------

def _loss(got) -> float:
    return float(value_of(got, "loss"))


_FINITE = Property("a loss is a finite number (no NaN or inf), whatever the predictions",
                   lambda c, g: np.isfinite(_loss(g)))
_NON_NEGATIVE = Property("a loss is >= 0", lambda c, g: _loss(g) >= -1e-6)
_PERFECT = Property("a perfect prediction costs 0", lambda c, g: not c.get("perfect") or abs(_loss(g)) < 1e-4)
_AT_MOST_ONE = Property("the IoU loss is at most 1 (each cell's 1 - IoU lies within [0, 1])",
                        lambda c, g: _loss(g) <= 1 + 1e-6)
_GRADIENT = Property("a finite gradient reaches y_pred (the loss is built from keras.ops on y_pred)",
                     lambda c, g: g["items"]["gradient reaches y_pred"]["value"])


def _loss_exercise(name, lesson, fixed, random, mistakes, properties) -> Exercise:
    return Exercise(name=name, lesson=lesson, points=3, reference=_reference(name), fixed=fixed, random=random,
                    run=_run_loss, describe=lambda case: case["note"], mistakes=tuple(mistakes),
                    properties=tuple(properties), keras=True)


EXERCISES = (
    _loss_exercise("masked_box_loss", L2, _masked_fixed, _masked_random, [
        ("loss not masked: multiply each entry's error by the mask y_true[..., 0] so that empty canvases "
         "add nothing.", _masked_variant(masked=False)),
        ("divide by the number of digits (the sum of the mask), not by the number of entries.",
         _masked_variant(denominator="all")),
        ("use the absolute error |true - pred| (L1), not the squared error.", _masked_variant(square=True)),
        ("the box is y_true[..., 1:]; y_true[..., 0] is the mask.", _masked_variant(box=slice(0, 4))),
        ("a batch with no digit gave NaN (0 / 0): divide by max(sum(mask), 1).", _masked_variant(floor=False)),
        ("use keras.ops (ops.abs, ops.mean, ops.sum, ops.maximum), not numpy, so that Keras can "
         "differentiate the loss.", _masked_numpy),
        ("an entry's error is the mean of its four absolute errors (x0, y0, x1, y1), not their sum: the sum is "
         "four times too large.", _masked_variant(total4=True)),
    ], [_FINITE, _NON_NEGATIVE, _PERFECT, _GRADIENT]),
    _loss_exercise("focal_loss", L2, _focal_fixed, _focal_random, [
        ("divide the sum by the number of centres (cells where y_true == 1), at least 1: without it the loss "
         "grows with the number of digits.", _focal_variant(norm="none")),
        ("wrong sign: the loss is -log(...) times non-negative weights, so it is >= 0.", _focal_variant(sign=-1)),
        ("(1 - y_true)^beta weighs only the cells that are not centres; a centre costs (1 - p)^alpha * -log(p) "
         "(with beta on it too, centres cost nothing).", _focal_variant(beta_on_pos=True)),
        ("cells near a centre are forgiven: multiply the other cells' cost by (1 - y_true)^beta (penalty "
         "reduction).", _focal_variant(reduce_neg=False)),
        ("alpha and beta swapped: the focusing powers (1 - p)^alpha and p^alpha use alpha = 2, the forgiving "
         "(1 - y_true)^beta uses beta = 4.", _focal_variant(swap=True)),
        ("alpha and beta swapped in the cost of the cells that are not centres: it is (1 - y_true)^beta * "
         "p^alpha * -log(1 - p), not (1 - y_true)^alpha * p^beta.", _focal_variant(swap_neg=True)),
        ("divide by the number of centres, not by the number of cells (no mean over the map).",
         _focal_variant(norm="cells")),
        ("divide by the number of centres (cells where y_true == 1), not by every cell of the bumps (y_true > 0).",
         _focal_variant(norm="bumps")),
        ("divide by the number of centres (count the cells where y_true == 1), not by the sum of the heatmap: the "
         "bumps' other cells (0 < y_true < 1) add their values to that sum, though they are not centres.",
         _focal_variant(norm="heat")),
        ("a centre is a cell where y_true == 1; the bump's other cells (0 < y_true < 1) are negatives, forgiven "
         "by (1 - y_true)^beta.", _focal_variant(pos_any=True)),
        ("a map with no centre gave inf or NaN (x / 0): divide by max(number of centres, 1).",
         _focal_variant(floor=False)),
        ("use the `alpha` and `beta` arguments, not fixed powers 2 and 4.", _focal_variant(constants=True)),
        ("that is the plain cross-entropy: the focal loss weighs a centre's -log(p) by (1 - p)^alpha and another "
         "cell's -log(1 - p) by (1 - y_true)^beta * p^alpha.", _focal_cross_entropy),
        ("a prediction of exactly 0 or 1 gave inf or NaN (the log of 0): clip the predictions a little inside "
         "(0, 1) first.", _focal_variant(clip=False)),
        (_OPS, _focal_numpy),
    ], [_FINITE, _NON_NEGATIVE, _PERFECT, _GRADIENT]),
    _loss_exercise("iou_loss", L3, _iou_fixed, _iou_random, [
        ("loss not masked: weight each cell's 1 - IoU by the mask y_true[..., 0] so that cells without a digit "
         "add nothing.", _iou_variant(masked=False)),
        ("divide by the sum of the mask (the weight of the digits' cells), not by the number of cells.",
         _iou_variant(denominator="all")),
        ("the overlap's width and height are at least 0 (clamp each with relu or maximum(., 0)): boxes that "
         "miss each other overlap by 0, not a negative amount.", _iou_variant(clamp=False)),
        ("the union counts the overlap twice: the two areas added together hold the intersection twice.",
         _iou_variant(minus=False)),
        ("the overlap's width is min(l, l') + min(r, r') (both boxes share the cell's centre), not the max.",
         _iou_variant(inter=lambda a, b: keras.ops.maximum(a, b))),
        ("the loss is 1 - IoU (0 for a perfect box), not the IoU.", _iou_variant(one_minus=False)),
        ("a batch with no digit gave NaN (0 / 0): divide by max(sum(mask), 1).", _iou_variant(denominator="raw")),
        ("that is GIoU; this exercise asks for the IoU loss, 1 - IoU, without the enclosing-box term.",
         _iou_variant(giou=True)),
        ("the distances are y_true[..., 1:]; y_true[..., 0] is the mask.", _iou_variant(box=slice(0, 4))),
        ("a cell with no box at all (zero target and zero prediction) has a union of 0, and 0 / 0 is NaN even "
         "where its weight is 0: keep the division's denominator above 0.", _iou_variant(guard=False)),
        (_OPS, _iou_numpy),
        ("the distances are paired wrongly: they come as (l, t, r, b), so a box's width is l + r and its height "
         "t + b (the overlap's width min(l, l') + min(r, r')), not l + t and r + b.",
         _iou_variant(pairs=(0, 2, 1, 3))),
        ("the weights were turned into a 0/1 mask: y_true[..., 0] is each cell's weight (between 0 and 1, not "
         "only 0 or 1), so weight each cell's 1 - IoU by it and divide by the sum of the weights.",
         _iou_variant(binary=True)),
    ], [_FINITE, _NON_NEGATIVE, _AT_MOST_ONE, _PERFECT, _GRADIENT]),
)
