"""From boxes to the per-cell maps a detector trains on: the one target encoder of every case.

The grid has one cell per ``stride x stride`` pixels (``STRIDE = 8``): cell
(i, j) covers rows ``8i .. 8i+7`` and columns ``8j .. 8j+7``, and its centre is
at pixel ``(8j + 4, 8i + 4)`` (x, y). A digit's *centre cell* is the cell that
holds its box's centre. NumPy only: no TensorFlow here.

The parts, each a short public function (the course's exercises):
``heatmap_targets`` (the Gaussian centre heatmap), ``box_targets`` (per-cell
distances to the sides of the cell's digit), and a bump-width policy:
``SIGMA`` cells for every digit (``sigma="fixed"``) or ``size_sigmas``, a width
that grows with the digit (``sigma="size"``, CenterNet's idea). ``encode_targets``
puts them together; ``mnistloc.decoder`` reads the maps back.

Encoding, for ``n`` canvases of side ``size``, ``G = size / 8``:
    presence (n, G, G, 1): 1 at each digit's centre cell, a Gaussian bump
        around it, 0 far away; where bumps meet, the larger one.
    box (n, G, G, 5): a weight (the presence map, cut to the cells within
        ``RADIUS`` of a centre), then the distances ``(l, t, r, b)`` in cells from
        the cell's centre to the sides of the box of the cell's *owner*: the
        digit whose centre cell is nearest (ties: the earlier slot).
    class (n, G, G, 11): the same weight, then the owner's one-hot class.
    count (n, max_count + 1): the one-hot count, when ``max_count`` is given.
"""
from __future__ import annotations

import numpy as np

from mnistloc.canvas import NUM_CLASSES

STRIDE = 8
SIGMA = 1.0  # the fixed bump width, in cells
SIGMA_FLOOR = 0.5  # the narrowest size-aware bump, in cells
SIGMA_PER_CELL = 0.4  # size-aware width per cell of digit size: a median case-5 digit (20 px) gets SIGMA
RADIUS = 1  # cells around a centre that learn its box and class
SIGMA_POLICIES = ("fixed", "size")


# ---- checking arguments -----------------------------------------------------------------------

def boxes_and_mask(boxes, mask) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` as float64 (N, K, 4) and ``mask`` as bool (N, K), or a ValueError naming the one that is off."""
    b, m = np.asarray(boxes, dtype=np.float64), np.asarray(mask)
    if b.ndim != 3 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` should be xyxy pixel boxes of shape (N, K, 4). Got shape {b.shape}.")
    if m.shape != b.shape[:2] or not (m.dtype == bool or np.isin(m, (0, 1)).all()):
        raise ValueError(f"`mask` should be booleans of shape {b.shape[:2]} (N, K), one per box. "
                         f"Got dtype {m.dtype} and shape {m.shape}.")
    return b, m.astype(bool)


def grid_side(size, stride) -> int:
    """Cells a side, G = size / stride, or a ValueError naming the argument."""
    for name, value in (("size", size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` should be a whole number >= 1. Got {name}={value!r}.")
    if size % stride:
        raise ValueError(f"`size` should be a multiple of `stride` ({stride}). Got size={size}.")
    return size // stride


def _positive(value, name: str, *, whole: bool = False, zero: bool = False) -> None:
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (value >= 0 if zero else value > 0):
        want = ("a whole number" if whole else "a number") + (" >= 0" if zero else " > 0")
        raise ValueError(f"`{name}` should be {want}. Got {name}={value!r}.")


# ---- the parts ----------------------------------------------------------------------------------

def _centre_offsets(boxes: np.ndarray, g: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of every cell from each box's centre cell: dy [N, K, G, 1], dx [N, K, 1, G]."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [N, K, 2] x, y pixels
    cell = np.clip(np.floor(centre / stride), 0, g - 1)  # [N, K, 2] column, row
    grid = np.arange(g, dtype=np.float64)
    return grid[:, None] - cell[..., 1, None, None], grid[None, :] - cell[..., 0, None, None]


def _sigma_per_box(sigma, shape: tuple[int, int]) -> np.ndarray:
    """``sigma`` (a number, or one per box) as float64 [N, K, 1, 1], or a ValueError."""
    if np.ndim(sigma) == 0:
        _positive(sigma, "sigma")
        return np.full(shape + (1, 1), float(sigma))
    s = np.asarray(sigma, dtype=np.float64)
    if s.shape != shape or not (s > 0).all():
        raise ValueError(f"`sigma` should be a number > 0 or one per box, of shape {shape} (N, K), all > 0. "
                         f"Got shape {s.shape}" + (f" with minimum {s.min()}" if s.size else "") + ".")
    return s[..., None, None]


def heatmap_targets(boxes, mask, *, size: int = 128, stride: int = STRIDE, sigma=SIGMA) -> np.ndarray:
    """The centre heatmap: a Gaussian bump around each digit's centre cell (CenterNet).

    A digit's centre cell is the cell holding its box's centre: row
    ``floor((y0 + y1) / 2 / stride)``, column ``floor((x0 + x1) / 2 / stride)``.
    Cell (i, j) scores ``exp(-((i - row)^2 + (j - col)^2) / (2 sigma^2))``,
    distances in cells, so exactly 1 at the centre cell; where two bumps
    meet, each cell keeps the larger (the max, not the sum).

    Args:
        boxes (float[N, K, 4]): ``xyxy`` pixels.
        mask (bool[N, K]): the slots that hold a digit; the others add nothing.
        size: the canvas side in pixels.
        stride: pixels a cell side; ``size`` is a multiple of it.
        sigma (float | float[N, K]): the bump's width in cells, one for all or one per box.

    Returns:
        float32[N, G, G]: the heatmap, G = size / stride; 0 on an empty canvas.

    Raises:
        ValueError: shapes that disagree, or sizes that are not positive.
    """
    b, m = boxes_and_mask(boxes, mask)
    g = grid_side(size, stride)
    s = _sigma_per_box(sigma, m.shape)  # [N, K, 1, 1]
    dy, dx = _centre_offsets(b, g, stride)
    heat = np.exp(-(dx ** 2 + dy ** 2) / (2 * s ** 2)) * m[..., None, None]  # [N, K, G, G]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def owners(boxes, mask, *, size: int = 128, stride: int = STRIDE,
           radius: int = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Which digit each cell learns: the one whose centre cell is nearest, ties to the earlier slot.

    Args:
        boxes (float[N, K, 4]): ``xyxy`` pixels.
        mask (bool[N, K]): the slots that hold a digit.
        size, stride: the canvas side and the cell side, in pixels.
        radius: cells (in rows and in columns) around a centre cell that learn its digit.

    Returns:
        (owner, cells): int64[N, G, G], the slot each cell would learn (0 where no
        digit is near); bool[N, G, G], the cells within ``radius`` of some digit's centre cell.
    """
    b, m = boxes_and_mask(boxes, mask)
    g = grid_side(size, stride)
    _positive(radius, "radius", whole=True, zero=True)
    dy, dx = _centre_offsets(b, g, stride)
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & m[..., None, None]  # [N, K, G, G]
    d2 = np.where(m[..., None, None], dy ** 2 + dx ** 2, np.inf)  # [N, K, G, G] squared cells
    owner = np.argmin(d2, axis=1) if b.shape[1] else np.zeros((len(b), g, g), np.int64)
    return owner.astype(np.int64), near.any(axis=1)


def box_targets(boxes, mask, *, size: int = 128, stride: int = STRIDE,
                radius: int = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the distances from the cell's centre to the sides of its digit's box.

    The cells that learn a box are those within ``radius`` cells (in rows and
    in columns) of a digit's centre cell (``heatmap_targets``): the 3x3 block
    for ``radius=1``. Each learns the box of the digit whose centre cell is
    nearest (squared distance in cells; on a tie, the earlier slot). Cell
    (i, j) has its centre at pixel ``(cx, cy) = ((j + 0.5) stride, (i + 0.5) stride)``
    and learns ``(l, t, r, b) = (cx - x0, cy - y0, x1 - cx, y1 - cy) / stride``:
    in cells, positive when the centre is inside the box.

    Args:
        boxes (float[N, K, 4]): ``xyxy`` pixels.
        mask (bool[N, K]): the slots that hold a digit.
        size: the canvas side in pixels.
        stride: pixels a cell side.
        radius: cells around a centre cell that learn its box.

    Returns:
        (distances, cells): float32[N, G, G, 4] ``(l, t, r, b)`` in cells, 0 where
        no box is learned; bool[N, G, G], the cells that learn a box.

    Raises:
        ValueError: shapes that disagree, or sizes that are not positive.
    """
    b, _ = boxes_and_mask(boxes, mask)
    owner, cells = owners(boxes, mask, size=size, stride=stride, radius=radius)
    g = owner.shape[-1]
    own = np.take_along_axis(b, owner.reshape(len(b), -1, 1), axis=1).reshape(len(b), g, g, 4)  # [N, G, G, 4]
    ctr = (np.arange(g) + 0.5) * stride  # [G] cell centres in pixels
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


def size_sigmas(boxes, *, stride: int = STRIDE) -> np.ndarray:
    """A centre bump as wide as the digit is large: ``max(SIGMA_FLOOR, SIGMA_PER_CELL * sqrt(w h) / stride)`` cells.

    On case 5's digits (tight sides ``sqrt(w h)`` of 6 to 33 px, median 20 px)
    the median digit gets ``SIGMA`` (1 cell), a 12 px digit 0.6 cells and a
    45 px one 2.25 (3.75 times as wide); about 1% of digits sit at the floor.

    Args:
        boxes (float[..., 4]): ``xyxy`` pixels.
        stride: pixels a cell side.

    Returns:
        float32[...]: one width in cells per box.
    """
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"`boxes` should be xyxy pixel boxes of shape (..., 4). Got shape {b.shape}.")
    _positive(stride, "stride", whole=True)
    side = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None))  # [...] px
    return np.maximum(SIGMA_FLOOR, SIGMA_PER_CELL * side / stride).astype(np.float32)


def bump_widths(boxes, mask, sigma="fixed", sigma_fn=None) -> float | np.ndarray:
    """The bump width a policy gives: ``SIGMA`` for ``"fixed"``, one per box (float[N, K]) for ``"size"``.

    Args:
        boxes (float[N, K, 4]), mask (bool[N, K]): the digits.
        sigma: ``"fixed"``, ``"size"``, or a number of cells.
        sigma_fn: stands in for ``size_sigmas`` (e.g. a student's), same argument and result.
    """
    if sigma == "fixed":
        return SIGMA
    if sigma == "size":
        widths = np.asarray((sigma_fn or size_sigmas)(boxes), dtype=np.float64)
        return np.where(mask, widths, SIGMA)  # unused slots add nothing, but their width must be valid
    if isinstance(sigma, str):
        raise ValueError(f"`sigma` should be one of {SIGMA_POLICIES} or a number of cells. Got sigma={sigma!r}.")
    return sigma


def encode_targets(boxes, classes, mask, *, size: int = 128, sigma="fixed", max_count: int | None = None,
                   heatmap_fn=None, box_fn=None, sigma_fn=None) -> dict[str, np.ndarray]:
    """Per-cell training targets: the presence heatmap, the box distances and the class of each cell.

    Args:
        boxes (float[n, K, 4]): ``xyxy`` pixels.
        classes (int[n, K]): classes, -1 (or anything) where unused.
        mask (bool[n, K]): used slots.
        size: canvas side in pixels, a multiple of ``STRIDE``.
        sigma: the bump-width policy: ``"fixed"`` (``SIGMA`` cells), ``"size"`` (``size_sigmas``), or a number.
        max_count: add the one-hot ``count`` (n, max_count + 1) target (a count head's).
        heatmap_fn: stands in for ``heatmap_targets`` (e.g. a student's), same arguments.
        box_fn: stands in for ``box_targets``, same arguments.
        sigma_fn: stands in for ``size_sigmas``, same argument.

    Returns:
        dict of float32 arrays, G = size / 8: ``presence`` (n, G, G, 1), ``box``
        (n, G, G, 5), ``class`` (n, G, G, 11), and ``count`` with ``max_count``
        (see the module docstring).
    """
    b, m = boxes_and_mask(boxes, mask)
    classes = np.asarray(classes)
    if classes.shape != m.shape:
        raise ValueError(f"Expected boxes (n, K, 4), classes (n, K) and mask (n, K). "
                         f"Got {b.shape}, {classes.shape} and {m.shape}.")
    grid_side(size, STRIDE)
    widths = bump_widths(b, m, sigma, sigma_fn)
    heat = np.asarray((heatmap_fn or heatmap_targets)(b, m, size=size, stride=STRIDE, sigma=widths))
    ltrb, cells = (box_fn or box_targets)(b, m, size=size, stride=STRIDE, radius=RADIUS)
    w = np.where(cells, heat, 0)[..., None]  # [n, G, G, 1] the bump, cut to the cells that learn a box
    owner, _ = owners(b, m, size=size, stride=STRIDE, radius=RADIUS)
    cls = np.take_along_axis(np.where(m, classes, 0), owner.reshape(len(b), -1), axis=1).reshape(owner.shape)
    one_hot = (cls[..., None] == np.arange(NUM_CLASSES)).astype(np.float32)
    out = {"presence": heat[..., None].astype(np.float32),
           "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
           "class": np.concatenate([w, one_hot], axis=-1).astype(np.float32)}
    if max_count is not None:
        _positive(max_count, "max_count", whole=True)
        out["count"] = (m.sum(axis=1)[:, None] == np.arange(max_count + 1)).astype(np.float32)
    return out
