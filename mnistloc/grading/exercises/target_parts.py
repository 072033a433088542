"""Checks for the target encoder's parts: ``heatmap_targets`` and ``box_targets`` (references in ``mnistloc.targets``).

Fixed public cases carry their arithmetic in the note; random cases use
canvas-like boxes at several canvas sizes, strides and widths. Each typical
mistake is a wrong implementation written as a student would, so a failing
hint can name it; every mistake differs from the reference on some public case.
"""
from __future__ import annotations

import numpy as np

from mnistloc import targets as T
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, call_kwargs, numpy_exercise
from mnistloc.grading.exercises.outputs import value_of

L2 = LESSONS[1]


def _boxes_case(boxes, mask, kwargs: dict, note: str) -> dict:
    return {"args": (np.asarray(boxes, np.float32).reshape(len(mask), -1, 4), np.asarray(mask, bool)),
            "kwargs": kwargs, "note": note}


HAND = (10, 20, 32, 46)  # centre (21, 33) px: column 21 // 8 = 2 (21 / 8 = 2.6), row 33 // 8 = 4
PAIR = [[10, 20, 32, 46], [34, 20, 56, 46]]  # centres (21, 33) and (45, 33): cells (4, 2) and (4, 5)


def _random_boxes(rng, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas-like boxes (n, 2, 4) inside ``size`` pixels, zeros in unused slots, and their mask."""
    wh = rng.integers(4, 29, size=(n, 2, 2))
    xy = rng.integers(0, size - wh + 1)
    mask = rng.random((n, 2)) < 0.7
    return np.where(mask[..., None], np.concatenate([xy, xy + wh], -1), 0).astype(np.float32), mask


def _grid(rng) -> dict:
    size = int(rng.choice([64, 96, 128]))
    return {"size": size, "stride": int(rng.choice([4, 8, 16] if size != 96 else [4, 8]))}


# heatmap_targets -----------------------------------------------------------------------------------

def _heat_fixed() -> list:
    k = {"size": 128, "stride": 8, "sigma": 1.0}
    return [_boxes_case([HAND, [0, 0, 0, 0]], [[True, False]], k,
                        f"one box {list(HAND)} (centre (21, 33) px: row 33 // 8 = 4, column 21 // 8 = 2) and an "
                        "unused slot, size=128, stride=8, sigma=1: 1 at (4, 2), exp(-1/2) = 0.61 at (4, 3)"),
            _boxes_case(PAIR, [[True, True]], k, f"two boxes {PAIR} (centre cells (4, 2) and (4, 5)): cell "
                        "(4, 3) gets max(exp(-1/2), exp(-4/2)) = 0.61"),
            _boxes_case([[0, 0, 0, 0], [0, 0, 0, 0]], [[False, False]], k, "an empty canvas (all zeros)"),
            _boxes_case([HAND, [0, 0, 0, 0]], [[True, False]], {"size": 64, "stride": 4, "sigma": 1.5},
                        f"the box {list(HAND)} with size=64, stride=4, sigma=1.5 (cells of 4 px; centre cell "
                        "(33 // 4, 21 // 4) = (8, 5); (8, 7) gets exp(-4 / (2 * 1.5^2)) = 0.41)")]


def _heat_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        kw = {**_grid(rng), "sigma": float(rng.choice([0.5, 1.0, 1.5, 2.0]))}
        n = int(rng.integers(1, 5))
        out.append(_boxes_case(*_random_boxes(rng, n, kw["size"]), kw, f"{n} random canvases, {kw}"))
    return out


def _heat_variant(*, swap=False, cell=np.floor, corner=False, exact=False, combine="max", use_mask=True,
                  pixels=False, two=True, squared=True, root=False, doubled=False):
    def heatmap(boxes, mask, *, size=128, stride=8, sigma=1.0):
        b, m, g = np.asarray(boxes, np.float64), np.asarray(mask, bool), size // stride
        x, y = (b[..., 0], b[..., 1]) if corner else ((b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2)
        if swap:
            x, y = y, x
        if exact:  # the Gaussian around the exact centre, in cells
            col, row = x / stride - 0.5, y / stride - 0.5
        else:
            col, row = np.clip(cell(x / stride), 0, g - 1), np.clip(cell(y / stride), 0, g - 1)
        i = np.arange(g)
        d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2  # [N, K, G, G]
        d2 = np.sqrt(d2) if root else d2
        spread = (2 * sigma) ** 2 if doubled else (2 if two else 1) * sigma ** (2 if squared else 1)
        heat = np.exp(-d2 * (stride ** 2 if pixels else 1) / spread)
        heat = heat * (m[..., None, None] if use_mask else 1)
        out = heat.max(1, initial=0) if combine == "max" else heat.sum(1)
        return (np.minimum(out, 1) if combine == "sum, at most 1" else out).astype(np.float32)
    return heatmap


# box_targets ---------------------------------------------------------------------------------------

def _box_fixed() -> list:
    k = {"size": 128, "stride": 8, "radius": 1}
    return [_boxes_case([HAND, [0, 0, 0, 0]], [[True, False]], k,
                        f"one box {list(HAND)}, size=128, stride=8, radius=1 (centre cell (4, 2), whose centre is "
                        "(20, 36) px: (l, t, r, b) = (20 - 10, 36 - 20, 32 - 20, 46 - 36) / 8 = (1.25, 2, 1.5, "
                        "1.25); the 3x3 cells around it learn the box)"),
            _boxes_case([[10, 20, 32, 46], [18, 20, 40, 46]], [[True, True]], k,
                        "two boxes [10, 20, 32, 46] and [18, 20, 40, 46], centre cells (4, 2) and (4, 3): cell (4, 2) "
                        "is nearer to the first centre (distance 0 against 1) and learns the first box"),
            _boxes_case([[10, 20, 32, 46], [26, 20, 48, 46]], [[True, True]], k,
                        "two boxes [10, 20, 32, 46] and [26, 20, 48, 46], centre cells (4, 2) and (4, 4): cell "
                        "(4, 3) is as near to both and learns the first slot's box"),
            _boxes_case([[0, 0, 0, 0], [0, 0, 0, 0]], [[False, False]], k, "an empty canvas (all zeros)"),
            _boxes_case([HAND, [0, 0, 0, 0]], [[True, False]], {"size": 64, "stride": 4, "radius": 2},
                        f"the box {list(HAND)} with size=64, stride=4, radius=2 (the 5x5 cells around (8, 5))"),
            _boxes_case([[2, 3, 22, 25], [0, 0, 0, 0]], [[True, False]], k,
                        "one box [2, 3, 22, 25] by the top-left corner (centre (12, 14) px, centre cell (1, 1)) and "
                        "an unused slot: the 3x3 cells around (1, 1), cell (0, 0) included, all learn this box (an "
                        "unused slot's zeros are no digit at cell (0, 0))")]


def _box_random(rng) -> list:
    out = []
    for _ in range(RANDOM_CASES):
        kw = {**_grid(rng), "radius": int(rng.integers(0, 3))}
        n = int(rng.integers(1, 5))
        out.append(_boxes_case(*_random_boxes(rng, n, kw["size"]), kw, f"{n} random canvases, {kw}"))
    return out


def _box_variant(*, pixels=False, corner=False, swap=False, signs=False, circle=False, use_mask=True,
                 later=False, zero=True, overwrite=False, own_mask=True):
    def box_targets(boxes, mask, *, size=128, stride=8, radius=1):
        b, m, g = np.asarray(boxes, np.float64), np.asarray(mask, bool), size // stride
        centre = np.clip(np.floor((b[..., :2] + b[..., 2:]) / 2 / stride), 0, g - 1)  # [N, K, 2] col, row
        i = np.arange(g)
        dr, dc = i[:, None] - centre[..., 1, None, None], i[None, :] - centre[..., 0, None, None]  # [N, K, G, G]
        near = (dr ** 2 + dc ** 2 <= radius ** 2) if circle else ((np.abs(dr) <= radius) & (np.abs(dc) <= radius))
        used = m if use_mask else np.ones_like(m)
        d2 = np.where(used[..., None, None] | (not own_mask), dr ** 2 + dc ** 2, np.inf)  # who owns a cell
        owner = (d2.shape[1] - 1 - np.argmin(d2[:, ::-1], 1)) if later else np.argmin(d2, 1)  # [N, G, G]
        if overwrite:  # each slot in turn writes its block: the last slot near a cell owns it
            mine = near & used[..., None, None]  # [N, K, G, G]
            owner = np.where(mine.any(1), mine.shape[1] - 1 - np.argmax(mine[:, ::-1], 1), owner)
        cells = (near & used[..., None, None]).any(1)
        own = np.take_along_axis(b, owner.reshape(len(b), -1, 1), 1).reshape(len(b), g, g, 4)
        ctr = (i + (0 if corner else 0.5)) * stride
        cx, cy = (ctr[:, None], ctr[None, :]) if swap else (ctr[None, :], ctr[:, None])
        d = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], -1)
        d = (-d if signs else d) / (1 if pixels else stride)
        return (np.where(cells[..., None], d, 0) if zero else d).astype(np.float32), cells
    return box_targets


# properties: what every right answer has, named when no catalogued mistake matches ---------------------

def _centres(case):
    """Each used box's centre cell: (canvas, row, col) triples."""
    boxes, mask = case["args"]
    g, stride = case["kwargs"]["size"] // case["kwargs"]["stride"], case["kwargs"]["stride"]
    c = np.clip(np.floor((boxes[..., :2] + boxes[..., 2:]) / 2 / stride), 0, g - 1).astype(int)
    return [(n, c[n, k, 1], c[n, k, 0]) for n, k in zip(*np.nonzero(mask))]


def _heat_range(case, got) -> bool:
    v = value_of(got)
    return bool(np.all((v >= 0) & (v <= 1)))


def _heat_peaks(case, got) -> bool:
    v = value_of(got)
    return all(np.isclose(v[n, r, c], 1) for n, r, c in _centres(case))


def _heat_empty(case, got) -> bool:
    v = value_of(got)
    return bool(np.all(v[~np.asarray(case["args"][1]).any(1)] == 0))


def _box_sizes(case, got) -> bool:
    d, cells = (np.asarray(i["value"]) for i in got["items"])
    ok = []
    for n, r, c in _centres(case):  # the centre cell learns its own box, or a nearer one's
        w, h = d[n, r, c, 0] + d[n, r, c, 2], d[n, r, c, 1] + d[n, r, c, 3]
        b = case["args"][0][n] / case["kwargs"]["stride"]
        ok.append(bool(cells[n, r, c]) and any(np.isclose(w, x1 - x0) and np.isclose(h, y1 - y0)
                                                for x0, y0, x1, y1 in b[case["args"][1][n]]))
    return all(ok)


def _box_zeros(case, got) -> bool:
    d, cells = (np.asarray(i["value"]) for i in got["items"])
    return bool(np.all(d[~cells.astype(bool)] == 0))


_HEAT_PROPS = [Property("heatmap values lie within [0, 1]", _heat_range),
               Property("each digit's centre cell holds exactly 1", _heat_peaks),
               Property("a canvas with no digit gives a map of zeros", _heat_empty)]
_BOX_PROPS = [Property("at a digit's centre cell, l + r is the box's width and t + b its height, in cells",
                       _box_sizes),
              Property("cells that learn no box hold zeros", _box_zeros)]

_XY = "x and y swapped: x goes with columns (the last grid axis), y with rows."
_MASK = "unused slots (mask False) must add nothing: their zero boxes put a digit at the corner cell (0, 0)."


EXERCISES = (
    numpy_exercise("heatmap_targets", L2, 3, T.heatmap_targets, _heat_fixed, _heat_random, [
        (_XY, _heat_variant(swap=True)),
        ("the centre cell is floor(centre / stride), the cell that holds the centre; np.round picks the "
         "nearest cell border instead.", _heat_variant(cell=np.round)),
        ("the centre cell holds the box's centre ((x0 + x1) / 2, (y0 + y1) / 2), not its top-left corner.",
         _heat_variant(corner=True)),
        ("no 1 at the centre: measure distances between cells (whole numbers), from the centre cell, not from "
         "the exact centre.", _heat_variant(exact=True)),
        ("no 1 at the centre: the centre cell is the whole cell floor(centre / stride); the fractional position "
         "centre / stride puts the peak between cells.", _heat_variant(cell=lambda v: v)),
        ("two digits: keep the larger bump in each cell (np.maximum), not their sum.", _heat_variant(combine="sum")),
        ("two digits: keep the larger bump in each cell (np.maximum), not their sum (even clipped at 1).",
         _heat_variant(combine="sum, at most 1")),
        (_MASK, _heat_variant(use_mask=False)),
        ("sigma is in cells: measure the distances in cells, not pixels.", _heat_variant(pixels=True)),
        ("the Gaussian divides by 2 sigma^2: the factor 2 is missing.", _heat_variant(two=False)),
        ("the Gaussian divides by 2 sigma^2: sigma is squared too.", _heat_variant(squared=False)),
        ("the Gaussian divides by 2 sigma^2, two times sigma squared, not by (2 sigma)^2 = 4 sigma^2: only sigma "
         "is squared, not the 2, so the bumps came out too wide.", _heat_variant(doubled=True)),
        ("the Gaussian takes the squared distance in cells, d^2 = (row - r)^2 + (col - c)^2, not its square root.",
         _heat_variant(root=True)),
    ], run=call_kwargs, properties=_HEAT_PROPS),
    numpy_exercise("box_targets", L2, 3, T.box_targets, _box_fixed, _box_random, [
        ("distances are in cells: divide the pixel distances by stride.", _box_variant(pixels=True)),
        ("a cell's centre is ((j + 0.5) * stride, (i + 0.5) * stride), not its top-left corner.",
         _box_variant(corner=True)),
        ("x and y swapped: a cell's centre x comes from its column j, y from its row i.", _box_variant(swap=True)),
        ("signs: l = cx - x0 and t = cy - y0, r = x1 - cx and b = y1 - cy (positive when the centre is inside "
         "the box).", _box_variant(signs=True)),
        ("the cells that learn a box are within `radius` in rows and in columns (a square: the 3x3 block for "
         "radius 1), not a circle.", _box_variant(circle=True)),
        ("unused slots (mask False) must not own cells either: a cell near a digit learns that digit's box, even "
         "where an unused slot's zero box (centre cell (0, 0)) lies nearer; leave the unused slots out of the "
         "choice of the nearest centre too.", _box_variant(own_mask=False)),
        ("unused slots (mask False) learn nothing: their zero boxes made cells near (0, 0) learn a box.",
         _box_variant(use_mask=False)),
        ("on a tie (a cell as near to two centres) the earlier slot wins, as np.argmin picks the first.",
         _box_variant(later=True)),
        ("a cell near two digits learns the box whose centre cell is nearest, not the slot written last.",
         _box_variant(overwrite=True)),
        ("cells that learn no box hold zeros (distances only where `cells` is True).", _box_variant(zero=False)),
    ], run=call_kwargs, properties=_BOX_PROPS),
)
