"""Keras models for the four cases: a backbone, four small heads, the losses.

The design (one for all four cases) is a small fully convolutional,
CenterNet-style detector at stride 8:

    canvas (B, 128, 128) --backbone--> features (B, 16, 16, C)
    features --presence head--> presence (B, 16, 16, 1)   is a digit's centre in this cell?
    features --box head-------> box      (B, 16, 16, 4)   (left, top, right, bottom) distances
                                                          from the cell's centre to the box's sides
    features --class head-----> class    (B, 16, 16, 10)  the digit's class, read at its centre
    features --count head-----> count    (B, 3)           0, 1 or 2 digits on the canvas

Why this works where "Flatten + Dense(4)" does not: a digit looks the same
wherever it lies, and a convolution answers the same question in every cell
with the same weights, so each position is learned from every training
canvas instead of only from the canvases with a digit there. Each cell only
has to find a box side within a few pixels of itself (one 8x8 cell, plus the
digit's half-size), which a small receptive field does precisely, and one
model serves one digit, none, or two: ``mnistloc.decoding`` reads the boxes at
the presence peaks. The dense flatten model must instead map every position
of the canvas to four coordinates through one big weight matrix.

Targets per cell come from ``mnistloc.decoding.encode_targets``; the losses
take a mask as the first channel of ``y_true``, so cells (and canvases) with no
digit give no box or class loss.

Keras and TensorFlow are imported when this module is, not when ``mnistloc``
is.
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from mnistloc.canvas import CASES, NUM_CLASSES, SLOTS  # noqa: E402,F401  (re-exported)
from mnistloc.decoding import STRIDE, decode, detections, encode_targets  # noqa: E402,F401  (re-exported)

MAX_COUNT = SLOTS  # the largest count a model predicts: one digit a slot
OUTPUTS = {1: ("presence", "box"), 2: ("presence", "box"),
           3: ("presence", "box", "class"), 4: ("presence", "box", "class", "count"),
           5: ("presence", "box", "class")}
"""The named outputs of each case's model."""


# ---- backbone ---------------------------------------------------------------------------------

def _conv(x, filters: int, stride: int = 1, name: str | None = None):
    """3x3 convolution and ReLU.

    No batch normalisation: in this small network it slowed a step by about
    a third and its moving statistics lagged the batch statistics, so the
    model scored far worse in inference than in training.
    """
    return layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu", name=name)(x)


def build_backbone(size: int = 128, widths=(16, 32, 64), name: str = "backbone") -> keras.Model:
    """Canvases to a grid of features, one cell per 8x8 pixels.

    Three stages, each halving the resolution (stride 2) and then looking
    around again (stride 1), and one more 3x3 layer at the end, so a cell sees
    about 100 pixels: more than three digits' widths.

    Args:
        size: canvas side in pixels, a multiple of 8.
        widths: channels of the three stages.
        name: the model's name.

    Returns:
        keras.Model: float (B, size, size) pixels in [0, 255] ->
        float32 (B, size / 8, size / 8, widths[-1]).
    """
    if size % STRIDE:
        raise ValueError(f"`size` should be a multiple of {STRIDE}. Got size={size}.")
    if len(widths) != 3:
        raise ValueError(f"`widths` should give three stages' channels. Got widths={widths!r}.")
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(images)
    x = layers.Rescaling(1 / 255)(x)
    for i, w in enumerate(widths):
        x = _conv(x, w, stride=2, name=f"stage{i + 1}_down")
        x = _conv(x, w, name=f"stage{i + 1}")
    x = _conv(x, widths[-1], name="stage3_more")
    return keras.Model(images, x, name=name)


# ---- heads: each maps features (B, H, W, C) to one output -------------------------------------

def build_presence_head(channels: int = 64, hidden: int = 64, prior: float = 0.1,
                        name: str = "presence") -> keras.Model:
    """Per cell: the probability that a digit's centre lies in it (the centre heatmap).

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        prior: the starting probability everywhere (the output bias is set
            to ``log(prior / (1 - prior))``): most cells hold no centre, so
            starting low keeps the first steps from being spent learning that.
        name: the model's name.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, 1), sigmoid.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    bias = keras.initializers.Constant(math.log(prior / (1 - prior)))
    out = layers.Conv2D(1, 1, activation="sigmoid", bias_initializer=bias)(x)
    return keras.Model(features, out, name=name)


def build_box_head(channels: int = 64, hidden: int = 64, name: str = "box") -> keras.Model:
    """Per cell: distances (left, top, right, bottom) from the cell's centre to a box's sides.

    In cells (multiples of 8 pixels), signed and unbounded (linear output),
    so a cell next to a thin digit can say "the box ends before my centre".

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        name: the model's name.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, 4), linear.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = layers.Conv2D(4, 1)(x)
    return keras.Model(features, out, name=name)


def build_class_head(channels: int = 64, hidden: int = 64, num_classes: int = NUM_CLASSES,
                     name: str = "class") -> keras.Model:
    """Per cell: the class of the digit centred there.

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        num_classes: the number of classes.
        name: the model's name.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, num_classes), softmax over the last axis.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = layers.Conv2D(num_classes, 1, activation="softmax")(x)
    return keras.Model(features, out, name=name)


def build_count_head(channels: int = 64, hidden: int = 32, max_count: int = MAX_COUNT,
                     name: str = "count") -> keras.Model:
    """The number of digits on the canvas, 0 to ``max_count``.

    A 1x1 layer marks digit-like cells; averaging over the grid measures how
    much digit there is, whatever the grid's size; a softmax reads the count.

    Args:
        channels: C, the feature channels.
        hidden: channels of the 1x1 layer.
        max_count: the largest count.
        name: the model's name.

    Returns:
        keras.Model: (B, H, W, C) -> (B, max_count + 1), softmax.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 1, activation="relu")(features)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(max_count + 1, activation="softmax")(x)
    return keras.Model(features, out, name=name)


_HEADS = {"presence": build_presence_head, "box": build_box_head,
          "class": build_class_head, "count": build_count_head}


# ---- one model per case -----------------------------------------------------------------------

def _build(case: int, size: int, widths, hidden: int) -> keras.Model:
    backbone = build_backbone(size, widths)
    features = backbone.output
    outputs = {name: layers.Identity(name=name)(_HEADS[name](widths[-1], hidden, name=name + "_head")(features))
               for name in OUTPUTS[case]}
    return keras.Model(backbone.input, outputs, name=f"case{case}")


def build_case1_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """Case 1 (one digit of one class): outputs ``presence`` and ``box``.

    Args:
        size: canvas side in pixels.
        widths: the backbone's stage channels.
        hidden: channels of each head's hidden layer.

    Returns:
        keras.Model: ``image`` (B, size, size) -> {``presence`` (B, S, S, 1),
        ``box`` (B, S, S, 4)}, S = size / 8.
    """
    return _build(1, size, widths, hidden)


def build_case2_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """Case 2 (none, one or two digits): outputs ``presence`` and ``box``.

    The model finds each digit; ``decoding.decode`` says "present" when any
    centre scores >= 0.5 and returns the union of the found boxes. Learning
    each digit's box is easier than learning the union box directly (the
    union's sides belong to different digits, far apart), and its box loss is
    masked: cells without a centre, so empty canvases, give none.

    Returns:
        keras.Model: as ``build_case1_model``.
    """
    return _build(2, size, widths, hidden)


def build_case3_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """Case 3 (one digit, any class): outputs ``presence``, ``box`` and ``class``.

    Returns:
        keras.Model: as ``build_case1_model`` plus ``class`` (B, S, S, 10).
    """
    return _build(3, size, widths, hidden)


def build_case4_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """Case 4 (none, one or two digits with classes): all four heads.

    A dense head with decoding rather than two ordered slots: a slot model
    must learn "the leftmost digit" as one regression over the whole canvas,
    and a small shift of one digit swaps the slots' targets; here every digit
    is found where it is, and ``decoding.decode`` orders the found digits left
    to right afterwards. The count head gives the count; detections for AP
    come from the presence peaks, scored by presence times class probability.

    Returns:
        keras.Model: as ``build_case3_model`` plus ``count`` (B, 3).
    """
    return _build(4, size, widths, hidden)


def build_case5_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """Case 5 (any number of digits at any size): ``presence``, ``box`` and ``class``, no count head.

    The count is the number of presence peaks (``mnistloc.dense.detect``), so
    no head limits it; the targets' centre bumps grow with the digit
    (``mnistloc.dense.encode_targets``).

    Returns:
        keras.Model: as ``build_case3_model``.
    """
    return _build(5, size, widths, hidden)


def build_model(case: int, **sizes) -> keras.Model:
    """The model of ``case`` (1 to 5); ``sizes`` go to its builder."""
    if case not in CASES:
        raise ValueError(f"`case` should be one of {CASES}. Got case={case!r}.")
    if case == 5:
        return build_case5_model(**sizes)
    return (build_case1_model, build_case2_model, build_case3_model, build_case4_model)[case - 1](**sizes)


# ---- losses: y_true carries the mask in its first channel -------------------------------------

@keras.saving.register_keras_serializable(package="mnistloc")
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


@keras.saving.register_keras_serializable(package="mnistloc")
def masked_iou_loss(y_true, y_pred):
    """``1 - IoU`` between (left, top, right, bottom) boxes of the same cell, over masked cells.

    Both boxes are measured from the same point, so the intersection's width
    is ``min(l, l') + min(r, r')`` (FCOS's IoU loss). It scores the overlap the
    metrics score, where L1 treats a pixel on a thin digit like one on a wide one.

    Args:
        y_true (float[..., 5]): mask, then (l, t, r, b).
        y_pred (float[..., 4]): (l, t, r, b).

    Returns:
        A scalar, 0 when nothing is masked in.
    """
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    inter_w = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    inter_h = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = inter_w * inter_h
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="mnistloc")
def box_loss(y_true, y_pred):
    """The reference models' box loss: ``masked_box_loss + masked_iou_loss``."""
    return masked_box_loss(y_true, y_pred) + masked_iou_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="mnistloc")
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


@keras.saving.register_keras_serializable(package="mnistloc")
def heatmap_loss(y_true, y_pred, alpha: float = 2.0, beta: float = 4.0):
    """CenterNet's focal loss for the presence map, normalised by the number of centres.

    Args:
        y_true (float[B, H, W, 1]): 1 at centres, a Gaussian bump around them, 0 elsewhere.
        y_pred (float[B, H, W, 1]): probabilities.
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


LOSSES = {"presence": heatmap_loss, "box": box_loss, "class": masked_class_loss,
          "count": keras.losses.CategoricalCrossentropy()}
"""The loss of each named output."""

CUSTOM_OBJECTS = {f.__name__: f for f in (heatmap_loss, box_loss, masked_box_loss, masked_iou_loss,
                                          masked_class_loss)}
"""What ``keras.models.load_model`` needs to read a saved model."""


LOSS_WEIGHTS = {"presence": 1.0, "box": 1.0, "class": 1.0, "count": 1.0}
"""How much each output's loss counts in the total."""


def compile_model(model: keras.Model, learning_rate: float = 2e-3, loss_weights: dict | None = None) -> keras.Model:
    """Compiles ``model`` with Adam and the loss of each of its outputs; returns it.

    Args:
        model: a case model.
        learning_rate: Adam's learning rate.
        loss_weights: overrides of ``LOSS_WEIGHTS`` by output name.
    """
    names = model.output_names
    weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss={name: LOSSES[name] for name in names},
                  loss_weights={name: weights[name] for name in names})
    return model
