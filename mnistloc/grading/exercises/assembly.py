"""Checks for lesson 5's capstone, the case-5 detector the student assembles from their own parts:
``bump_sigmas`` (a bump width that grows with the digit, reference ``mnistloc.targets.size_sigmas``),
``detector_targets`` (the case-5 targets, reference ``mnistloc.targets.encode_targets(..., sigma="size")``) and
``detect_digits`` (from the model's outputs to scored, labelled detections, reference ``mnistloc.decoder``'s
``detect`` without refinement, then ``detections`` with one label per peak).

``detector_targets`` and ``detect_digits`` are built on parts the student wrote in earlier lessons
(``heatmap_targets``, ``box_targets``, ``find_peaks``, ``boxes_from_cells``, ``nms``). A graded answer cell runs
alone, so those parts are arguments: the lesson passes the student's own (checked by ``from_lesson``), and the
check passes ``mnistloc``'s, so that only the assembly is judged here.

Fixed public cases carry their arithmetic in the note; every typical mistake is a wrong implementation written
as a student would, differing from the reference on some public case.
"""
from __future__ import annotations

import numpy as np

from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, float64_mistake, numpy_exercise

L5 = LESSONS[4]
NUM_CLASSES = 10


def _targets():
    from mnistloc import targets
    return targets


def _decoder():
    from mnistloc import decoder
    return decoder


# bump_sigmas --------------------------------------------------------------------------------------------

def _bump_reference(boxes, stride=8):
    return _targets().size_sigmas(boxes, stride=stride)


_bump_reference.__name__ = "bump_sigmas"


def _sigma_case(boxes, stride, note: str) -> dict:
    return {"args": (np.asarray(boxes, np.float32),), "kwargs": {"stride": stride}, "note": note}


def _bump_fixed() -> list:
    return [_sigma_case([[[40, 40, 52, 52], [10, 10, 55, 55], [0, 0, 0, 0]]], 8,
                        "boxes (1, 3, 4): a 12 px digit, a 45 px digit and an unused slot (zeros), stride=8: the "
                        "45 px digit's bump is at least twice as wide as the 12 px digit's"),
            _sigma_case([[20, 8, 52, 80], [0, 0, 96, 96], [30, 30, 36, 60]], 8,
                        "boxes (3, 4) [[20, 8, 52, 80], [0, 0, 96, 96], [30, 30, 36, 60]], stride=8 (a 32x72 box, "
                        "a 96 px square, a thin 6x30 digit)"),
            _sigma_case([[40, 40, 10, 10], [0, 0, 40, 30]], 8,
                        "boxes (2, 4) [[40, 40, 10, 10], [0, 0, 40, 30]]: the first is inverted (x1 < x0, y1 < y0), "
                        "so it has no size"),
            _sigma_case([[[40, 40, 52, 52], [10, 10, 55, 55]]], 4,
                        "the 12 px and 45 px digits with stride=4: the same digits span twice as many cells")]


def _bump_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        n, k = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        wh = rng.uniform(5, 50, (n, k, 2))
        xy = rng.uniform(0, 128 - wh)
        used = rng.random((n, k)) < 0.8
        boxes = np.where(used[..., None], np.concatenate([xy, xy + wh], -1), 0)
        stride = int(rng.choice([4, 8, 16]))
        out.append(_sigma_case(boxes, stride, f"{n} canvases of {k} random boxes, stride={stride}"))
    return out


def _bump_variant(*, pixels=False, fixed_stride=False, unclipped=False, longest=False, constant=False, mean=False,
                  floor=True, ceiling=False):
    """``bump_sigmas`` with one deliberate difference, built on the reference's own formula."""
    def bump_sigmas(boxes, stride=8):
        b = np.asarray(boxes, np.float32)
        if constant:
            return np.ones(b.shape[:-1], np.float32)
        if mean or not floor or ceiling:  # the size as the mean side (w + h) / 2, or the formula without max(0.5, .)
            w, h = np.clip(b[..., 2] - b[..., 0], 0, None), np.clip(b[..., 3] - b[..., 1], 0, None)
            side = (w + h) / 2 if mean else np.sqrt(w * h)
            width = 0.4 * side / stride
            if ceiling:  # np.minimum(0.5, .): every width capped at 0.5 cells
                return np.minimum(0.5, width).astype(np.float32)
            return (np.maximum(0.5, width) if floor else width).astype(np.float32)
        if unclipped:  # sqrt(w h) of two negative sides: the inverted box counts as a box of that size
            lo, hi = np.minimum(b[..., :2], b[..., 2:]), np.maximum(b[..., :2], b[..., 2:])
            b = np.concatenate([lo, hi], -1)
        if longest:  # the longest side for the size: a square box of that side
            side = np.clip(np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]), 0, None)
            b = np.stack([b[..., 0], b[..., 1], b[..., 0] + side, b[..., 1] + side], -1)
        return _bump_reference(b, stride=1 if pixels else (8 if fixed_stride else stride))
    return bump_sigmas


# detector_targets ---------------------------------------------------------------------------------------

def _targets_reference(boxes, classes, mask, heatmap_fn=None, box_fn=None, sigma_fn=None, *, size=128):
    """The reference: ``targets.encode_targets(..., sigma="size")`` on the parts given (``mnistloc``'s by default)."""
    return _targets().encode_targets(boxes, classes, mask, size=size, sigma="size", heatmap_fn=heatmap_fn,
                                     box_fn=box_fn, sigma_fn=sigma_fn)


_targets_reference.__name__ = "detector_targets"


def _run_targets(func, case: dict):
    """Calls ``func`` with ``mnistloc``'s parts, as the lesson calls it with the student's. The class one-hot
    counts only where the weight is above 0 (elsewhere nothing learns it, and either zeros or the owner's class
    is right)."""
    t = _targets()
    out = func(*case["args"], t.heatmap_targets, t.box_targets, t.size_sigmas, **case["kwargs"])
    if isinstance(out, dict) and isinstance(out.get("class"), np.ndarray) and out["class"].ndim == 4:
        cls = out["class"].copy()
        cls[..., 1:] *= cls[..., :1] > 0
        out = {**out, "class": cls}
    return out


def _targets_case(boxes, classes, mask, kwargs: dict, note: str) -> dict:
    mask = np.asarray(mask, bool)
    return {"args": (np.asarray(boxes, np.float32).reshape(len(mask), -1, 4),
                     np.where(mask, np.asarray(classes, np.int64).reshape(mask.shape), -1), mask),
            "kwargs": kwargs, "note": note}


_BIG_SMALL = [[8, 8, 53, 53], [52, 20, 64, 32]]  # a 45 px digit (centre cell (3, 3)) and a 12 px one (cell (3, 7))
_TOUCH = [[10, 20, 32, 46], [34, 20, 56, 46]]  # centre cells (row, col) (4, 2) and (4, 5): blocks meet at col 3-4
_TIE = [[10, 20, 32, 46], [26, 20, 48, 46]]  # centre cells (4, 2) and (4, 4): column 3 is as near to both


def _targets_fixed() -> list:
    k = {"size": 128}
    return [_targets_case(_BIG_SMALL, [7, 1], [[True, True]], k,
                          f"a 45 px digit 7 {_BIG_SMALL[0]} and a 12 px digit 1 {_BIG_SMALL[1]}: the large digit's "
                          "bump is wider; every cell near a centre learns that digit's box and class, weighted by "
                          "the heat there"),
            _targets_case(_TOUCH + [[0, 0, 0, 0]], [3, 5, 0], [[True, True, False]], k,
                          f"two digits 3 and 5 {_TOUCH} whose 3x3 blocks meet, and an unused slot: a cell between "
                          "them learns the nearer centre's box and class (the earlier slot on a tie)"),
            _targets_case([[0, 0, 0, 0]], [0], [[False]], k, "an empty canvas: all zeros"),
            _targets_case([[4, 4, 49, 49], [40, 44, 52, 56]], [2, 9], [[True, True]], {"size": 64},
                          "a 45 px digit and a 12 px one on a 64 px canvas (8x8 cells)"),
            _targets_case(_TIE, [3, 5], [[True, True]], k,
                          f"two digits 3 and 5 {_TIE} whose centre cells (4, 2) and (4, 4) are two columns apart: the "
                          "cells of column 3 between them are as near to both, and learn the earlier slot's box and "
                          "class (the digit 3)")]


def _targets_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        n, k = int(rng.integers(1, 4)), int(rng.integers(1, 7))
        wh = rng.uniform(6, 46, (n, k, 2))
        xy = rng.uniform(0, 128 - wh)
        mask = rng.random((n, k)) < 0.75
        boxes = np.where(mask[..., None], np.concatenate([xy, xy + wh], -1), 0)
        out.append(_targets_case(boxes, rng.integers(0, NUM_CLASSES, (n, k)), mask, {"size": 128},
                                 f"{n} canvases of up to {k} random digits"))
    return out


def _owners(boxes, mask, g: int, stride: int = 8, later: bool = False) -> np.ndarray:
    """The slot each cell belongs to (N, G, G): the nearest centre cell, the earlier slot on a tie (``later``:
    the later one)."""
    centre = np.clip(np.floor((boxes[..., :2] + boxes[..., 2:]) / 2 / stride), 0, g - 1)  # [N, K, 2]
    i = np.arange(g)
    d2 = (i[:, None] - centre[..., 1, None, None]) ** 2 + (i[None, :] - centre[..., 0, None, None]) ** 2
    d2 = np.where(mask[..., None, None], d2, np.inf)
    return d2.shape[1] - 1 - np.argmin(d2[:, ::-1], axis=1) if later else np.argmin(d2, axis=1)


def _targets_variant(*, fixed=False, power=2, combine="max", weight="heat", owner="nearest", class_weight=True):
    """``detector_targets`` as a student writes it on the given parts, with one deliberate difference."""
    def detector_targets(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
        b, m, c = np.asarray(boxes, np.float32), np.asarray(mask, bool), np.asarray(classes)
        stride = 8
        g = size // stride
        sig = np.asarray(sigma_fn(b), np.float64)  # [N, K]
        per_slot = []
        for k in range(b.shape[1]):
            unit = np.asarray(heatmap_fn(b[:, k:k + 1], m[:, k:k + 1], size=size, stride=stride, sigma=1.0),
                              np.float64)  # [N, G, G]
            per_slot.append(unit if fixed else unit ** (1 / sig[:, k, None, None] ** power))
        per_slot = np.stack(per_slot, 1) if per_slot else np.zeros((len(b), 0, g, g))  # [N, K, G, G]
        heat = per_slot.sum(1) if combine == "sum" else per_slot.max(1, initial=0.0)
        distances, cells = box_fn(b, m, size=size, stride=stride)
        w = {"heat": np.where(cells, heat, 0), "ones": cells.astype(np.float64), "everywhere": heat}[weight]
        who = np.argmax(per_slot, 1) if owner == "bump" else _owners(b, m, g, later=owner == "later")
        cls = np.take_along_axis(np.where(m, c, -1), who.reshape(len(b), -1), 1).reshape(who.shape)
        hot = (cls[..., None] == np.arange(NUM_CLASSES)) & cells[..., None]
        cw = w if class_weight else cells.astype(np.float64)
        return {"presence": heat[..., None].astype(np.float32),
                "box": np.concatenate([w[..., None], distances], -1).astype(np.float32),
                "class": np.concatenate([cw[..., None], hot], -1).astype(np.float32)}
    return detector_targets


# detect_digits ------------------------------------------------------------------------------------------

def _detect_reference(outputs, peaks_fn=None, cells_fn=None, nms_fn=None, *, k=20, iou_threshold=0.5,
                      min_score=0.01):
    """The reference: ``decoder.detect`` (no refinement) then ``decoder.detections`` with one label per peak."""
    d = _decoder()
    found = d.detect(outputs, k=k, iou_threshold=iou_threshold, refine_boxes=False, peaks_fn=peaks_fn,
                     cells_fn=cells_fn, nms_fn=nms_fn)
    return d.detections(found, all_labels=False, min_score=min_score)


_detect_reference.__name__ = "detect_digits"


def _run_detect(func, case: dict):
    d = _decoder()
    return func(case["outputs"], d.find_peaks, d.boxes_from_cells, d.nms, **case["kwargs"])


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _outputs_case(heat, ltrb, logits, kwargs: dict, note: str) -> dict:
    return {"outputs": {"presence": np.asarray(heat, np.float32)[..., None], "box": np.asarray(ltrb, np.float32),
                        "class": _softmax(np.asarray(logits, np.float32)).astype(np.float32)},
            "kwargs": kwargs, "note": note}


def _hand_outputs():
    """Three 8x8 maps (a 64 px canvas), each cell's box 16 px around its centre ((j + 0.5) * 8, (i + 0.5) * 8) but
    at the peaks: canvas 0, peaks 0.9 at (row 2, col 2) and 0.8 at (2, 4) whose boxes overlap by IoU 0.5, and 0.6
    at (6, 6) whose box runs past the canvas; canvas 1, one peak 0.3 at (5, 1) whose class is unsure (4 at 40%);
    canvas 2, peaks 0.7 at (5, 2), unsure (class 1 at 27%), and 0.6 at (5, 4), sure (class 5 at 94%), whose
    boxes overlap by IoU 0.6."""
    heat = np.zeros((3, 8, 8))
    heat[0, 2, 2], heat[0, 2, 4], heat[0, 6, 6], heat[1, 5, 1], heat[2, 5, 2], heat[2, 5, 4] = .9, .8, .6, .3, .7, .6
    ltrb = np.ones((3, 8, 8, 4))
    ltrb[0, 2, 2] = [1, 1, 2, 1]  # centre (20, 20): (12, 12, 36, 28), 24 x 16 = 384 px
    ltrb[0, 2, 4] = [2, 1, 1, 1]  # centre (36, 20): (20, 12, 44, 28); overlap 16 x 16 = 256: IoU 256 / 512 = 0.5
    ltrb[0, 6, 6] = [1, 1, 3, 3]  # centre (52, 52): (44, 44, 76, 76), clipped to the 64 px canvas: (44, 44, 64, 64)
    ltrb[2, 5, 2] = [1.5, 1, 2.5, 1]  # centre (20, 44): (8, 36, 40, 52), 32 x 16 = 512 px
    ltrb[2, 5, 4] = [2.5, 1, 1.5, 1]  # centre (36, 44): (16, 36, 48, 52); overlap 24 x 16 = 384: IoU 384 / 640 = 0.6
    logits = np.zeros((3, 8, 8, NUM_CLASSES))
    logits[0, 2, 2, 3], logits[0, 2, 4, 3], logits[0, 6, 6, 7] = 6, 5, 6
    logits[1, 5, 1, 4], logits[1, 5, 1, 9] = 2.3, 1.9
    logits[2, 5, 2, 1], logits[2, 5, 4, 5] = 1.2, 5
    return heat, ltrb, logits


def _detect_fixed() -> list:
    heat, ltrb, logits = _hand_outputs()
    base = {"k": 20, "iou_threshold": 0.5, "min_score": 0.01}
    return [_outputs_case(heat, ltrb, logits, base,
                          "three 8x8 maps: canvas 0 has peaks 0.9 at (row 2, col 2) and 0.8 at (2, 4), boxes (12, 12, "
                          "36, 28) and (20, 12, 44, 28) (IoU 16 x 16 / (384 + 384 - 256) = 0.5, both kept at "
                          "iou_threshold 0.5), a peak 0.6 at (6, 6) whose box (44, 44, 76, 76) is clipped to (44, 44, "
                          "64, 64); canvas 1 a peak 0.3 at (5, 1), class 4 at 40%: scored 0.3 x 0.4; canvas 2 peaks "
                          "0.7 (class 1 at 27%) and 0.6 (class 5 at 94%) whose boxes overlap by IoU 0.6: NMS keeps "
                          "the higher presence, 0.7, scored 0.7 x 0.27"),
            _outputs_case(heat, ltrb, logits, {**base, "iou_threshold": 0.7},
                          "the same maps with iou_threshold=0.7: canvas 2's two boxes (IoU 0.6) are both kept"),
            _outputs_case(heat, ltrb, logits, {**base, "iou_threshold": 0.4},
                          "the same maps with iou_threshold=0.4: the 0.8 peak of canvas 0 overlaps the 0.9 one by "
                          "IoU 0.5 > 0.4 and is suppressed"),
            _outputs_case(heat, ltrb, logits, {**base, "min_score": 0.2},
                          "the same maps with min_score=0.2: canvas 1's only detection scores 0.3 x 0.4 = 0.12 and "
                          "is dropped"),
            _outputs_case(heat, ltrb, logits, {**base, "k": 1},
                          "the same maps with k=1: one peak a canvas, the best")]


def _detect_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        n, g = int(rng.integers(1, 4)), int(rng.choice([8, 16]))
        heat = rng.random((n, g, g)) ** 6  # mostly low, a few high cells: several peaks
        ltrb = rng.uniform(0.2, 3.0, (n, g, g, 4))
        logits = rng.normal(0, 2, (n, g, g, NUM_CLASSES))
        kwargs = {"k": int(rng.integers(3, 21)), "iou_threshold": float(rng.choice([0.3, 0.5, 0.7])),
                  "min_score": float(rng.choice([0.01, 0.1]))}
        out.append(_outputs_case(heat, ltrb, logits, kwargs, f"{n} random {g}x{g} maps, {kwargs}"))
    return out


def _detect_variant(*, use_nms=True, joint=True, all_labels=False, use_min_score=True, clip=True, nms_on="presence",
                    fixed_iou=False, swap=False, resort=True):
    """``detect_digits`` as a student writes it on the given parts, with one deliberate difference."""
    def detect_digits(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
        heat = np.asarray(outputs["presence"])[..., 0]  # [n, G, G]
        probs_map = np.asarray(outputs["class"])
        rows, cols, scores = (np.asarray(a) for a in peaks_fn(heat, k=k))  # [n, k]
        cell_boxes = np.asarray(cells_fn(outputs["box"]))  # [n, G, G, 4]
        size = heat.shape[1] * 8
        boxes, labels, out = [], [], []
        for i in range(len(heat)):
            found = rows[i] >= 0
            r, c, s = rows[i][found], cols[i][found], scores[i][found]
            if swap:
                r, c = c, r
            b = cell_boxes[i, r, c]
            b = np.clip(b, 0, size) if clip else b
            p = probs_map[i, r, c]  # [m, 10]
            best = p.max(-1) * s if joint else s
            ranked = best if nms_on == "joint" else s
            keep = (np.asarray(nms_fn(b, ranked, 0.5 if fixed_iou else iou_threshold), np.int64) if use_nms
                    else np.arange(len(s)))
            if all_labels:
                j = s[keep, None] * p[keep]  # [m, 10]
                d, cls = np.nonzero(j >= (min_score if use_min_score else -1))
                order = np.argsort(-j[d, cls], kind="stable")
                d, cls = d[order], cls[order]
                boxes.append(b[keep][d].astype(np.float32))
                labels.append(cls.astype(np.int64))
                out.append(j[d, cls].astype(np.float32))
                continue
            good = keep[best[keep] >= (min_score if use_min_score else -np.inf)]
            good = good[np.argsort(-best[good], kind="stable")] if resort else good  # best first
            boxes.append(b[good].astype(np.float32))
            labels.append(p[good].argmax(-1).astype(np.int64))
            out.append(best[good].astype(np.float32))
        return boxes, labels, out
    return detect_digits


def _best_first(case, got) -> bool:
    scores = got["items"][2]["items"]
    return all(np.all(np.diff(np.asarray(s["value"], np.float64)) <= 0) for s in scores)


_DETECT_PROPS = [Property("each canvas's detections come sorted by their score (presence x class probability), "
                          "best first", _best_first)]


EXERCISES = (
    numpy_exercise("bump_sigmas", L5, 2, _bump_reference, _bump_fixed, _bump_random, [
        ("measure the digit in cells: divide its size in pixels by `stride`.", _bump_variant(pixels=True)),
        ("use the `stride` argument, not a fixed 8 pixels a cell.", _bump_variant(fixed_stride=True)),
        ("clip each side at 0 first (np.clip(x1 - x0, 0, None)): an inverted box has no size, so it gets the "
         "smallest width.", _bump_variant(unclipped=True)),
        ("the digit's size is sqrt(w h), the side of a square of its area, not its longest side.",
         _bump_variant(longest=True)),
        ("the width must grow with the digit: one width for every box is the fixed bump of lesson 2.",
         _bump_variant(constant=True)),
        ("the digit's size is sqrt(w h), the side of a square of its area (the geometric mean of the sides), not "
         "the mean side (w + h) / 2.", _bump_variant(mean=True)),
        ("the width has a floor: it is at least 0.5 cells (max(0.5, ...)), so a tiny digit or an unused slot "
         "(zeros) still gets a bump, not a width near 0.", _bump_variant(floor=False)),
        ("0.5 is a floor, not a ceiling: the width is at least 0.5 cells (np.maximum), and grows past it with "
         "the digit; np.minimum caps every width at 0.5.", _bump_variant(ceiling=True)),
        float64_mistake(_bump_reference, "the widths", "float32[...]"),
    ], run=lambda func, case: func(*case["args"], **case["kwargs"]), exact_dtype=True),
    numpy_exercise("detector_targets", L5, 4, _targets_reference, _targets_fixed, _targets_random, [
        ("bumps as wide as sigma_fn says: a fixed width (sigma=1) for every digit ignores its size.",
         _targets_variant(fixed=True)),
        ("a bump of width s is the unit bump to the power 1 / s**2 (exp(-d^2 / 2) ** (1 / s^2) = "
         "exp(-d^2 / (2 s^2))), not 1 / s.", _targets_variant(power=1)),
        ("the power is inverted: a bump of width s is the unit bump to the power 1 / s**2, not s**2 (a power "
         "above 1 narrows the bump, so large digits got the narrower bumps).", _targets_variant(power=-2)),
        ("where two bumps meet, a cell keeps the larger one (np.maximum), not their sum.",
         _targets_variant(combine="sum")),
        ("the weight of a cell that learns a box is the heat there, not 1.", _targets_variant(weight="ones")),
        ("only the cells that box_fn marks learn a box: elsewhere the weight is 0, not the heat.",
         _targets_variant(weight="everywhere")),
        ("a cell learns the class of the same digit whose box it learns: the nearest centre cell (as box_targets), "
         "not the highest bump.", _targets_variant(owner="bump")),
        ("the class channel starts with the same weight as the box channel (the heat at the cell), not 1.",
         _targets_variant(class_weight=False)),
        ("on a tie (a cell as near to two centres) the class comes from the earlier slot, as the box does "
         "(box_fn picks the first nearest, like np.argmin), not from the later one.",
         _targets_variant(owner="later")),
    ], run=_run_targets),
    numpy_exercise("detect_digits", L5, 4, _detect_reference, _detect_fixed, _detect_random, [
        ("run nms_fn on each canvas's peaks: without it a digit with two peaks is reported twice.",
         _detect_variant(use_nms=False)),
        ("score each detection presence x the probability of its class, not presence alone.",
         _detect_variant(joint=False)),
        ("report each kept peak once, with its most probable class (argmax), not under every class.",
         _detect_variant(all_labels=True)),
        ("drop the detections scoring below min_score.", _detect_variant(use_min_score=False)),
        ("clip the boxes to the canvas (np.clip(boxes, 0, G * 8)): a box may not run past the edge.",
         _detect_variant(clip=False)),
        ("NMS ranks the peaks by their presence score (what find_peaks returns), not by the joint score.",
         _detect_variant(nms_on="joint")),
        ("pass `iou_threshold` on to nms_fn, not a fixed 0.5.", _detect_variant(fixed_iou=True)),
        ("rows and columns swapped: find_peaks returns rows (y) first, and maps are indexed [row, col].",
         _detect_variant(swap=True)),
        ("sort each canvas's detections by their final score (presence x class probability), best first: NMS "
         "returns them by presence alone, and the class probability can change the order.",
         _detect_variant(resort=False)),
    ], run=_run_detect, properties=_DETECT_PROPS),
)
