"""Checks for the exercises on the digits of a canvas: ``place_digit`` and ``tight_box`` (lesson 1); the
exercises on a canvas's labels are in ``labels``.

Each exercise has fixed public cases (small, with the arithmetic in the
note), random cases from real test-split digits, and its typical mistakes as
wrong implementations, so a failing hint can name the mistake.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import canvas as C
from mnistloc.grading.exercises.base import LESSONS, RANDOM_CASES, Property, numpy_exercise
from mnistloc.grading.exercises.outputs import value_of

L1 = LESSONS[0]


def _digits() -> np.ndarray:
    return C.load_digits("test", "bundled")[0]


# place_digit ------------------------------------------------------------------------------------------

def _place_case(canvas, digit, x, y, note) -> dict:
    return {"args": (canvas, digit, int(x), int(y)), "note": note}


def _place_fixed() -> list:
    d = _digits()
    grey = np.full((64, 64), 40, np.uint8)
    return [_place_case(np.zeros((64, 64), np.uint8), d[1], 30, 5, "x=30, y=5 on a black 64x64 canvas"),
            _place_case(np.zeros((64, 64), np.uint8), d[2], 36, 36, "x=36, y=36 (the bottom-right corner)"),
            _place_case(grey, d[3], 0, 10, "x=0, y=10 on a grey canvas (pixels 40)")]


def _place_random(rng) -> list:
    d, out = _digits(), []
    for _ in range(RANDOM_CASES):
        s = int(rng.integers(28, 129))
        canvas = rng.integers(0, 60, size=(s, s)).astype(np.uint8)
        x, y = rng.integers(0, s - 27, size=2)
        out.append(_place_case(canvas, d[rng.integers(len(d))], x, y, f"x={x}, y={y} on a noisy {s}x{s} canvas"))
    return out


def _run_place(func, case):
    canvas = np.array(case["args"][0])
    out = func(canvas, *case["args"][1:])
    return {"canvas": out, "given canvas unchanged": bool(np.array_equal(canvas, case["args"][0]))}


def _place_xy_swapped(canvas, digit, x, y):
    return C.place_digit(canvas, digit, y, x)


def _place_in_place(canvas, digit, x, y):
    canvas[y:y + 28, x:x + 28] = digit
    return canvas


def _place_added(canvas, digit, x, y):
    out = canvas.copy()
    out[y:y + 28, x:x + 28] += digit
    return out


def _place_off_by_one(canvas, digit, x, y):
    out = canvas.copy()
    out[y + 1:y + 29, x + 1:x + 29] = digit[: canvas.shape[0] - y - 1, : canvas.shape[1] - x - 1]
    return out


def _place_float(canvas, digit, x, y):
    return C.place_digit(canvas, digit, x, y).astype(np.float32)


def _place_blended(canvas, digit, x, y):
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = np.maximum(out[y:y + 28, x:x + 28], digit)
    return out


def _place_on_blank(canvas, digit, x, y):
    return C.place_digit(np.zeros_like(canvas), digit, x, y)


# tight_box ------------------------------------------------------------------------------------------

def _tight_fixed() -> list:
    dot = np.zeros((8, 10), np.uint8)
    dot[2, 5] = 255  # one pixel at row 2, column 5 -> [5, 2, 6, 3]
    edge = np.zeros((12, 20), np.uint8)
    edge[3:12, 14:20] = 9  # ink touching the right and bottom edges -> [14, 3, 20, 12]
    digit = np.zeros((40, 60), np.uint8)
    digit[5:33, 20:48] = _digits()[0]
    return [{"args": (dot,), "note": "one ink pixel at row 2, column 5 of an 8x10 image"},
            {"args": (edge,), "note": "ink in rows 3-11 and columns 14-19 of a 12x20 image"},
            {"args": (digit,), "note": "a digit pasted at x=20, y=5 on a 40x60 image"},
            {"args": (np.zeros((28, 28), np.uint8),), "note": "an image with no ink"}]


def _tight_random(rng) -> list:
    out, digits = [], _digits()
    for _ in range(RANDOM_CASES):
        h, w = rng.integers(28, 100, size=2)
        img = np.zeros((h, w), np.uint8)
        x, y = rng.integers(0, w - 27), rng.integers(0, h - 27)
        img[y:y + 28, x:x + 28] = digits[rng.integers(len(digits))]
        out.append({"args": (img,), "note": f"a digit at x={x}, y={y} on a {h}x{w} image"})
    return out


def _ink(img):
    return np.argwhere(np.asarray(img) > 0)  # [n, 2] rows, cols


def _tight_xy_swapped(img):
    return B.tight_box(img)[[1, 0, 3, 2]]


def _tight_inclusive(img):
    return B.tight_box(img) - np.float32([0, 0, 1, 1]) * (np.asarray(img) > 0).any()


def _tight_whole_image(img):
    return np.float32([0, 0, img.shape[1], img.shape[0]])


def _tight_no_empty(img):
    rc = _ink(img)
    return np.float32([rc[:, 1].min(), rc[:, 0].min(), rc[:, 1].max() + 1, rc[:, 0].max() + 1])


def _tight_argmax_unchecked(img):
    """The first and last ink column and row by argmax, never asking whether there is ink at all."""
    ink = np.asarray(img) > 0
    cols, rows = ink.any(0), ink.any(1)
    return np.float32([cols.argmax(), rows.argmax(), len(cols) - cols[::-1].argmax(), len(rows) - rows[::-1].argmax()])


def _tight_xywh(img):
    """The corners' x0, y0, then the width and height (xywh), where the exercise asks for x1, y1 (xyxy)."""
    return B.convert(B.tight_box(img), "xyxy", "xywh").astype(np.float32)


def _tight_bright_only(img):
    return B.tight_box(np.where(np.asarray(img) > 127, img, 0))


def _tight_row_major(img):
    """x0 and x1 from the columns of the first and last ink pixels in row-major order (the top ink row's first
    ink pixel, the bottom ink row's last), not the smallest and largest ink columns."""
    rc = _ink(img)
    if not len(rc):
        return np.zeros(4, np.float32)
    return np.float32([rc[0, 1], rc[:, 0].min(), rc[-1, 1] + 1, rc[:, 0].max() + 1])


# properties: what every right answer has, named when no catalogued mistake matches ---------------------

def _placed(case, got) -> bool:
    canvas, digit, x, y = case["args"]
    out = np.asarray(got["items"]["canvas"]["value"])
    return out.shape == canvas.shape and np.array_equal(out[y:y + 28, x:x + 28], digit)


def _outside_kept(case, got) -> bool:
    canvas, _, x, y = case["args"]
    out, keep = np.asarray(got["items"]["canvas"]["value"]), np.ones(canvas.shape, bool)
    keep[y:y + 28, x:x + 28] = False
    return out.shape == canvas.shape and np.array_equal(out[keep], canvas[keep])


def _ink_inside(case, got) -> bool:
    box, rc = value_of(got), _ink(case["args"][0])
    if box.shape != (4,):
        return False
    return not len(rc) or bool(box[0] <= rc[:, 1].min() and box[2] > rc[:, 1].max()
                               and box[1] <= rc[:, 0].min() and box[3] > rc[:, 0].max())


def _no_margin(case, got) -> bool:
    box, rc = value_of(got), _ink(case["args"][0])
    return not len(rc) or bool(box[2] - box[0] <= np.ptp(rc[:, 1]) + 1 and box[3] - box[1] <= np.ptp(rc[:, 0]) + 1)


_PLACE_PROPS = [Property("the digit appears unchanged with its top-left pixel at column x, row y", _placed),
                Property("every canvas pixel outside the digit's square keeps its value", _outside_kept)]
_TIGHT_PROPS = [Property("every ink pixel (> 0) lies inside the box (x0 <= column < x1, y0 <= row < y1)",
                         _ink_inside),
                Property("the box is no larger than the ink: its first and last rows and columns hold ink",
                         _no_margin)]

EXERCISES = [
    numpy_exercise("place_digit", L1, 2, C.place_digit, _place_fixed, _place_random, [
        ("x and y swapped: x counts columns (the second index of the canvas) and y counts rows (the first).",
         _place_xy_swapped),
        ("the canvas given was modified in place: write into a copy (canvas.copy()) and return that.",
         _place_in_place),
        ("the digit's pixels should replace the canvas pixels (use =, not +=).", _place_added),
        ("off by one: the top-left pixel of the digit goes exactly at (x, y).", _place_off_by_one),
        ("the canvas should stay uint8 (pixels 0-255); do not convert it to float.", _place_float),
        ("the digit was blended in with np.maximum: its pixels replace the canvas pixels under it, the digit's "
         "dark background too (on a grey canvas its square comes out black around the stroke).", _place_blended),
        ("the result started from a blank canvas: it is the given canvas with the digit on it, so every pixel "
         "outside the digit's square keeps the given canvas's value (start from a copy, not from zeros).",
         _place_on_blank),
    ], run=_run_place, properties=_PLACE_PROPS),
    numpy_exercise("tight_box", L1, 2, B.tight_box, _tight_fixed, _tight_random, [
        ("x and y swapped: return [x0, y0, x1, y1] with x from the columns (axis 1) and y from the rows (axis 0).",
         _tight_xy_swapped),
        ("off by one: the max is exclusive, x1 = last ink column + 1 (so width = x1 - x0).", _tight_inclusive),
        ("an image with no ink gave the whole frame [0, 0, W, H]: argmax of a row of False is 0, so check that "
         "there is any ink first; no ink gives [0, 0, 0, 0].", _tight_argmax_unchecked),
        ("that is the whole image's frame, not the box around the ink: ink means image > 0 (0 is background).",
         _tight_whole_image),
        ("an image with no ink should give [0, 0, 0, 0], not an error.", _tight_no_empty),
        ("that is xywh (x0, y0, width, height): the box is xyxy, so its last two numbers are the corner x1, y1 "
         "just past the last ink column and row, not the width and height.", _tight_xywh),
        ("only bright pixels were counted as ink: ink means image > 0, so the faint edges of the strokes count "
         "too (no brightness threshold).", _tight_bright_only),
        ("x0 and x1 came from the first and last ink pixels in reading (row-major) order, which lie in the top "
         "and the bottom ink rows: x0 is the smallest column holding ink in any row, and x1 the largest such "
         "column + 1, so look at the columns of all the ink pixels.", _tight_row_major),
    ], properties=_TIGHT_PROPS),
]
