"""Check for the classic model exercise: ``classic_model(*, size, filters, units)``, case 1's model (the only
one a later cell uses: lesson 1 trains it and measures where it stalls).

The student's model and the reference (``mnistloc.models.classic_model``) are
judged by what they compute, never by a parameter count. Each model's weights
are set by one rule that depends only on a weight's shape (a seeded normal
draw per shape), so two models with the reference's structure get the same
weights, layer by layer, however their code is written; both then run on the
same canvases and their outputs must agree. When the student's weights have
other shapes (a structure of their own, e.g. ``padding="same"``), the
outputs cannot be compared and the model is judged by properties that a
functionally different model fails: output names and shapes, the kind of
values each output gives, whether the outputs depend on the image, whether
the convolutions and the hidden layer take their sizes from ``filters`` and
``units``, and the spatial size after each convolution and pooling layer
(``padding="same"``, or pooling before a convolution, changes them).
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from mnistloc.grading.exercises.base import LESSONS, Exercise, keras
from mnistloc.grading.exercises.heads import _kind

L1, L2, L3, L4 = LESSONS[:4]
SAME_WEIGHTS = "outputs with the same weights as the reference"


def _reference(**kwargs):
    from mnistloc import models
    return models.classic_model(1, **kwargs)


_reference.__name__ = "classic_model"


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _set_weights_by_shape(model, seed: int) -> None:
    """Every weight gets values drawn from a generator seeded by its shape (and its rank among equal shapes)."""
    seen: dict[tuple, int] = {}
    for v in model.weights:
        shape = tuple(int(d) for d in v.shape)
        seen[shape] = seen.get(shape, -1) + 1
        rng = np.random.default_rng([seed, seen[shape], *shape])
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 10
        v.assign(rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(v.dtype))


def _spatial_sizes(layers) -> str:
    """The (height, width) after each convolution and pooling layer, in order: what padding and pooling decide."""
    kinds = (keras.layers.Conv2D, keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)
    try:
        return str([tuple(layer.output.shape[1:3]) for layer in layers if isinstance(layer, kinds)])
    except (AttributeError, ValueError):  # a layer never called in a graph (a subclassed model)
        return "unknown"


def _build_classic(func, case):
    """``func(**kwargs)``. An answer from a notebook released before lesson 1 asked for case 1's model only has
    the old signature ``classic_model(case, *, size, filters, units)`` (cases 1 to 4): it is asked for the
    check's case, so that the lesson keeps working for a student who started it."""
    try:
        takes_case = "case" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # a callable without a signature: called as the lesson calls it now
        takes_case = False
    return func(case=case["case"], **case["kwargs"]) if takes_case else func(**case["kwargs"])


def _run_classic(func, case):
    keras.utils.set_random_seed(case["seed"])
    model = _build_classic(func, case)
    if not isinstance(model, keras.Model):
        return {"returns": type(model).__name__}
    images, other = case["images"], case["images"][::-1].copy()
    out, moved = _outputs(model, images), _outputs(model, other)
    layers = list(_layers(model))
    filters = [int(layer.filters) for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    units = [int(layer.units) for layer in layers if isinstance(layer, keras.layers.Dense)]
    props = {"returns": "keras.Model",
             "output names": str(sorted(out)) if _named(model, images) else f"none: a list of {len(out)} outputs",
             "output shapes": {k: str(v.shape) for k, v in out.items()},
             "output values": {k: _kind(v) for k, v in out.items()},
             "outputs depend on the image": bool(any(not np.allclose(out[k], moved[k][::-1]) for k in out)),
             "the convolutions take their sizes from `filters`": filters == list(case["kwargs"]["filters"]),
             "a hidden Dense layer of `units` units": case["kwargs"]["units"] in units,
             "spatial size after each convolution and pooling": _spatial_sizes(layers),
             "weight shapes": str(sorted(tuple(int(d) for d in v.shape) for v in model.weights))}
    _set_weights_by_shape(model, case["seed"])
    props[SAME_WEIGHTS] = {k: v.astype(np.float64) for k, v in _outputs(model, images).items()}
    return props


def _named(model, images) -> bool:
    return isinstance(model(images[:1]), dict)


def _outputs(model, images) -> dict:
    """The model's outputs by name; by position ("0", "1", ...) when it returns a list."""
    y = model(images)
    items = y.items() if isinstance(y, dict) else enumerate(y if isinstance(y, (list, tuple)) else [y])
    return {str(k): np.asarray(v) for k, v in items}


def _without_weights(run):
    def run_properties(func, case):
        out = run(func, case)
        return {k: v for k, v in out.items() if k not in (SAME_WEIGHTS, "weight shapes")}
    return run_properties


_TRUSTED_ANSWERS: dict = {}


@dataclasses.dataclass(frozen=True)
class ModelExercise(Exercise):
    """An exercise whose answer is a model: outputs with the same weights when the structure allows, else properties."""

    def call(self, func, case) -> dict:
        """As ``Exercise.call``; the answers of the reference and of the catalogued mistakes (trusted code)
        to a case are kept, since ``judge`` asks for them again and building a model is slow."""
        if func is not self.reference and all(func is not wrong for _, wrong in self.mistakes):
            return Exercise.call(self, func, case)
        key = (id(func), id(self.run), id(case), case["seed"], case["case"])
        if key not in _TRUSTED_ANSWERS:
            if len(_TRUSTED_ANSWERS) > 256:
                _TRUSTED_ANSWERS.clear()
            _TRUSTED_ANSWERS[key] = Exercise.call(self, func, case)
        return _TRUSTED_ANSWERS[key]

    def judge(self, got: dict, case: dict, *, secret: bool) -> None:
        shapes = got.get("items", {}).get("weight shapes") if got.get("type") == "dict" else None
        if shapes is not None:
            ref = self.call(self.reference, case).get("items", {}).get("weight shapes", {})  # {}: the reference failed
            if shapes.get("text") != ref.get("text"):  # a structure of its own: judge what it does
                props = dataclasses.replace(self, run=_without_weights(self.run))
                items = {k: v for k, v in got["items"].items() if k not in (SAME_WEIGHTS, "weight shapes")}
                return Exercise.judge(props, {**got, "items": items}, case, secret=secret)
        return Exercise.judge(self, got, case, secret=secret)


def _classic_case(rng, case: int, size: int, filters, units: int, note: str) -> dict:
    return {"case": case, "kwargs": {"size": size, "filters": tuple(filters), "units": units},
            "images": rng.integers(0, 256, size=(2, size, size)).astype(np.float32),
            "seed": int(rng.integers(1 << 30)), "note": note}


def _fixed() -> list:
    rng = np.random.default_rng(11)
    return [_classic_case(rng, 1, 64, (5, 6, 7), 9, "size=64, filters=(5, 6, 7), units=9, on two random 64x64 "
                          "canvases"),
            _classic_case(rng, 1, 48, (3, 4, 5), 6, "size=48, filters=(3, 4, 5), units=6, on two random 48x48 "
                          "canvases")]


def _random(rng) -> list:
    out = []
    for _ in range(2):
        c, size = 1, int(rng.choice([48, 64, 80]))
        filters, units = tuple(int(f) for f in rng.choice([5, 6, 7, 9, 11, 12], 3, replace=False)), int(
            rng.choice([13, 14, 15]))
        out.append(_classic_case(rng, c, size, filters, units, f"size={size}, filters={filters}, units={units}"))
    return out


def _variant(*, box="sigmoid", presence="sigmoid", pool="average", hidden="relu", rescale=True, names=True,
             own_sizes=True, padding="valid", dense=True):
    """The classic model with one deliberate difference from the reference (a catalogued mistake)."""
    def classic_model(*, size=128, filters=(16, 32, 64), units=128):
        L = keras.layers
        images = keras.Input(shape=(size, size))
        x = L.Reshape((size, size, 1))(images)
        x = L.Rescaling(1 / 255)(x) if rescale else x
        for f in (filters if own_sizes else (16, 32, 64)):
            x = L.Conv2D(f, 3, activation="relu", padding=padding)(x)
            x = (L.AveragePooling2D(2) if pool == "average" else L.MaxPooling2D(2))(x)
        x = L.Flatten()(x)
        x = L.Dense(units if own_sizes else 128, activation=hidden)(x) if dense else x
        name = (lambda n: n) if names else (lambda n: None)
        heads = {"presence": lambda: L.Dense(1, activation=presence, name=name("presence"))(x),
                 "box": lambda: L.Dense(4, activation=box, name=name("box"))(x)}
        outputs = {n: heads[n]() for n in ("presence", "box")}
        return keras.Model(images, outputs if names else list(outputs.values()))
    return classic_model


EXERCISES = (
    ModelExercise(name="classic_model", lesson=L1, points=3, reference=_reference, fixed=_fixed, random=_random,
                  run=_run_classic, describe=lambda case: case["note"], keras=True, mistakes=(
        ("the box is rel_xyxy, in [0, 1]: end the box head with activation='sigmoid'.", _variant(box=None)),
        ("presence is one sigmoid unit: a softmax over a single unit is always 1.", _variant(presence="softmax")),
        ("the blocks pool with AveragePooling2D(2), not MaxPooling2D.", _variant(pool="max")),
        ("the hidden Dense layer has activation='relu': without it the heads see a linear function of the "
         "features.", _variant(hidden=None)),
        ("scale the pixels to [0, 1] first: Rescaling(1 / 255) after the Reshape.", _variant(rescale=False)),
        ("name each output (name='presence', 'box', ...) and return the outputs as a dict keyed by name, so "
         "that compile can key the losses by output.", _variant(names=False)),
        ("the hidden Dense layer of `units` units (with its relu) is missing: the heads should read it, not the "
         "flattened features directly.", _variant(dense=False)),
        ("use the `filters` and `units` arguments for the convolutions and the hidden layer, not fixed sizes.",
         _variant(own_sizes=False)),
        ("the convolutions keep Keras's default padding ('valid'): each 3x3 convolution trims a pixel on every "
         "side, so the maps shrink as the reference's do.", _variant(padding="same")),
    )),
)
