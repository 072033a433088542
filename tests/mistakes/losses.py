"""The losses, got wrong the way a student would (keras.ops, as the lessons ask)."""
import numpy as np

from mnistloc.checks import keras


def masked_unmasked(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred))


def masked_mean_over_batch(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.mean(y_true[..., 0] * err)


def masked_nan_empty(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.sum(y_true[..., 0] * err) / keras.ops.sum(y_true[..., 0])


def masked_mask_as_box(y_true, y_pred):
    err = keras.ops.mean(keras.ops.abs(y_true[..., :4] - y_pred), axis=-1)
    return keras.ops.sum(y_true[..., 0] * err) / keras.ops.maximum(keras.ops.sum(y_true[..., 0]), 1.0)


def masked_sum_not_mean(y_true, y_pred):  # sums the four errors instead of averaging them
    err = keras.ops.sum(keras.ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return keras.ops.sum(y_true[..., 0] * err) / keras.ops.maximum(keras.ops.sum(y_true[..., 0]), 1.0)


def masked_numpy(y_true, y_pred):
    t, p = np.asarray(y_true), np.asarray(y_pred)
    err = np.abs(t[..., 1:] - p).mean(-1)
    return float((t[..., 0] * err).sum() / max(t[..., 0].sum(), 1))


def _focal(y_true, y_pred, alpha=2.0, beta=4.0, *, clip=True, pos_any=False, norm="centres", beta_pos=False):
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6) if clip else y_pred
    pos = ops.cast(y_true > 0 if pos_any else ops.equal(y_true, 1.0), p.dtype)
    neg_w = (1 - y_true) ** beta
    cost = (-pos * (1 - p) ** alpha * ops.log(p) * (neg_w if beta_pos else 1)
            - (1 - pos) * neg_w * p ** alpha * ops.log(1 - p))
    total = ops.sum(cost)
    if norm == "cells":
        return ops.mean(cost)
    return total / ops.maximum(ops.sum(pos), 1.0)


def focal_no_clip(y_true, y_pred, alpha=2.0, beta=4.0):
    return _focal(y_true, y_pred, alpha, beta, clip=False)


def focal_constants(y_true, y_pred, alpha=2.0, beta=4.0):
    return _focal(y_true, y_pred)


def focal_mean(y_true, y_pred, alpha=2.0, beta=4.0):
    return _focal(y_true, y_pred, alpha, beta, norm="cells")


def focal_any_positive(y_true, y_pred, alpha=2.0, beta=4.0):
    return _focal(y_true, y_pred, alpha, beta, pos_any=True)


def focal_plain_bce(y_true, y_pred, alpha=2.0, beta=4.0):  # no focusing, no penalty reduction
    p = keras.ops.clip(y_pred, 1e-6, 1 - 1e-6)
    cost = -(y_true * keras.ops.log(p) + (1 - y_true) * keras.ops.log(1 - p))
    pos = keras.ops.cast(y_true >= 1.0, p.dtype)
    return keras.ops.sum(cost) / keras.ops.maximum(keras.ops.sum(pos), 1.0)


def focal_alpha_beta_swapped(y_true, y_pred, alpha=2.0, beta=4.0):
    return _focal(y_true, y_pred, beta, alpha)


def _iou(y_true, y_pred, *, guard=True, masked=True, relu=True, box=slice(1, None)):
    ops = keras.ops
    mask, t, p = y_true[..., 0], y_true[..., box], y_pred
    w = ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2])
    h = ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3])
    inter = (ops.relu(w) * ops.relu(h)) if relu else w * h
    union = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3]) + ops.relu(p[..., 0] + p[..., 2]) * ops.relu(
        p[..., 1] + p[..., 3]) - inter
    iou = inter / (ops.maximum(union, 1e-6) if guard else union)
    if not masked:
        return ops.mean(1 - iou)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


def iou_unguarded(y_true, y_pred):
    return _iou(y_true, y_pred, guard=False)


def iou_unmasked(y_true, y_pred):
    return _iou(y_true, y_pred, masked=False)


def iou_negative_overlap(y_true, y_pred):
    return _iou(y_true, y_pred, relu=False)


def iou_mask_in_box(y_true, y_pred):
    return _iou(y_true, y_pred, box=slice(0, 4))


def iou_returns_iou(y_true, y_pred):
    return 1 - _iou(y_true, y_pred)  # the mean IoU, not the loss


MISTAKES = [
    ("masked_box_loss", masked_unmasked, ("not masked",)),
    ("masked_box_loss", masked_mean_over_batch, ("sum of the mask",)),
    ("masked_box_loss", masked_nan_empty, ("NaN", "finite")),
    ("masked_box_loss", masked_mask_as_box, ("y_true[..., 1:]",)),
    ("masked_box_loss", masked_sum_not_mean, ("mean", "perfect")),
    ("masked_box_loss", masked_numpy, ("keras.ops",)),
    ("focal_loss", focal_no_clip, ("exactly 0 or 1", "finite")),
    ("focal_loss", focal_constants, ("`alpha` and `beta` arguments",)),
    ("focal_loss", focal_mean, ("number of centres",)),
    ("focal_loss", focal_any_positive, ("y_true == 1",)),
    ("focal_loss", focal_plain_bce, ("(1 - y_true)^beta", "(1 - p)^alpha", "focusing")),
    ("focal_loss", focal_alpha_beta_swapped, ("swapped",)),
    ("iou_loss", iou_unguarded, ("union of 0", "NaN", "finite")),
    ("iou_loss", iou_unmasked, ("not masked",)),
    ("iou_loss", iou_negative_overlap, ("at least 0",)),
    ("iou_loss", iou_mask_in_box, ("y_true[..., 1:]",)),
    ("iou_loss", iou_returns_iou, ("1 - IoU",)),
]
