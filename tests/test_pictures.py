"""A failing box exercise's picture: expected and got boxes on a public case, in a notebook only."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from mnistloc import boxes as B
from mnistloc.grading import pictures
from mnistloc.grading.registry import exercise


def _rectangles(fig, colour):
    """``xyxy`` of every rectangle of ``colour`` in the figure (draw_canvas puts pixel i at [i - 0.5, i + 0.5])."""
    from matplotlib.colors import to_hex

    out = []
    for patch in fig.axes[0].patches:
        if isinstance(patch, Rectangle) and to_hex(patch.get_edgecolor()) == colour:
            x, y = patch.get_xy()
            out.append((x + 0.5, y + 0.5, x + 0.5 + patch.get_width(), y + 0.5 + patch.get_height()))
    return out


def _inclusive(img):  # a typical tight_box mistake: the max pixel instead of one past it
    return B.tight_box(img) - np.float32([0, 0, 1, 1]) * (np.asarray(img) > 0).any()


def test_tight_box_is_drawn_on_its_image_expected_green_and_yours_red():
    ex = exercise("tight_box")
    case = ex.fixed()[0]  # one ink pixel at row 2, column 5: the box (5, 2, 6, 3); inclusive: (5, 2, 5, 2)
    fig = pictures.mismatch_figure("tight_box", case, ex.call(_inclusive, case), ex.call(ex.reference, case))
    assert _rectangles(fig, "#2ecc40") == [(5, 2, 6, 3)]
    assert _rectangles(fig, "#ff4136") == [(5, 2, 5, 2)]
    assert fig.axes[0].images[0].get_array().shape == np.asarray(case["args"][0]).shape


def test_union_box_draws_the_canvas_where_it_differs_most_with_its_digits_in_grey():
    ex = exercise("union_box")
    case = ex.fixed()[0]

    def first_only(boxes, mask):  # the union of canvas 0 is (10, 5, 60, 40); its first box is (10, 20, 30, 40)
        return np.where(mask[:, :1], boxes[:, 0], 0).astype(np.float32)

    fig = pictures.mismatch_figure("union_box", case, ex.call(first_only, case), ex.call(ex.reference, case))
    # |got - expected| per canvas: 0: max(0, 15, 30, 0) = 30; 1: 0; 2: 0; 3: union (5, 10, 90, 90) vs
    # (5, 60, 20, 90): max(0, 50, 70, 0) = 70, so canvas 3 is drawn.
    assert _rectangles(fig, "#2ecc40") == [(5, 10, 90, 90)]
    assert _rectangles(fig, "#ff4136") == [(5, 60, 20, 90)]
    assert sorted(_rectangles(fig, "#aaaaaa")) == [(5, 60, 20, 90), (70, 10, 90, 30)]


def test_boxes_from_cells_draws_the_cells_that_differ():
    ex = exercise("boxes_from_cells")
    case = next(c for c in ex.fixed() if "(10, 20, 32, 46)" in c["note"])  # one cell (row 4, column 2) with
    # distances, in a batch of one map; the others give the point at their centre

    def unscaled(distances, *, stride=8):  # distances in cells taken as pixels
        d = np.asarray(distances, np.float32)
        h, w = d.shape[-3:-1]
        cx = (np.arange(w) + 0.5)[None, :] * stride + 0 * np.arange(h)[:, None]
        cy = (np.arange(h) + 0.5)[:, None] * stride + 0 * np.arange(w)[None, :]
        return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1).astype(np.float32)

    fig = pictures.mismatch_figure("boxes_from_cells", case, ex.call(unscaled, case), ex.call(ex.reference, case))
    # Only cell (4, 2) differs: centre (20, 36); expected (10, 20, 32, 46), unscaled (18.75, 34, 21.5, 37.25).
    assert _rectangles(fig, "#2ecc40") == [(10, 20, 32, 46)]
    assert np.allclose(_rectangles(fig, "#ff4136"), [(18.75, 34, 21.5, 37.25)])


def test_what_is_not_boxes_gets_no_picture_and_nothing_shows_outside_a_notebook():
    ex = exercise("tight_box")
    case = ex.fixed()[0]
    text = {"type": "str", "text": "no"}
    assert pictures.mismatch_figure("tight_box", case, text, ex.call(ex.reference, case)) is None
    assert pictures.mismatch_figure("iou", case, ex.call(_inclusive, case), ex.call(ex.reference, case)) is None
    assert not pictures.in_notebook()
    assert pictures.show_mismatch(ex, _inclusive) is False  # pytest is no Jupyter kernel


@pytest.mark.slow
def test_a_failing_box_check_in_a_notebook_shows_the_picture_above_its_hint_and_a_hidden_one_never():
    import nbclient
    import nbformat

    define = ("import numpy as np\nfrom mnistloc import boxes as B\nfrom mnistloc.checks import check_exercise\n"
              "def tight_box(img):\n"
              "    return B.tight_box(img) - np.float32([0, 0, 1, 1]) * (np.asarray(img) > 0).any()\n"
              "def iou(a, b):\n    return 0.5\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(define),
                nbformat.v4.new_code_cell('check_exercise("tight_box", tight_box)'),
                nbformat.v4.new_code_cell('import os\nos.environ["MNISTLOC_SECRET_SEED"] = "7"\n'
                                          'check_exercise("tight_box", tight_box, secret=True)'),
                nbformat.v4.new_code_cell('check_exercise("iou", iou)')]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True).execute()
    outputs = [cell.outputs for cell in nb.cells[1:]]
    pngs = [sum("image/png" in o.get("data", {}) for o in out) for out in outputs]
    errors = [[o.get("evalue", "") for o in out if o.output_type == "error"] for out in outputs]
    assert pngs == [1, 0, 0]  # the public box check only: never a hidden case, never a non-box exercise
    assert all(len(e) == 1 and e[0] for e in errors)  # every check still fails with its hint
    assert "tight_box" in errors[0][0] and outputs[0][0].output_type == "display_data"  # picture first


def _crosses(fig, colour):
    """Centres (in box coordinates) of the crosses of ``colour``: the marks of zero-size boxes."""
    from matplotlib.colors import to_hex

    return [(float(line.get_xdata()[0]) + 0.5, float(line.get_ydata()[0]) + 0.5) for line in fig.axes[0].lines
            if line.get_marker() == "x" and to_hex(line.get_color()) == colour]


def test_a_zero_size_box_is_marked_with_a_cross_of_its_colour():
    ex = exercise("tight_box")
    case = ex.fixed()[0]  # the inclusive box (5, 2, 5, 2) has zero width and height: a rectangle shows nothing
    fig = pictures.mismatch_figure("tight_box", case, ex.call(_inclusive, case), ex.call(ex.reference, case))
    assert _crosses(fig, "#ff4136") == [(5, 2)] and _crosses(fig, "#2ecc40") == []
    assert "zero width or height" in fig.axes[0].get_title()
    assert fig.axes[0].get_xlim() == (-0.5, 9.5)  # the cross does not move the canvas's limits (10 columns)


def test_boxes_from_cells_draws_the_cells_with_the_largest_error_real_boxes_first():
    ex = exercise("boxes_from_cells")
    case = next(c for c in ex.fixed() if "(10, 20, 32, 46)" in c["note"])  # cell (4, 2) holds a box; every other
    # cell the point at its centre

    def corners(distances, *, stride=8):  # cell centres taken at the top-left corner: every box moves by 4 px
        d = np.asarray(distances, np.float32) * stride
        h, w = d.shape[-3:-1]
        cx = np.arange(w)[None, :] * stride + 0 * np.arange(h)[:, None]
        cy = np.arange(h)[:, None] * stride + 0 * np.arange(w)[None, :]
        return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1).astype(np.float32)

    fig = pictures.mismatch_figure("boxes_from_cells", case, ex.call(corners, case), ex.call(ex.reference, case))
    # Every cell's box is off by 4 px; the one real box, (10, 20, 32, 46), comes first (got (6, 16, 28, 42)),
    # then two zero-size ones, which get crosses: the picture is no longer a blank square.
    green = _rectangles(fig, "#2ecc40")
    assert green[0] == (10, 20, 32, 46) and len(green) == pictures.MAX_CELLS
    assert np.allclose(_rectangles(fig, "#ff4136")[0], (6, 16, 28, 42))
    assert len(_crosses(fig, "#2ecc40")) == len(_crosses(fig, "#ff4136")) == pictures.MAX_CELLS - 1
