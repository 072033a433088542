"""The dense models' losses: each takes ``(y_true, y_pred)`` and returns a scalar (Keras's contract).

Per cell, ``y_true`` carries a weight in its first channel (``targets.encode_targets``):
the box and class losses count only where it is nonzero, so cells (and
canvases) with no digit give none, and divide by its sum, so a batch with
more digits does not weigh more.

- ``focal_loss``: CenterNet's penalty-reduced focal loss on the presence heatmap.
- ``masked_box_loss``: L1 on the distances (l, t, r, b); ``iou_loss``: 1 - IoU
  of the boxes those distances describe; ``box_loss``: their sum, what the
  reference models train with.
- ``masked_class_loss``: cross-entropy on the class probabilities.

``LOSSES`` maps each named output to its loss; a lesson may swap in its own.
Keras and TensorFlow are imported when this module is.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import ops  # noqa: E402

_register = keras.saving.register_keras_serializable(package="mnistloc")


@_register
def masked_box_loss(y_true, y_pred):
    """Mean absolute box error over the entries that hold a digit; none elsewhere.

    Args:
        y_true (float[..., 5]): a mask (1 where a digit is, else 0) then the
            four box numbers. Per cell ``(B, H, W, 5)`` for the models here,
            per canvas ``(B, 5)`` = (presence, box) works the same way.
        y_pred (float[..., 4]): the predicted box numbers.

    Returns:
        A scalar: ``sum(mask * mean(|box_true - box_pred|, last axis)) / max(sum(mask), 1)``;
        0 when nothing is masked in (so empty canvases add nothing).
    """
    mask = y_true[..., 0]
    error = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * error) / ops.maximum(ops.sum(mask), 1.0)


@_register
def iou_loss(y_true, y_pred):
    """``1 - IoU`` between the boxes two (left, top, right, bottom) distances describe, over masked cells.

    Both boxes are measured from the same point (the cell's centre), so the
    intersection's width is ``min(l, l') + min(r, r')`` and its height
    ``min(t, t') + min(b, b')``, each at least 0 (FCOS's IoU loss). The union is
    ``area + area' - intersection``, a predicted side pair that crosses
    (``l' + r' < 0``) counting as width 0. It scores the overlap that the
    metrics score, where L1 treats a pixel on a thin digit like one on a wide one.

    Args:
        y_true (float[..., 5]): the mask (weight) of each cell, then (l, t, r, b).
        y_pred (float[..., 4]): (l, t, r, b).

    Returns:
        A scalar: ``sum(mask * (1 - IoU)) / max(sum(mask), 1)``; 0 when nothing is masked in.
    """
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    inter_w = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    inter_h = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = inter_w * inter_h
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


@_register
def masked_iou_loss(y_true, y_pred):
    """``iou_loss`` under its former name, so that models saved with it still load."""
    return iou_loss(y_true, y_pred)


@_register
def box_loss(y_true, y_pred):
    """The reference models' box loss: ``masked_box_loss + iou_loss``."""
    return masked_box_loss(y_true, y_pred) + iou_loss(y_true, y_pred)


@_register
def masked_class_loss(y_true, y_pred):
    """Cross-entropy over the masked entries only.

    Args:
        y_true (float[..., 1 + K]): mask, then one-hot class.
        y_pred (float[..., K]): class probabilities.

    Returns:
        A scalar, 0 when nothing is masked in.
    """
    mask = y_true[..., 0]
    ce = -ops.sum(y_true[..., 1:] * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)
    return ops.sum(mask * ce) / ops.maximum(ops.sum(mask), 1.0)


@_register
def focal_loss(y_true, y_pred, alpha: float = 2.0, beta: float = 4.0):
    """CenterNet's penalty-reduced focal loss on the presence heatmap, normalised by the number of centres.

    With ``p`` the predicted probability (clipped to [1e-6, 1 - 1e-6]) and ``y``
    the target (``targets.heatmap_targets``): a centre cell (``y == 1``) costs
    ``-(1 - p)^alpha log(p)``; any other cell ``-(1 - y)^beta p^alpha log(1 - p)``,
    so cells near a centre (``y`` close to 1) are forgiven for scoring high.
    The sum over all cells is divided by the number of centres (at least 1).

    Args:
        y_true (float[B, H, W, 1]): 1 at centres, a Gaussian bump around them, 0 elsewhere.
        y_pred (float[B, H, W, 1]): probabilities, the same shape.
        alpha: focusing power: well-predicted cells count less.
        beta: how much cells near a centre are forgiven for scoring high.

    Returns:
        A scalar.
    """
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(y_true >= 1.0, p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


@_register
def heatmap_loss(y_true, y_pred, alpha: float = 2.0, beta: float = 4.0):
    """``focal_loss`` under its former name, so that models saved with it still load."""
    return focal_loss(y_true, y_pred, alpha, beta)


LOSSES = {"presence": focal_loss, "box": box_loss, "class": masked_class_loss,
          "count": keras.losses.CategoricalCrossentropy()}
"""The loss of each named output."""

LOSS_WEIGHTS = {"presence": 1.0, "box": 1.0, "class": 1.0, "count": 1.0}
"""How much each output's loss counts in the total."""

CUSTOM_OBJECTS = {f.__name__: f for f in (focal_loss, heatmap_loss, box_loss, masked_box_loss, iou_loss,
                                          masked_iou_loss, masked_class_loss)}
"""What ``keras.models.load_model`` needs to read a saved model."""
