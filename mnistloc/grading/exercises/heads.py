"""Checks for the Keras exercises: the dense head (``build_head``); the masked box loss is in ``losses``.

``build_head`` is the one head exercise of the lessons (lesson 1): a 3x3 hidden convolution and a 1x1 output
convolution whose size and activation are arguments, so that one function builds the box head (linear), the
presence head (sigmoid) and the class head (softmax). The four ``build_*_head`` exercises it replaced stay
registered (``mnistloc.grading.registry.RETIRED``), so that notebooks released before keep their points.

A head check builds a tiny model around the student's head (features of a
few cells and channels), runs it, and does one training step; it compares
properties, not weights, with the reference head: what it returns, the
output's shape, what kind of values come out (probabilities summing to 1,
probabilities in (0, 1), non-negative, or unbounded), the name, the number of
parameters, and whether one gradient step lowers a loss. No full training.

Keras is imported on first use (``mnistloc.grading.exercises.base.keras``), so
importing this module stays light. Registered in ``mnistloc.grading.registry``.
"""
from __future__ import annotations

import numpy as np

from mnistloc.grading.exercises.base import LESSONS, Exercise, keras

_L1, _L2, _L3, _L4 = LESSONS[:4]


def _models():
    from mnistloc import models
    return models


def _ref(name: str):
    def reference(*args, **kwargs):
        return getattr(_models(), name)(*args, **kwargs)
    reference.__name__ = name
    return reference


# ---- running a head ------------------------------------------------------------------------------

def _kind(y: np.ndarray) -> str:
    """What kind of values a head gives, judged on inputs large enough to show it."""
    if not np.all(np.isfinite(y)):
        return "not finite (NaN or inf)"
    if y.min() >= 0 and y.max() <= 1:
        if y.shape[-1] == 1 and np.allclose(y, 1):
            return "all ones"
        if y.shape[-1] > 1 and np.allclose(y.sum(-1), 1, atol=1e-4):
            return "probabilities summing to 1 over the last axis"
        return "probabilities in [0, 1]"
    if y.min() >= 0:
        return "non-negative, unbounded above"
    return "unbounded (any sign)"


def _one_step(model, features: np.ndarray, target: np.ndarray) -> bool:
    """Whether one SGD step on the mean squared error to ``target`` (the output's shape) lowers it."""
    import tensorflow as tf

    x = tf.constant(features)
    def loss():
        return tf.reduce_mean(tf.square(model(x, training=True) - target))
    if not model.trainable_variables:
        return False
    with tf.GradientTape() as tape:
        before = loss()
    grads = tape.gradient(before, model.trainable_variables)
    if any(g is None for g in grads):
        return False
    for v, g in zip(model.trainable_variables, grads):
        v.assign_sub(0.05 * g)
    return bool(loss() < before)


def _run_head(func, case):
    keras.utils.set_random_seed(case["seed"])
    head = func(**case["kwargs"])
    if not isinstance(head, keras.Model):
        return {"returns": type(head).__name__}
    features = case["features"]
    inputs = keras.Input(shape=(None, None, features.shape[-1]))
    model = keras.Model(inputs, head(inputs))
    y = np.asarray(model(features))
    props = {"returns": "keras.Model", "output shape": str(tuple(y.shape)), "output values": _kind(y),
             "parameters": int(head.count_params()),
             "one training step lowers the loss": _one_step(model, features, np.full(y.shape, case["target"], np.float32))}
    if "name" in case["kwargs"]:
        props["has the name asked for"] = head.name == case["kwargs"]["name"]
    return props


def _head_case(rng, kwargs: dict, grid: tuple, note: str) -> dict:
    c = kwargs["channels"]
    features = (rng.normal(size=(2, *grid, c)) * 4).astype(np.float32)  # large enough to show the activation
    return {"kwargs": kwargs, "features": features, "target": float(rng.uniform(0.2, 0.8)),
            "seed": int(rng.integers(1 << 30)),
            "note": f"{note}, on features of shape {features.shape}"}


def _cases(extra: dict):
    """Fixed and random cases for one head; ``extra`` holds its own size arguments (fixed values)."""
    def fixed():
        rng = np.random.default_rng(7)
        kws = [{"channels": 8, "hidden": 8}, {"channels": 16, "hidden": 4, "name": "my_head", **extra}]
        return [_head_case(rng, kw, g, f"{kw}") for kw, g in zip(kws, [(4, 4), (3, 5)])]

    def random(rng):
        out = []
        for _ in range(2):
            kw = {"channels": int(rng.integers(2, 12)), "hidden": int(rng.integers(2, 12))}
            kw.update({k: int(rng.integers(2, 7)) for k in extra})
            out.append(_head_case(rng, kw, tuple(int(v) for v in rng.integers(2, 7, size=2)), f"{kw}"))
        return out
    return fixed, random


def _conv_head(out: int, activation=None, *, hidden_filters=None, kernel=3, padding="same",
               use_name=True, out_activation_layer=None):
    """A head builder with one deliberate difference from the reference (for the mistakes list)."""
    def build(channels=64, hidden=64, name="head", **_):
        f = keras.Input(shape=(None, None, channels))
        x = keras.layers.Conv2D(hidden_filters or hidden, kernel, padding=padding, activation="relu")(f)
        n = out(_) if callable(out) else out
        y = keras.layers.Conv2D(n, 1, activation=activation)(x)
        if out_activation_layer:
            y = out_activation_layer()(y)
        return keras.Model(f, y, name=name if use_name else None)
    return build


def _count_head(*, pool=True, units=lambda m: m + 1, activation="softmax", hidden_filters=None):
    def build(channels=64, hidden=32, max_count=2, name="count"):
        f = keras.Input(shape=(None, None, channels))
        x = keras.layers.Conv2D(hidden_filters or hidden, 1, activation="relu")(f)
        if pool:
            x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(f, keras.layers.Dense(units(max_count), activation=activation)(x), name=name)
    return build


_HIDDEN = "use the `hidden` argument for the hidden layer's filters, not a fixed number."
_SAME = "the hidden 3x3 convolution needs padding='same' so that the grid keeps its size."
_NAME = "pass `name=name` to keras.Model so that the head (and the model's output) has the name asked for."
_NCLS = lambda kw: kw.get("num_classes", 10)  # noqa: E731


def _head(name, lesson, points, extra, mistakes):
    fixed, random = _cases(extra)
    return Exercise(name=name, lesson=lesson, points=points, reference=_ref(name), fixed=fixed, random=random,
                    run=_run_head,
                    describe=lambda case: case["note"], mistakes=tuple(mistakes), keras=True)


# ---- the one head exercise ------------------------------------------------------------------------

def _build_head(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """The reference: features (B, H, W, channels) -> 3x3 Conv2D(hidden, relu, same) -> 1x1 Conv2D(outputs,
    activation) -> (B, H, W, outputs), named ``name`` (as ``mnistloc.models``' heads, without their options)."""
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    return keras.Model(features, keras.layers.Conv2D(outputs, 1, activation=activation)(x), name=name)


_build_head.__name__ = "build_head"


def _head_variant(*, hidden_filters=None, kernel=3, padding="same", use_name=True, fixed_outputs=None,
                  use_activation=True, hidden_activation="relu", hidden_layer=True, out_kernel=1):
    """``build_head`` with one deliberate difference from the reference (for the mistakes list)."""
    def build_head(channels=64, hidden=64, outputs=4, activation=None, name="head"):
        f = keras.Input(shape=(None, None, channels))
        x = f
        if hidden_layer:
            x = keras.layers.Conv2D(hidden_filters or hidden, kernel, padding=padding, activation=hidden_activation)(f)
        y = keras.layers.Conv2D(fixed_outputs or outputs, out_kernel, padding="same",
                                activation=activation if use_activation else None)(x)
        return keras.Model(f, y, name=name if use_name else None)
    return build_head


_HEAD_KWARGS = [({"channels": 8, "hidden": 8, "outputs": 4, "activation": None, "name": "box"}, (4, 4),
                 "the box head"),
                ({"channels": 16, "hidden": 4, "outputs": 1, "activation": "sigmoid", "name": "presence"}, (3, 5),
                 "the presence head"),
                ({"channels": 6, "hidden": 5, "outputs": 7, "activation": "softmax", "name": "my_head"}, (5, 3),
                 "a class head of 7 classes")]


def _general_fixed() -> list:
    rng = np.random.default_rng(17)
    return [_head_case(rng, kw, grid, f"{what} {kw}") for kw, grid, what in _HEAD_KWARGS]


def _general_random(rng) -> list:
    out = []
    for _ in range(3):
        activation = [None, "sigmoid", "softmax"][int(rng.integers(3))]
        kw = {"channels": int(rng.integers(2, 12)), "hidden": int(rng.integers(2, 12)),
              "outputs": int(rng.integers(2, 11)) if activation == "softmax" else int(rng.integers(1, 6)),
              "activation": activation, "name": f"head_{int(rng.integers(100))}"}
        out.append(_head_case(rng, kw, tuple(int(v) for v in rng.integers(2, 7, size=2)), f"{kw}"))
    return out


EXERCISES = [
    Exercise(name="build_head", lesson=_L1, points=4, reference=_build_head, fixed=_general_fixed,
             random=_general_random, run=_run_head, describe=lambda case: case["note"], keras=True, mistakes=(
                 ("end with the `activation` asked for: Conv2D(outputs, 1, activation=activation) (None: linear "
                  "distances, 'sigmoid': a probability, 'softmax': class probabilities).",
                  _head_variant(use_activation=False)),
                 ("the last layer has `outputs` filters, one per number the head predicts, not a fixed 4.",
                  _head_variant(fixed_outputs=4)),
                 (_HIDDEN, _head_variant(hidden_filters=64)),
                 (_SAME, _head_variant(padding="valid")),
                 ("the hidden layer is a 3x3 convolution (kernel_size=3), so each cell sees its neighbours.",
                  _head_variant(kernel=1)),
                 ("the two kernel sizes are swapped: the hidden layer is the 3x3 convolution (each cell sees its "
                  "neighbours) and the output layer the 1x1 one (each cell's own hidden features give its numbers), "
                  "not a 1x1 hidden layer and a 3x3 output layer.", _head_variant(kernel=1, out_kernel=3)),
                 ("the hidden 3x3 convolution has activation='relu': without it the two convolutions are one "
                  "linear map.", _head_variant(hidden_activation=None)),
                 ("first a hidden 3x3 convolution with `hidden` filters and ReLU, then the 1x1 output layer.",
                  _head_variant(hidden_layer=False)),
                 (_NAME, _head_variant(use_name=False)),
             )),
    _head("build_box_head", _L1, 3, {}, [
        ("the box head is linear: no activation on its last layer (distances have any size and sign).",
         _conv_head(4, "relu")),
        ("the box head is linear: no activation on its last layer (a sigmoid squeezes distances into (0, 1)).",
         _conv_head(4, "sigmoid")),
        (_HIDDEN, _conv_head(4, hidden_filters=64)),
        (_SAME, _conv_head(4, padding="valid")),
        ("the hidden layer is a 3x3 convolution (kernel_size=3), so each cell sees its neighbours.",
         _conv_head(4, kernel=1)),
        (_NAME, _conv_head(4, use_name=False)),
    ]),
    _head("build_presence_head", _L2, 3, {}, [
        ("logits instead of probabilities: end with activation='sigmoid' so presence lies in (0, 1).",
         _conv_head(1)),
        ("a softmax over a single channel is always 1: use a sigmoid for a yes/no probability.",
         _conv_head(1, "softmax")),
        (_HIDDEN, _conv_head(1, "sigmoid", hidden_filters=64)),
        (_SAME, _conv_head(1, "sigmoid", padding="valid")),
        ("presence is one probability per cell: the last layer has 1 filter.", _conv_head(2, "sigmoid")),
        (_NAME, _conv_head(1, "sigmoid", use_name=False)),
    ]),
    _head("build_class_head", _L3, 3, {"num_classes": 5}, [
        ("class probabilities come from a softmax over the last axis (they sum to 1), not a sigmoid.",
         _conv_head(_NCLS, "sigmoid")),
        ("logits instead of probabilities: end with activation='softmax'.", _conv_head(_NCLS)),
        ("use the `num_classes` argument for the last layer's filters, not a fixed 10.", _conv_head(10, "softmax")),
        (_HIDDEN, _conv_head(_NCLS, "softmax", hidden_filters=64)),
        (_SAME, _conv_head(_NCLS, "softmax", padding="valid")),
    ]),
    _head("build_count_head", _L4, 3, {"max_count": 3}, [
        ("the count is one answer per canvas: average over the grid (GlobalAveragePooling2D) before the Dense "
         "layer.", _count_head(pool=False)),
        ("counts 0, 1, ..., max_count are max_count + 1 classes: the Dense layer needs max_count + 1 units.",
         _count_head(units=lambda m: m)),
        ("the counts exclude each other: use a softmax, not a sigmoid.", _count_head(activation="sigmoid")),
        ("logits instead of probabilities: end with activation='softmax'.", _count_head(activation=None)),
        (_HIDDEN, _count_head(hidden_filters=32)),
    ]),
]
