"""A failing box exercise, shown: the expected and the student's boxes on a public case, in a notebook.

``check_exercise`` (a lesson's test cell) calls ``show_mismatch`` when a box
exercise (``SCENES``) fails on its public cases and the cell runs in a Jupyter
kernel: the first public case where the student's function and the reference
disagree is drawn, the expected boxes green and the student's red and dashed,
above the hint. Where a case holds many boxes, those with the largest error
are drawn; a box of zero width or height (which a rectangle cannot show) is
marked with a cross of its colour. Only public cases are ever drawn (hidden
cases never reach a picture), and a picture that cannot be made is skipped:
the hint is what counts.
"""
from __future__ import annotations

import sys

import numpy as np

from mnistloc.grading.exercises.outputs import compare

MAX_CELLS = 3  # boxes_from_cells: the differing cells drawn, largest error first


def _boxes(value) -> np.ndarray | None:
    """``value``'s boxes as float[K, 4], or None when it is not an array of boxes."""
    try:
        b = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return b.reshape(-1, 4) if b.ndim and b.size and b.shape[-1] == 4 and np.isfinite(b).all() else None


def _blank(*boxes) -> np.ndarray:
    """An empty canvas large enough for every box (at least 32 px)."""
    side = max([32.0] + [float(np.max(b[:, 2:])) + 4 for b in boxes if b is not None and len(b)])
    return np.zeros((int(min(side, 512)), int(min(side, 512))), np.uint8)


def _tight_box(case, got, expected):
    image = np.asarray(case["args"][0])
    if image.ndim != 2:
        return None
    return image, expected, got, None, "the image: expected box (green), yours (red, dashed)"


def _union_box(case, got, expected):
    boxes, mask = (np.asarray(a) for a in case["args"])
    if got is None or len(got) != len(expected):
        return None
    i = int(np.argmax(np.abs(got - expected).max(-1)))  # the canvas where they differ most
    digits = boxes[i][mask[i]].reshape(-1, 4).astype(np.float64)
    return (_blank(digits, expected[i:i + 1], got[i:i + 1]), expected[i:i + 1], got[i:i + 1], digits,
            f"canvas {i}: its digits' boxes (grey), the expected union (green), yours (red, dashed)")


def _boxes_from_cells(case, got, expected):
    if got is None or len(got) != len(expected):
        return None
    error = np.abs(got - expected).max(-1)  # [K] the largest coordinate error of each cell's box
    area = np.prod(np.clip(expected[:, 2:] - expected[:, :2], 0, None), -1)
    order = np.lexsort((-area, -error))  # largest error first; on equal errors, the cell with a real box
    bad = order[error[order] > 1e-3][:MAX_CELLS]
    if not len(bad):
        return None
    return (_blank(expected[bad], got[bad]), expected[bad], got[bad], None,
            f"the {len(bad)} cells with the largest error: expected boxes (green), yours (red, dashed)")


def _mark_zero_size(ax, boxes: np.ndarray, colour: str) -> int:
    """A cross of ``colour`` at each box of zero width or height (a rectangle would not show); their count."""
    flat = boxes[(boxes[:, 2] - boxes[:, 0] <= 0) | (boxes[:, 3] - boxes[:, 1] <= 0)]
    ax.autoscale(False)  # the canvas's limits stay
    for x0, y0, x1, y1 in flat:  # draw_canvas puts pixel i at [i - 0.5, i + 0.5]
        ax.plot([(x0 + x1) / 2 - 0.5], [(y0 + y1) / 2 - 0.5], marker="x", markersize=9, markeredgewidth=2,
                color=colour, linestyle="none", clip_on=False)  # whole even on the canvas edge
    return len(flat)


SCENES = {"tight_box": _tight_box, "union_box": _union_box, "boxes_from_cells": _boxes_from_cells}
"""Box exercises and how to draw one of their cases: ``(case, got boxes, expected boxes) -> (image, expected,
got, context boxes or None, caption)``, or None when the case cannot be drawn."""


def mismatch_figure(name: str, case: dict, got: dict, expected: dict):
    """The picture of one public case of box exercise ``name``, or None.

    Args:
        name: a key of ``SCENES``.
        case: the public case (its ``args``).
        got, expected: the reduced outputs (``Exercise.call``) of the student's function and the reference.

    Returns:
        matplotlib.figure.Figure, or None when the outputs are not boxes that can be drawn.
    """
    exp, mine = _boxes(expected.get("value")), _boxes(got.get("value"))
    if exp is None or mine is None or name not in SCENES:
        return None
    scene = SCENES[name](case, mine, exp)
    if scene is None:
        return None
    image, truth, yours, context, caption = scene
    from mnistloc import viz

    fig = viz._figure(3.2, 3.4)
    ax = fig.add_subplot()
    if context is not None:
        viz._draw_boxes(ax, context, [None] * len(context), [None] * len(context), "#aaaaaa", dashed=False,
                        below=False)
    viz.draw_canvas(ax, image, truth, pred_boxes=yours)
    if _mark_zero_size(ax, truth, viz.TRUE_COLOUR) + _mark_zero_size(ax, yours, viz.PRED_COLOUR):
        caption += "; a cross is a box of zero width or height"
    ax.set_title(f"{name}: {caption}", fontsize=7, wrap=True)
    return fig


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (where a figure can be displayed)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_mismatch(ex, func) -> bool:
    """Displays the first public case where ``func`` and exercise ``ex``'s reference give different boxes.

    Returns:
        True when a picture was displayed (in a notebook, for a box exercise), else False.
    """
    if ex.name not in SCENES or not in_notebook():
        return False
    for case in ex.cases(None):  # public cases only: nothing hidden is ever drawn
        got, expected = ex.call(func, case), ex.call(ex.reference, case)
        if compare(got, expected) is not None:
            fig = mismatch_figure(ex.name, case, got, expected)
            if fig is None:
                return False
            from IPython.display import display

            display(fig)
            return True
    return False
