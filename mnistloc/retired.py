"""Names the package no longer has, served to the notebooks released before they went: one table.

Released lessons keep working for students who already started them. A notebook of an earlier release
imports modules the package has since split or renamed (``from mnistloc import decoding, peaks, crowds,
dense``) and calls names a living module lost (``models.build_case5_model``). ``mnistloc.__getattr__`` (PEP 562)
serves a retired module from ``MODULES``, and a living module's ``__getattr__`` a retired name from ``NAMES``;
each says once, in a ``FutureWarning``, where its names live now.

A retired module is served as a stand-in namespace (``types.ModuleType``) whose attributes are:

- the current function itself, where its arguments and meaning did not change (``decoding.find_peaks`` is
  ``decoder.find_peaks``);
- a small private adapter of this module, where the old arguments or result differ (``decoding.decode``
  also returned the per-canvas ``box``, ``presence`` and ``class``): it calls the current functions and
  reshapes their answer, and reads what a case does from its spec (``mnistloc.cases``).

A module that was only renamed is served as the module it became. The numbers of an adapter are those of
the current decoder and encoder (their refinement and one ownership rule), in the old form; only a bump
width that an old lesson grades as its exercise's answer (``dense.sigmas``) keeps its old formula, so that
the lesson's reference and the answer it asks for agree.
"""
from __future__ import annotations

import dataclasses
import importlib
import sys
import types
import warnings

DENSE_CASE = 5  # the case that ``mnistloc.dense`` and ``models.build_case5_model`` served, as their names say


# ---- adapters: the old arguments and results over the current functions ------------------------------

def _decoding_encode_targets(boxes, classes, mask, *, size: int = 128, heatmap_fn=None, box_fn=None) -> dict:
    """``decoding.encode_targets``: ``targets.encode_targets`` with the fixed bump and, as before, the one-hot
    ``count`` of 0 to ``cases.SLOTS`` digits."""
    from mnistloc import cases, targets

    return targets.encode_targets(boxes, classes, mask, size=size, sigma="fixed", max_count=cases.SLOTS,
                                  heatmap_fn=heatmap_fn, box_fn=box_fn)


def _decoding_decode(case: int, outputs, *, threshold: float = 0.5, peaks_fn=None, cells_fn=None) -> dict:
    """``decoding.decode``: ``decoder.decode``'s slots (``boxes``, ``mask``, ``classes``, ``scores``, ``count``)
    and, as before, the case's per-canvas labels (``spec.labels``, as ``CanvasDataset.targets`` but in pixels):
    ``box`` (n, 4), the first slot's box or the union of the digits' (``spec.box_kind``); ``presence`` bool (n,);
    ``class`` int64 (n,), the first slot's class."""
    import numpy as np

    from mnistloc import cases, decoder
    from mnistloc.boxes import union_box

    spec = cases.get(case)
    pred = decoder.decode(case, outputs, threshold=threshold, peaks_fn=peaks_fn, cells_fn=cells_fn)
    result = {key: pred[key] for key in ("boxes", "mask", "classes", "scores", "count")}
    if "box" in spec.labels:
        if spec.box_kind == "union":
            result["box"] = union_box(pred["boxes"], pred["mask"]).astype(np.float32)
        else:
            result["box"] = pred["boxes"][:, 0]
    if "presence" in spec.labels:
        result["presence"] = pred["count"] > 0
    if "class" in spec.labels:
        result["class"] = pred["classes"][:, 0]
    return result


def _decoding_detections(outputs, *, k: int = 10, classes_per_peak: int | None = None, min_score: float = 0.01,
                         iou_threshold: float | None = None, peaks_fn=None, cells_fn=None, nms_fn=None):
    """``decoding.detections``: from raw outputs, the ``k`` highest peaks (no class-agnostic NMS), each box
    reported under its ``classes_per_peak`` most probable classes (all by default), scored presence x class
    probability (``decoder.detect``, then ``decoder.detections``); ``iou_threshold`` adds NMS within each label.

    Returns:
        (boxes, labels, scores): lists of n arrays, best first.
    """
    import numpy as np

    from mnistloc import decoder

    found = decoder.detect(outputs, k=k, iou_threshold=None, peaks_fn=peaks_fn, cells_fn=cells_fn)
    probs = found.get("probs")
    if probs is not None and classes_per_peak is not None and classes_per_peak < probs.shape[-1]:
        rank = np.argsort(np.argsort(-probs, axis=-1, kind="stable"), axis=-1, kind="stable")  # 0: most probable
        found = {**found, "probs": np.where(rank < classes_per_peak, probs, -1.0).astype(np.float32)}
    boxes, labels, scores = decoder.detections(found, min_score=min_score)
    if iou_threshold is not None:
        for i, (b, lab, s) in enumerate(zip(boxes, labels, scores)):
            keep = _nms_per_label(b, lab, s, iou_threshold, nms_fn or decoder.nms)
            boxes[i], labels[i], scores[i] = b[keep], lab[keep], s[keep]
    return boxes, labels, scores


def _nms_per_label(boxes, labels, scores, iou_threshold: float, nms_fn):
    """Indices (sorted) of the detections ``nms_fn`` keeps within each label, in one call: each label's boxes
    are moved far from the others' so that they never overlap (torchvision's batched NMS)."""
    import numpy as np

    apart = boxes + (labels * (np.abs(boxes).max(initial=0) * 2 + 1))[:, None]
    return np.sort(np.asarray(nms_fn(apart, scores, iou_threshold), dtype=np.int64))


def _dense_sigmas(boxes):
    """``dense.sigmas``: the bump width lesson 5 first asked for (its ``scale_sigmas``, which the checks keep
    grading with that formula), from the exercise's reference; the package's own is ``targets.size_sigmas``."""
    from mnistloc.checks import REFERENCES

    return REFERENCES["scale_sigmas"](boxes)


def _dense_encode_targets(boxes, classes, mask, *, size: int = 128, sigma_fn=None) -> dict:
    """``dense.encode_targets``: ``targets.encode_targets`` with size-aware bumps of ``sigma_fn`` (default
    ``dense.sigmas``) and no ``count``."""
    from mnistloc import targets

    return targets.encode_targets(boxes, classes, mask, size=size, sigma="size", sigma_fn=sigma_fn or _dense_sigmas)


def _dense_score(ds, outputs) -> dict:
    """``dense.score``: ``evaluation.score`` of ``DENSE_CASE``."""
    from mnistloc import evaluation

    return evaluation.score(DENSE_CASE, ds, outputs)


def _dense_picture(outputs, index=None) -> dict:
    """``dense.picture``: ``evaluation.picture_predictions`` of ``DENSE_CASE``."""
    from mnistloc import evaluation

    return evaluation.picture_predictions(DENSE_CASE, outputs, index)


def _dense_per_canvas_quality(ds, outputs):
    """``dense.per_canvas_quality``: ``evaluation.per_canvas_quality`` of ``DENSE_CASE``."""
    from mnistloc import evaluation

    return evaluation.per_canvas_quality(DENSE_CASE, ds, outputs)


def _build_case5_model(size: int = 128, widths=(16, 32, 64), hidden: int = 64):
    """``models.build_case5_model``: ``models.build_model`` of ``DENSE_CASE``."""
    from mnistloc import models

    return models.build_model(DENSE_CASE, size=size, widths=widths, hidden=hidden)


# ---- the table -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Retired:
    """A module retired from the package.

    Attributes:
        now: the modules its names live in now.
        names: old name -> the current name (``"module.name"``) or an adapter of this module; None for a module
            that was only renamed (``now[0]``, served whole).
        release: the last release that had it.
    """

    now: tuple[str, ...]
    names: dict | None = None
    release: str = "2026-12"


_PEAKS = {"NMS_IOU": "decoder.NMS_IOU", "find_peaks": "decoder.find_peaks", "nms": "decoder.nms"}

MODULES: dict[str, Retired] = {
    "decoding": Retired(("decoder", "targets"), {
        "STRIDE": "targets.STRIDE", "SIGMA": "targets.SIGMA", "RADIUS": "targets.RADIUS", **_PEAKS,
        "heatmap_targets": "targets.heatmap_targets", "box_targets": "targets.box_targets",
        "encode_targets": _decoding_encode_targets, "boxes_from_cells": "decoder.boxes_from_cells",
        "decode": _decoding_decode, "detections": _decoding_detections}),
    "peaks": Retired(("decoder",), dict(_PEAKS)),
    "dense": Retired(("decoder", "targets", "evaluation"), {
        "STRIDE": "targets.STRIDE", "RADIUS": "targets.RADIUS", "NUM_CLASSES": "canvas.NUM_CLASSES",
        "THRESHOLD": "decoder.THRESHOLD", "IOU_THRESHOLD": "decoder.NMS_IOU",
        "MAX_DETECTIONS": "decoder.MAX_DETECTIONS", "sigmas": _dense_sigmas, "encode_targets": _dense_encode_targets,
        "detect": "decoder.detect", "detections": "decoder.detections", "score": _dense_score,
        "picture": _dense_picture, "per_canvas_quality": _dense_per_canvas_quality}),
    "crowds": Retired(("nms_sweep",)),
    "scenes": Retired(("scaled_canvas",)),
    "precision": Retired(("dtype_policy",)),
    "report": Retired(("demo_page",)),
}
"""Every retired module by its old name (``from mnistloc import decoding`` still works)."""

NAMES: dict[str, dict] = {
    "models": {"build_case5_model": (_build_case5_model, "mnistloc.models.build_model(5)")},
}
"""Names retired from a living module, by module: old name -> (the current name (``"module.name"``) or an adapter,
what to call now). The module's own ``__getattr__`` serves them (``models.build_case5_model()`` still works)."""


# ---- serving them ----------------------------------------------------------------------------------

_served: dict[str, object] = {}


def _resolve(target):
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(".")
    return getattr(importlib.import_module(f"mnistloc.{module}"), name)


def _serving(frame) -> bool:
    """Whether ``frame`` is this module, a ``__getattr__`` or the retired-module finder of the package, or the
    import machinery."""
    code = frame.f_code
    return (code.co_filename == __file__ or "importlib._bootstrap" in code.co_filename
            or (code.co_name in ("__getattr__", "create_module")
                and str(frame.f_globals.get("__name__", "")).startswith("mnistloc")))


def _warn(old: str, now: str) -> None:
    """One ``FutureWarning``, shown at the student's line (past this module, ``__getattr__`` and importlib)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and _serving(frame):
        frame = frame.f_back
        level += frame is not None and "importlib._bootstrap" not in frame.f_code.co_filename  # warn skips those
    warnings.warn(f"mnistloc.{old} is retired; {now}. This notebook keeps working.", FutureWarning,
                  stacklevel=level)


def _where(modules: tuple[str, ...]) -> str:
    homes = [f"mnistloc.{m}" for m in modules]
    listed = ", ".join(homes[:-1]) + " and " + homes[-1] if len(homes) > 1 else homes[0]
    return f"its functions are in {listed}"


def _stand_in(old: str, entry: Retired) -> types.ModuleType:
    space = types.ModuleType(f"mnistloc.{old}", f"Retired: a stand-in for mnistloc.{old} (see mnistloc.retired); "
                                                f"{_where(entry.now)}.")
    for name, target in entry.names.items():
        setattr(space, name, _resolve(target))

    def __getattr__(name: str):
        raise AttributeError(f"mnistloc.{old} is retired and its stand-in has no {name!r}; {_where(entry.now)}")

    space.__getattr__ = __getattr__
    return space


def module(old: str):
    """The stand-in of the retired module ``old`` (the same object every time), warning the first time.

    Raises:
        AttributeError: ``old`` is not a retired module (the error ``mnistloc.old`` should give).
    """
    if old not in MODULES:
        raise AttributeError(f"module 'mnistloc' has no attribute {old!r}")
    if old not in _served:
        entry = MODULES[old]
        if entry.names is None:
            _served[old] = importlib.import_module(f"mnistloc.{entry.now[0]}")
            _warn(old, f"it is mnistloc.{entry.now[0]} now")
        else:
            _served[old] = _stand_in(old, entry)
            _warn(old, _where(entry.now))
    return _served[old]


def attribute(module_name: str, name: str):
    """The retired ``name`` of the living module ``module_name`` (``"mnistloc.models"``), warning the first time.

    Raises:
        AttributeError: ``name`` was never retired from that module (the error a missing attribute gives).
    """
    short = module_name.rpartition(".")[2]
    if name not in NAMES.get(short, {}):
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    key = f"{short}.{name}"
    if key not in _served:
        target, now = NAMES[short][name]
        _served[key] = _resolve(target)
        _warn(key, f"call {now} instead")
    return _served[key]
