"""Keras models for the five cases: a backbone, four small heads; and the seed's classic model.

The design (one for all five cases) is a small fully convolutional,
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
model serves one digit, none, or two: ``mnistloc.decoder`` reads the boxes at
the presence peaks. The dense flatten model must instead map every position
of the canvas to four coordinates through one big weight matrix.

Targets per cell come from ``mnistloc.targets.encode_targets``; the losses (``mnistloc.losses``)
take a mask as the first channel of ``y_true``, so cells (and canvases) with no digit give no box or class
loss. Importing this module imports Keras and TensorFlow (quietly: see ``mnistloc/__init__.py``).
"""
from __future__ import annotations

import math

import keras  # noqa: E402
from keras import layers  # noqa: E402
import numpy as np  # noqa: E402

from mnistloc import cases  # noqa: E402
from mnistloc.canvas import NUM_CLASSES  # noqa: E402
from mnistloc.targets import STRIDE  # noqa: E402
from mnistloc.losses import LOSS_WEIGHTS, LOSSES, masked_box_loss, masked_class_loss  # noqa: E402

MAX_COUNT = cases.SLOTS  # the largest count a count head predicts: one digit a slot
OUTPUTS = {n: c.outputs for n, c in cases.CASES.items()}
"""The named outputs of each case's detector (``cases.Case.outputs``)."""


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
                        name: str = "presence", output_dtype: str | None = None) -> keras.Model:
    """Per cell: the probability that a digit's centre lies in it (the centre heatmap).

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        prior: the starting probability everywhere (the output bias is set
            to ``log(prior / (1 - prior))``): most cells hold no centre, so
            starting low keeps the first steps from being spent learning that.
        name: the model's name.
        output_dtype: dtype policy of the output layer (e.g. float32 under a mixed policy); None: global.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, 1), sigmoid.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    bias = keras.initializers.Constant(math.log(prior / (1 - prior)))
    out = layers.Conv2D(1, 1, activation="sigmoid", bias_initializer=bias, dtype=output_dtype)(x)
    return keras.Model(features, out, name=name)


def build_box_head(channels: int = 64, hidden: int = 64, name: str = "box",
                   output_dtype: str | None = None) -> keras.Model:
    """Per cell: distances (left, top, right, bottom) from the cell's centre to a box's sides.

    In cells (multiples of 8 pixels), signed and unbounded (linear output),
    so a cell next to a thin digit can say "the box ends before my centre".

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        name: the model's name.
        output_dtype: dtype policy of the output layer (e.g. float32 under a mixed policy); None: global.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, 4), linear.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = layers.Conv2D(4, 1, dtype=output_dtype)(x)
    return keras.Model(features, out, name=name)


def build_class_head(channels: int = 64, hidden: int = 64, num_classes: int = NUM_CLASSES,
                     name: str = "class", output_dtype: str | None = None) -> keras.Model:
    """Per cell: the class of the digit centred there.

    Args:
        channels: C, the feature channels.
        hidden: channels of the hidden 3x3 layer.
        num_classes: the number of classes.
        name: the model's name.
        output_dtype: dtype policy of the output layer (e.g. float32 under a mixed policy); None: global.

    Returns:
        keras.Model: (B, H, W, C) -> (B, H, W, num_classes), softmax over the last axis.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = layers.Conv2D(num_classes, 1, activation="softmax", dtype=output_dtype)(x)
    return keras.Model(features, out, name=name)


def build_count_head(channels: int = 64, hidden: int = 32, max_count: int = MAX_COUNT,
                     name: str = "count", output_dtype: str | None = None) -> keras.Model:
    """The number of digits on the canvas, 0 to ``max_count``.

    A 1x1 layer marks digit-like cells; averaging over the grid measures how
    much digit there is, whatever the grid's size; a softmax reads the count.

    Args:
        channels: C, the feature channels.
        hidden: channels of the 1x1 layer.
        max_count: the largest count.
        name: the model's name.
        output_dtype: dtype policy of the output layer (e.g. float32 under a mixed policy); None: global.

    Returns:
        keras.Model: (B, H, W, C) -> (B, max_count + 1), softmax.
    """
    features = keras.Input(shape=(None, None, channels))
    x = layers.Conv2D(hidden, 1, activation="relu")(features)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(max_count + 1, activation="softmax", dtype=output_dtype)(x)
    return keras.Model(features, out, name=name)


_HEADS = {"presence": build_presence_head, "box": build_box_head,
          "class": build_class_head, "count": build_count_head}


# ---- one model per case -----------------------------------------------------------------------

def _build(case: int, size: int, widths, hidden: int) -> keras.Model:
    backbone = build_backbone(size, widths)
    features = backbone.output
    heads = {name: _HEADS[name](widths[-1], hidden, name=name + "_head", output_dtype="float32")(features)
             for name in OUTPUTS[case]}
    outputs = {name: layers.Identity(name=name, dtype="float32")(head) for name, head in heads.items()}
    return keras.Model(backbone.input, outputs, name=f"case{case}")


def build_model(case: int, size: int = 128, widths=(16, 32, 64), hidden: int = 64) -> keras.Model:
    """The detector of ``case``: the backbone and one head per output of ``cases.get(case).outputs``.

    Every case's detector has ``presence`` and ``box``; cases that label digits
    add ``class``, and case 4 a ``count`` head. Each digit is found where it is
    and ``mnistloc.decoder`` reads the boxes at the presence peaks (case 2's
    "present" is any centre scoring >= 0.5, its box the union of the found
    ones; case 4's slots are the count head's best peaks, left to right; case 5
    counts the peaks NMS keeps). Outputs are float32 under any dtype policy.

    Args:
        case: 1 to 5.
        size: canvas side in pixels.
        widths: the backbone's stage channels.
        hidden: channels of each head's hidden layer.

    Returns:
        keras.Model named ``case<N>``: ``image`` (B, size, size) -> {``presence`` (B, S, S, 1),
        ``box`` (B, S, S, 4), ``class`` (B, S, S, 10), ``count`` (B, 3)}, S = size / 8, as the case has them.
    """
    return _build(cases.get(case).number, size, widths, hidden)


def model_case(model: keras.Model) -> int | None:
    """The case a model was built for (from its name ``case<N>``), or None."""
    name = getattr(model, "name", "")
    return int(name[4:]) if name.startswith("case") and name[4:] in tuple(map(str, cases.ALL_CASES)) else None


def check_case(model: keras.Model, case: int) -> None:
    """Raises ValueError unless ``model`` has the outputs of ``case``'s model."""
    cases.get(case)
    names, built = sorted(getattr(model, "output_names", ()) or ()), model_case(model)
    if built not in (None, case):  # the same output names can serve two cases (3 and 5): the builder's name says
        raise ValueError(f"This model was built for case {built}, not case {case}: pass --case {built}.")
    if set(names) != set(OUTPUTS[case]):
        raise ValueError(f"This model does not fit case {case}: its outputs are {names}, not {sorted(OUTPUTS[case])}.")


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


# ---- the classic model: Conv, Flatten, Dense heads --------------------------------------------

CLASSIC_OUTPUTS = {n: cases.get(n).classic_outputs for n in cases.with_classic_model()}
"""The named outputs of each case's classic model (``cases.Case.classic_outputs``)."""


def classic_model(case: int, *, size: int = 128, filters=(16, 32, 64), units: int = 128,
                  box: str = "sigmoid") -> keras.Model:
    """The seed's classic model of ``case``: convolutions, Flatten, one hidden Dense layer, a Dense head per label.

    ``image`` (B, size, size) -> ``Rescaling(1/255)`` -> three blocks of ``Conv2D(f, 3, relu)`` (valid
    padding) and ``AveragePooling2D(2)`` (layers ``conv1..3``, ``pool1..3``) -> ``Flatten`` ->
    ``Dense(units, relu)`` (``hidden``) -> the heads, each a Dense layer named after its output:

    - ``presence`` Dense(1, sigmoid): is there a digit (cases 1, 2);
    - ``box`` Dense(4, sigmoid): the box (case 2: the union box) in ``rel_xyxy`` (cases 1 to 3);
    - ``class`` Dense(10, softmax) (case 3); ``count`` Dense(3, softmax) (case 4);
    - ``boxes`` Dense(8, sigmoid) reshaped to (2, 4) and ``classes`` Dense(20) reshaped to (2, 10) with a softmax
      over the last axis: two slots, left to right (case 4; Dense layers ``boxes_dense``, ``classes_dense``).

    Args:
        case: a case with a classic model (``cases.with_classic_model()``).
        size: canvas side in pixels (at least 32).
        filters: the three convolutions' filters.
        units: the hidden Dense layer's units.
        box: ``"sigmoid"`` box outputs (every ``rel_xyxy`` is in [0, 1]) or ``"linear"`` (the classic lab's).

    Returns:
        keras.Model named ``classic<case>``, outputs keyed by ``CLASSIC_OUTPUTS[case]``, shaped like the
        arrays of ``classic_targets`` (without their mask channels).
    """
    if case not in CLASSIC_OUTPUTS:
        raise ValueError(f"`case` should be one of {tuple(CLASSIC_OUTPUTS)}. Got case={case!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"`size` should be a whole number >= 32. Got size={size!r}.")
    if len(filters) != 3:
        raise ValueError(f"`filters` should give the three convolutions' filters. Got filters={filters!r}.")
    if box not in ("sigmoid", "linear"):
        raise ValueError(f"`box` should be 'sigmoid' or 'linear'. Got box={box!r}.")
    squash = None if box == "linear" else "sigmoid"
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, activation="relu", name=f"conv{i + 1}")(x)
        x = layers.AveragePooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.Dense(units, activation="relu", name="hidden")(layers.Flatten()(x))
    heads = {"presence": lambda: layers.Dense(1, activation="sigmoid", name="presence")(x),
             "box": lambda: layers.Dense(4, activation=squash, name="box")(x),
             "class": lambda: layers.Dense(NUM_CLASSES, activation="softmax", name="class")(x),
             "count": lambda: layers.Dense(MAX_COUNT + 1, activation="softmax", name="count")(x),
             "boxes": lambda: layers.Reshape((MAX_COUNT, 4), name="boxes")(
                 layers.Dense(MAX_COUNT * 4, activation=squash, name="boxes_dense")(x)),
             "classes": lambda: layers.Softmax(name="classes")(layers.Reshape((MAX_COUNT, NUM_CLASSES))(
                 layers.Dense(MAX_COUNT * NUM_CLASSES, name="classes_dense")(x)))}
    return keras.Model(images, {name: heads[name]() for name in CLASSIC_OUTPUTS[case]}, name=f"classic{case}")


CLASSIC_LOSSES = {"presence": "binary_crossentropy", "box": "mean_absolute_error", "class": "categorical_crossentropy",
                  "count": "categorical_crossentropy", "boxes": masked_box_loss, "classes": masked_class_loss}
"""The classic model's loss of each output; case 2's ``box`` is masked (``masked_box_loss``)."""


def compile_classic(model: keras.Model, case: int, *, learning_rate: float = 1e-3,
                    loss_weights: dict | None = None) -> keras.Model:
    """Compiles a classic model with Adam, one loss per named output and their weights; returns it.

    Args:
        model: ``classic_model(case)``.
        case: its case: case 2's union box gets the masked box loss (no box on an empty canvas).
        learning_rate: Adam's learning rate.
        loss_weights: weight of each output's loss by name (default 1 each).
    """
    if case not in CLASSIC_OUTPUTS:
        raise ValueError(f"`case` should be one of {tuple(CLASSIC_OUTPUTS)}. Got case={case!r}.")
    names = tuple(model.output_names)
    if set(names) != set(CLASSIC_OUTPUTS[case]):
        raise ValueError(f"`model` should have the outputs {CLASSIC_OUTPUTS[case]} of case {case}'s classic model. "
                         f"Got {names}.")
    union = cases.get(case).box_kind == "union"  # no box on an empty canvas
    losses = {name: masked_box_loss if union and name == "box" else CLASSIC_LOSSES[name] for name in names}
    weights = {name: float((loss_weights or {}).get(name, 1.0)) for name in names}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights)
    return model


def classic_targets(ds) -> dict:
    """What a classic model trains on, by output name: ``ds.targets()``, with mask channels where masked.

    A union box (case 2) ``box`` (n, 5) is (presence, box): no box loss on an empty canvas. Slots
    (case 4) ``boxes`` (n, 2, 5) and ``classes`` (n, 2, 11) start with the slot's mask. Boxes in
    ``rel_xyxy``, all float32.
    """
    t = ds.targets()
    spec = cases.get(ds.case)
    out = {name: t[name] for name in spec.classic_outputs}
    if spec.box_kind == "union":
        out["box"] = np.concatenate([t["presence"], t["box"]], axis=-1)
    for name in ("boxes", "classes"):
        if name in out:
            out[name] = np.concatenate([t["mask"][..., None], t[name]], axis=-1)
    return out


def __getattr__(name: str):
    """A name retired from this module (``build_case5_model``), for notebooks released before it went
    (``mnistloc.retired.NAMES``); anything else is an AttributeError."""
    import mnistloc.retired as retired  # not `from mnistloc import`: that asks this __getattr__ first

    return retired.attribute(__name__, name)
