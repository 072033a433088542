"""Checks for what crowded scenes add (lesson 5): ``choose_nms_threshold`` (reference
``mnistloc.nms_sweep.choose_nms_threshold``), and ``scale_sigmas``, retired (``registry.RETIRED``): the bump
width of the lesson as first released (``_scale_sigmas`` below), which stays narrower than one cell on most
digits; lesson 5 now asks for ``bump_sigmas`` (``mnistloc.grading.exercises.assembly``). It stays registered, with
its old formula, so that notebooks released before grade as they did.

Fixed public cases carry their arithmetic in the note; every typical mistake
is a wrong implementation written as a student would, differing from the
reference on some public case.
"""
from __future__ import annotations

import numpy as np

from mnistloc import nms_sweep
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, numpy_exercise

L5 = LESSONS[4]


def _scale_sigmas(boxes) -> np.ndarray:
    """``scale_sigmas`` as lesson 5 first taught it, kept so that notebooks released then keep their points:
    ``max(0.5, sqrt(w h) / 8 / 6)`` cells a box (float32[...] from ``xyxy`` pixel boxes [..., 4]). The package's
    own size-aware width is ``mnistloc.targets.size_sigmas``."""
    b = np.asarray(boxes, dtype=np.float32)
    side = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)) / 8
    return np.maximum(0.5, side / 6).astype(np.float32)


# scale_sigmas ----------------------------------------------------------------------------------------

def _sigma_case(boxes, note: str) -> dict:
    return {"args": (np.asarray(boxes, np.float32),), "note": note}


def _sigma_fixed() -> list:
    return [_sigma_case([[[0, 0, 48, 48], [10, 10, 22, 37], [0, 0, 0, 0]]],
                        "boxes (1, 3, 4) [[0, 0, 48, 48], [10, 10, 22, 37], [0, 0, 0, 0]]: sqrt(48 * 48) / 8 = 6 "
                        "cells, / 6 = 1.0; sqrt(12 * 27) = 18 px = 2.25 cells, / 6 = 0.375, floor 0.5; an empty box "
                        "0.5: [[1.0, 0.5, 0.5]]"),
            _sigma_case([[20, 8, 52, 80], [0, 0, 96, 96]],
                        "boxes (2, 4) [[20, 8, 52, 80], [0, 0, 96, 96]]: sqrt(32 * 72) = 48 px = 6 cells, / 6 = 1.0 "
                        "(not the longest side 72 px, nor the mean side 52 px); 96 px = 12 cells, / 6 = 2.0"),
            _sigma_case([[40, 40, 10, 10], [0, 0, 40, 30]],
                        "boxes (2, 4) [[40, 40, 10, 10], [0, 0, 40, 30]]: the first is inverted (x1 < x0, y1 < y0): "
                        "its sides clip to 0, sigma 0.5; sqrt(40 * 30) = 34.6 px = 4.33 cells, / 6 = 0.72")]


def _sigma_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        n, k = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        wh = rng.uniform(6, 50, (n, k, 2))
        xy = rng.uniform(0, 128 - wh)
        used = rng.random((n, k)) < 0.8
        boxes = np.where(used[..., None], np.concatenate([xy, xy + wh], -1), 0)
        out.append(_sigma_case(boxes, f"{n} canvases of {k} random boxes"))
    return out


def _sigma_variant(*, side="geometric", floor="max", cells=True, clip=True, per_cell=1 / 6):
    def scale_sigmas(boxes):
        b = np.asarray(boxes, np.float64)
        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        if clip:
            w, h = np.clip(w, 0, None), np.clip(h, 0, None)
        s = {"geometric": np.sqrt(w * h), "longest": np.maximum(w, h), "mean": (w + h) / 2, "area": w * h}[side]
        s = s / 8 if cells else s
        s = s * per_cell
        return {"max": np.maximum(0.5, s), "min": np.minimum(0.5, s), "none": s}[floor].astype(np.float32)
    return scale_sigmas


# choose_nms_threshold ------------------------------------------------------------------------------

def _nms_case(keeps, scores, counts, thresholds, min_score, note) -> dict:
    return {"args": (np.asarray(keeps, bool), np.asarray(scores, np.float32), np.asarray(counts, np.int64),
                     np.asarray(thresholds, np.float64), float(min_score)), "note": note}


_T, _F = True, False
_SCORES = [[0.9, 0.8, 0.2], [0.9, 0.5, 0.0]]


def _nms_fixed() -> list:
    keeps = [[[_T, _F, _T], [_T, _F, _F]], [[_T, _T, _T], [_T, _F, _F]], [[_T, _T, _T], [_T, _T, _F]]]
    more = [[[_T, _F, _F], [_T, _F, _F]], [[_T, _F, _T], [_T, _F, _F]], [[_T, _T, _T], [_T, _T, _F]]]
    return [_nms_case(more, [[0.9, 0.8, 0.6], [0.9, 0.7, 0.1]], [2, 1], [0.3, 0.5, 0.7], 0.5,
                      "2 canvases with 2 and 1 digits, peak scores [[0.9, 0.8, 0.6], [0.9, 0.7, 0.1]], thresholds "
                      "[0.3, 0.5, 0.7], min_score=0.5; kept peaks scoring >= 0.5 count [1, 1], [2, 1] and [3, 2]: "
                      "accuracy [0.5, 1.0, 0.0] (too many is as wrong as too few), best 0.5"),
            _nms_case(keeps, _SCORES, [2, 1], [0.3, 0.5, 0.7], 0.5,
                      "2 canvases with 2 and 1 digits, peak scores [[0.9, 0.8, 0.2], [0.9, 0.5, 0.0]], thresholds "
                      "[0.3, 0.5, 0.7], min_score=0.5; kept peaks scoring >= 0.5 count [1, 1], [2, 1] and [2, 2] "
                      "(0.5 counts): accuracy [0.5, 1.0, 0.5], best 0.5"),
            _nms_case(keeps[:1] + keeps[1:2] * 2, _SCORES, [2, 1], [0.2, 0.4, 0.6], 0.5,
                      "the same canvases, thresholds [0.2, 0.4, 0.6] where 0.4 and 0.6 keep the same peaks: "
                      "accuracy [0.5, 1.0, 1.0], and of equals the first, 0.4"),
            _nms_case(keeps, _SCORES, [2, 1], [0.3, 0.5, 0.7], 0.1,
                      "the first case with min_score=0.1: counts [2, 1], [3, 1] and [3, 2]: accuracy "
                      "[1.0, 0.5, 0.0], best 0.3")]


def _nms_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        t, n, k = int(rng.integers(2, 8)), int(rng.integers(4, 20)), int(rng.integers(2, 7))
        scores = np.round(rng.random((n, k)), 1)  # one decimal: some scores equal min_score
        keeps = rng.random((t, n, k)) < np.linspace(0.3, 0.9, t)[:, None, None]
        counts = rng.integers(0, k + 1, n)
        min_score = float(rng.choice([0.3, 0.5]))
        thresholds = np.round(np.sort(rng.choice(np.arange(1, 10) / 10, t, replace=False)), 1)
        out.append(_nms_case(keeps, scores, counts, thresholds, min_score,
                             f"{n} random canvases, {t} thresholds, min_score={min_score}"))
    return out


def _choose_variant(*, score=True, strict=False, nms=True, last=False, index=False, worst=False, digits=False,
                    right="exact", share=True, cast=True):
    def choose_nms_threshold(keeps, scores, counts, thresholds, min_score=0.5):
        keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores, np.float64), np.asarray(counts)
        counted = (keeps if nms else np.ones_like(keeps))
        if score:
            counted = counted & ((scores > min_score) if strict else (scores >= min_score))
        counted = counted.sum(-1)  # [T, n]
        if digits:
            accuracy = np.minimum(counted, counts).sum(-1) / max(counts.sum(), 1)
        else:
            accuracy = {"exact": counted == counts, "at least": counted >= counts,
                        "at most": counted <= counts}[right]
            accuracy = accuracy.mean(-1) if share else accuracy.sum(-1)  # sum: how many canvases, not a share
        best = (len(accuracy) - 1 - np.argmax(accuracy[::-1])) if last else (
            np.argmin(accuracy) if worst else np.argmax(accuracy))
        accuracy = accuracy.astype(np.float64) if cast else accuracy  # not cast: a sum of booleans stays int64
        return (float(best) if index else float(np.asarray(thresholds)[best])), accuracy
    return choose_nms_threshold


_SHARE = ("the accuracy is a share: the fraction of the canvases counted right (between 0 and 1, their mean), not "
          "how many canvases were counted right.")

EXERCISES = (
    numpy_exercise("scale_sigmas", L5, 2, _scale_sigmas, _sigma_fixed, _sigma_random, [
        ("keep the floor: sigma = max(0.5, ...), so a small digit's bump still covers its own cell.",
         _sigma_variant(floor="none")),
        ("the floor is a lower bound: np.maximum(0.5, s), not np.minimum.", _sigma_variant(floor="min")),
        ("measure in cells, not pixels: divide the side by the stride (8 px a cell).", _sigma_variant(cells=False)),
        ("the side is the geometric mean sqrt(w h), not the longest side max(w, h).", _sigma_variant(side="longest")),
        ("the side is the geometric mean sqrt(w h), not the mean (w + h) / 2.", _sigma_variant(side="mean")),
        ("the side is sqrt(w h), a length: the area w h grows with its square.", _sigma_variant(side="area")),
        ("clip each side at 0 first (np.clip(x1 - x0, 0, None)): an inverted box has no size.",
         _sigma_variant(clip=False)),
    ]),
    numpy_exercise("choose_nms_threshold", L5, 3, nms_sweep.choose_nms_threshold, _nms_fixed, _nms_random, [
        ("count only the peaks scoring at least min_score: the others are not digits.", _choose_variant(score=False)),
        ("a peak scoring exactly min_score counts (>=, not >).", _choose_variant(strict=True)),
        ("a canvas is right when its count equals the number of digits (==): counting more peaks than digits is "
         "a mistake too, not right 'at least'.", _choose_variant(right="at least")),
        ("a canvas is right when its count equals the number of digits (==): counting fewer peaks than digits "
         "misses digits, it is not right 'at most'.", _choose_variant(right="at most")),
        ("count only the peaks that NMS kept at each threshold (keeps[t]).", _choose_variant(nms=False)),
        ("of equal accuracies take the first threshold (np.argmax returns the first maximum).",
         _choose_variant(last=True)),
        ("return the threshold itself, thresholds[best], not its index.", _choose_variant(index=True)),
        ("pick the highest accuracy (np.argmax), not the lowest.", _choose_variant(worst=True)),
        ("the accuracy is the share of canvases whose count is exactly right, not the share of digits found.",
         _choose_variant(digits=True)),
        (_SHARE, _choose_variant(share=False)),
        (_SHARE, _choose_variant(share=False, cast=False)),  # the same mistake, its integer count returned as is
    ]),
)
