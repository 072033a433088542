"""Case 5 canvases: any number of digits at any size, overlapping a little.

Each canvas holds ``min_digits`` to ``max_digits`` digits (uniform), each
resized from 28x28 to a square of side ``round(28 * s)``, ``s`` uniform in
``scale``, by area resampling: an output pixel is the mean of the input
pixels under its footprint, each weighted by the share of it that the
footprint covers. With the input a piecewise constant picture, that is the
exact integral, so ink is preserved (``resize`` below; ``area_matrix`` gives
the weights, ``R @ digit @ R.T``). Tight boxes are measured on the resized
digit. Digits are placed one after another at uniform random integer
corners; a corner whose frame (the resized square) overlaps an earlier frame
with IoU above ``max_overlap`` is drawn again, and a canvas that cannot fit
its digits after ``_TRIES`` draws gets new sizes and corners for all of them.
Digits are combined with ``maximum``, so where two overlap the brighter ink
shows. ``clutter`` adds unlabelled pieces of digits and ``noise`` Gaussian
noise (both off by default).

All random draws come first (the same seed gives the same bytes); the
resizing and pasting after them are vectorised per output side and per slot.
"""
from __future__ import annotations

import functools

import numpy as np

from mnistloc import boxes as B
from mnistloc.cases import MAX_DIGITS

DIGIT = 28
SCALE = (0.6, 1.6)
MAX_OVERLAP = 0.3
_TRIES = 64  # corner draws per digit before its canvas starts over
_RESTARTS = 200  # canvases starting over before giving up
_CHUNK = 4096
FRAGMENT = 8  # side of a clutter piece


@functools.lru_cache(maxsize=None)
def overlaps(n_in: int, n_out: int) -> np.ndarray:
    """How much of each input pixel each output pixel covers, in whole units: the area weights x ``n_in``.

    Measured in units of ``1 / n_out`` input pixel, input pixel ``j`` spans
    ``[j * n_out, (j + 1) * n_out)`` and output pixel ``i`` spans
    ``[i * n_in, (i + 1) * n_in)``; entry ``(i, j)`` is the length of their
    intersection, a whole number, and each row sums to ``n_in``.

    Args:
        n_in: input length, >= 1.
        n_out: output length, >= 1.

    Returns:
        int64[n_out, n_in] (read-only, cached).
    """
    for name, v in (("n_in", n_in), ("n_out", n_out)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"`{name}` should be a whole number >= 1. Got {name}={v!r}.")
    i = np.arange(n_out)[:, None] * n_in  # [n_out, 1] output footprint starts
    j = np.arange(n_in)[None, :] * n_out  # [1, n_in] input pixel starts
    out = np.clip(np.minimum(i + n_in, j + n_out) - np.maximum(i, j), 0, None)  # [n_out, n_in]
    out.flags.writeable = False
    return out


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Weights that resize a line of ``n_in`` pixels to ``n_out`` by area: float64[n_out, n_in].

    Output pixel ``i`` covers ``[i, i + 1) * n_in / n_out`` of the input; its
    weight on input pixel ``j`` is the share of that footprint that ``j``
    covers, so each row sums to 1. ``resize(d) = round(A @ d @ A.T)``.
    """
    return overlaps(n_in, n_out) / n_in


def resize(digits, side: int) -> np.ndarray:
    """Resizes square images to ``side x side`` by area resampling, rounding halves up.

    Args:
        digits (uint8[..., H, H]): one image or a batch, square, H <= 128.
        side: output side in pixels, >= 1.

    Returns:
        uint8[..., side, side].
    """
    d = np.asarray(digits)
    if d.ndim < 2 or d.shape[-1] != d.shape[-2] or d.shape[-1] > 128:
        raise ValueError(f"`digits` should be square images (..., H, H) with H <= 128. Got shape {d.shape}.")
    flat = d.reshape(-1, *d.shape[-2:])
    sprites = _resized(flat.transpose(1, 0, 2), np.arange(len(flat)), side)  # [side, p, side]
    return sprites.transpose(1, 0, 2).reshape(*d.shape[:-2], side, side)


def _resized(images_t: np.ndarray, ids: np.ndarray, side: int) -> np.ndarray:
    """Resizes ``images[ids]``, given ``images_t = images.transpose(1, 0, 2)``: uint8[side, p, side].

    The batch rides along the middle axis (``[H, p, H]`` in, ``[side, p,
    side]`` out), so each product below is one large one, not a stack of small
    ones. Computed exactly: with ``O = overlaps(H, side)`` (whole numbers,
    each row summing to H), ``v = O @ (d + 1/2) @ O.T = O @ d @ O.T + H * H / 2``
    holds multiples of 1/2 below 2^23 for H <= 128, which float32 holds
    exactly in any order of summation; ``v / (H * H)`` is then within
    float32's precision of ``mean + 1/2``, so truncating it gives
    ``floor(mean + 1/2)``.
    """
    h, p = images_t.shape[0], len(ids)
    o = overlaps(h, side).astype(np.float32)  # [side, H]
    a = np.add(images_t[:, ids], np.float32(0.5), dtype=np.float32, order="C")  # [H(row), p, H(col)]
    v = (o @ a.reshape(h, p * h)).reshape(side * p, h) @ o.T  # [side(row) * p, side(col)]
    sprites = np.empty((side, p, side), dtype=np.uint8)
    np.divide(v.reshape(side, p, side), np.float32(h * h), out=sprites, casting="unsafe")  # truncates
    return sprites


def check_args(n, size, min_digits, max_digits, scale, max_overlap, noise, clutter) -> tuple[float, float]:
    """Raises ValueError naming the bad argument; returns ``scale`` as two floats."""
    if not isinstance(max_digits, (int, np.integer)) or max_digits < 1:
        raise ValueError(f"`max_digits` should be a whole number >= 1. Got max_digits={max_digits!r}.")
    if not isinstance(min_digits, (int, np.integer)) or not 0 <= min_digits <= max_digits:
        raise ValueError(f"`min_digits` should be a whole number from 0 to max_digits={max_digits}. "
                         f"Got min_digits={min_digits!r}.")
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ValueError(f"`scale` should be two numbers (smallest, largest). Got scale={scale!r}.") from None
    if not 0 < lo <= hi or round(DIGIT * lo) < 1:
        raise ValueError(f"`scale` should satisfy 0 < smallest <= largest with round(28 * smallest) >= 1. "
                         f"Got scale={scale!r}.")
    if round(DIGIT * hi) > size:
        raise ValueError(f"`scale` makes digits of up to {round(DIGIT * hi)} pixels, larger than the canvas "
                         f"(size={size}). Got scale={scale!r}.")
    if not 0 <= max_overlap <= 1:
        raise ValueError(f"`max_overlap` should be a frame IoU from 0 to 1. Got max_overlap={max_overlap!r}.")
    if not noise >= 0:
        raise ValueError(f"`noise` should be a standard deviation >= 0 in grey levels. Got noise={noise!r}.")
    if not isinstance(clutter, (int, np.integer)) or clutter < 0:
        raise ValueError(f"`clutter` should be a whole number >= 0 of digit pieces. Got clutter={clutter!r}.")
    return lo, hi


def _frame_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of squares given as (x, y, side): a (m, 3) against b (m, k, 3) -> (m, k)."""
    a = a[:, None, :]
    w = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 1] + a[..., 2], b[..., 1] + b[..., 2]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = a[..., 2] ** 2 + b[..., 2] ** 2 - inter
    return inter / np.maximum(union, 1)


def _sides(rng, shape, lo, hi) -> np.ndarray:
    return np.rint(DIGIT * rng.uniform(lo, hi, size=shape)).astype(np.int64)


def layout(rng: np.random.Generator, count: np.ndarray, k: int, size: int, scale, max_overlap: float) -> np.ndarray:
    """Frames (x, y, side) for ``count[i]`` digits a canvas, pairwise frame IoU <= ``max_overlap``.

    Args:
        rng: the generator.
        count (int[n]): digits per canvas, <= k.
        k: slots per canvas.
        size: canvas side.
        scale: (smallest, largest) scale of a digit.
        max_overlap: the largest frame IoU allowed between two digits of a canvas.

    Returns:
        int64[n, k, 3]: ``x, y, side`` of each frame, zeros in unused slots.
    """
    n = len(count)
    frames = np.zeros((n, k, 3), dtype=np.int64)
    frames[..., 2] = _sides(rng, (n, k), *scale)
    todo, restarts = np.arange(n), 0
    while todo.size:
        failed = _place(rng, frames, todo, count, size, max_overlap)
        if failed.size:
            restarts += failed.size
            if restarts > _RESTARTS + n // 10:
                raise ValueError(f"Could not place {int(count[failed].max())} digits of scale {scale} with frame "
                                 f"IoU <= {max_overlap} on a {size}x{size} canvas: lower `max_digits` or `scale`, "
                                 f"or raise `max_overlap`.")
            frames[failed, :, 2] = _sides(rng, (failed.size, k), *scale)
        todo = failed
    frames[np.arange(k) >= count[:, None]] = 0
    return frames


def _place(rng, frames, rows, count, size, max_overlap) -> np.ndarray:
    """Draws corners slot by slot for canvases ``rows``; returns the canvases that ran out of tries."""
    failed = np.zeros(0, dtype=np.int64)
    for slot in range(frames.shape[1]):
        pending = np.setdiff1d(rows[count[rows] > slot], failed, assume_unique=True)
        for _ in range(_TRIES):
            if not pending.size:
                break
            span = size - frames[pending, slot, 2] + 1  # [m] corners 0 .. size - side
            frames[pending, slot, :2] = (rng.random((pending.size, 2)) * span[:, None]).astype(np.int64)
            iou = _frame_iou(frames[pending, slot], frames[pending, :slot])  # [m, slot]
            pending = pending[(iou > max_overlap).any(axis=1)]
        failed = np.union1d(failed, pending)
    return failed


def make(rng: np.random.Generator, images: np.ndarray, pool: np.ndarray, n: int, *, size: int,
         min_digits: int = 0, max_digits: int = MAX_DIGITS, scale=SCALE, max_overlap: float = MAX_OVERLAP,
         noise: float = 0.0, clutter: int = 0, progress: bool = False) -> dict[str, np.ndarray]:
    """Draws and renders ``n`` case 5 canvases (slots in drawing order, not sorted).

    Args:
        rng: the generator; every draw is made from it before rendering.
        images (uint8[N, 28, 28]): the digits.
        pool (int[P]): indices of ``images`` to draw from.
        n: canvases.
        size: canvas side.
        min_digits, max_digits: the count is uniform over ``min_digits .. max_digits``.
        scale: (smallest, largest) resize factor, uniform.
        max_overlap: the largest frame IoU between two digits of a canvas.
        noise: standard deviation of Gaussian noise in grey levels (0: none).
        clutter: at most this many unlabelled 8x8 pieces of digits a canvas (uniform from 0).
        progress: show a progress bar while rendering.

    Returns:
        dict: ``images`` uint8 (n, size, size); ``boxes`` float32 (n, K, 4) tight
        ``xyxy``; ``frames`` float32 (n, K, 4) the resized squares, ``xyxy``;
        ``mask`` bool (n, K); ``count`` int64 (n,); ``digit_ids`` int64 (n, K),
        -1 where unused; K = ``max_digits``; unused slots hold zeros.
    """
    scale = check_args(n, size, min_digits, max_digits, scale, max_overlap, noise, clutter)
    k = max_digits
    count = rng.integers(min_digits, max_digits + 1, size=n).astype(np.int64)
    mask = np.arange(k) < count[:, None]  # [n, K]
    ids = np.where(mask, pool[rng.integers(0, len(pool), size=(n, k))], -1)
    frames = layout(rng, count, k, size, scale, max_overlap)  # [n, K, 3] x, y, side
    pieces = _draw_clutter(rng, pool, n, size, clutter) if clutter else None
    canvases, tight = _render(images, ids, frames, mask, size, progress)
    if pieces is not None:
        _paste_clutter(canvases, images, pieces)
    if noise > 0:
        grey = canvases + rng.normal(0.0, noise, size=canvases.shape)
        canvases = np.rint(grey).clip(0, 255).astype(np.uint8)
    xyxy = np.concatenate([frames[..., :2], frames[..., :2] + frames[..., 2:]], axis=-1).astype(np.float32)
    return {"images": canvases, "boxes": tight, "frames": xyxy, "mask": mask, "count": count, "digit_ids": ids}


def _render(images, ids, frames, mask, size, progress):
    """Resizes and pastes every digit (``maximum`` where they overlap); returns canvases and tight boxes.

    Digits are grouped by side, and two matrix products resize a group
    (``_resized``). A digit whose frame meets no other frame of its canvas is
    copied in place; the others are pasted with ``maximum`` in rounds that
    hold at most one digit of a canvas (so no pixel is written twice in one
    store). ``maximum`` does not depend on the order, so neither does the
    picture. Within a group the digits are sorted by round, so each ``paste``
    takes a slice of the group's sprites, not a copy.
    """
    n, k = mask.shape
    out = np.zeros((n, size, size), dtype=np.uint8)
    tight = np.zeros((n, k, 4), dtype=np.float32)
    images_t = images.transpose(1, 0, 2)  # [28, N, 28]: gathers land batch-in-the-middle
    alone = ~_meets_another(frames)  # [n, K]
    starts = range(0, n, _CHUNK)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, total=len(starts), desc="canvases", unit="chunk")
    for s in starts:
        rows, slots = np.nonzero(mask[s:s + _CHUNK])  # [m], [m] sorted by row
        rows += s
        sides = frames[rows, slots, 2]
        rounds = _rounds(rows, sides, alone[rows, slots])
        order = np.lexsort((rows, rounds, sides))  # by side, round, canvas
        rows, slots, sides, rounds = rows[order], slots[order], sides[order], rounds[order]
        xs, ys = frames[rows, slots, 0], frames[rows, slots, 1]
        for g in np.split(np.arange(len(rows)), np.flatnonzero(np.diff(sides)) + 1):
            lo, side = g[0], int(sides[g[0]])
            sprites = _resized(images_t, ids[rows[g], slots[g]], side)  # [side, p, side]
            tight[rows[g], slots[g]] = _ink_box(sprites) + np.stack([xs[g], ys[g], xs[g], ys[g]], axis=-1)
            for part in np.split(g, np.flatnonzero(np.diff(rounds[g])) + 1):
                a, b = part[0], part[-1] + 1
                paste(out, sprites[:, a - lo:b - lo].transpose(1, 0, 2), rows[a:b], xs[a:b], ys[a:b],
                      maximum=bool(rounds[a]))
    return out, tight


def _meets_another(frames: np.ndarray) -> np.ndarray:
    """Whether each frame (x, y, side) shares a pixel with another frame of its canvas: bool (n, K).

    Unused slots have side 0 and meet nothing.
    """
    x, y, side = (frames[..., j].T for j in range(3))  # [K, n] each
    meets = np.zeros(x.shape, dtype=bool)
    for a in range(len(x)):
        for b in range(a + 1, len(x)):
            both = ((np.minimum(x[a] + side[a], x[b] + side[b]) > np.maximum(x[a], x[b]))
                    & (np.minimum(y[a] + side[a], y[b] + side[b]) > np.maximum(y[a], y[b])))
            meets[a] |= both
            meets[b] |= both
    return meets.T


def _rounds(rows: np.ndarray, sides: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """The paste round of each digit: 0 (copied) if ``alone``, else 1, 2, ... among the canvas's digits of its side.

    Args:
        rows (int[m]): each digit's canvas, sorted.
        sides (int[m]): each digit's side.
        alone (bool[m]): the digit's frame meets no other frame.
    """
    order = np.lexsort((rows, sides))  # by side, then canvas
    r, sd, shared = rows[order], sides[order], ~alone[order]
    start = np.r_[True, (r[1:] != r[:-1]) | (sd[1:] != sd[:-1])]  # [m] first digit of a (side, canvas) run
    seen = np.cumsum(shared)
    before = np.maximum.accumulate(np.where(start, seen - shared, 0))  # shared digits before the run
    out = np.empty_like(rows)
    out[order] = np.where(shared, seen - before, 0)
    return out


def paste(out: np.ndarray, sprites: np.ndarray, rows, xs, ys, *, maximum: bool = True) -> None:
    """Pastes ``sprites[j]`` into canvas ``rows[j]`` of ``out`` with its corner at ``(xs[j], ys[j])``, in place.

    ``win[i, y, x]`` is a writable (h, w) view of canvas i at corner (x, y), so
    the paste is one fancy-indexed store of whole sprites (measured on the
    quiet machine, 20,000 digits of 28x28 on 128x128 canvases: 16 ms as a copy,
    25 ms with ``maximum``, against 56 and 69 ms through flat ``np.take`` /
    ``np.put`` indices). No pixel may be covered twice in one call: paste
    overlapping sprites in separate calls.

    Args:
        out (uint8[n, S, S]): the canvases, written in place.
        sprites (uint8[p, h, w]): the pictures; each must fit inside the canvas at its corner.
        rows (int[p]): the canvas of each sprite.
        xs, ys (int[p]): column and row of each sprite's top-left pixel.
        maximum: each pixel becomes the ``maximum`` of what was there and the sprite (overlapping
            digits show the brighter ink); False: a plain copy, for sprites over empty canvas
            (cases 1 to 4, whose frames never overlap).
    """
    _, h, w = sprites.shape
    n, height, width = out.shape
    s0, s1, s2 = out.strides
    win = np.lib.stride_tricks.as_strided(out, shape=(n, height - h + 1, width - w + 1, h, w),
                                          strides=(s0, s1, s2, s1, s2))  # [n, y, x, h, w]
    win[rows, ys, xs] = np.maximum(win[rows, ys, xs], sprites) if maximum else sprites


def _ink_box(sprites: np.ndarray) -> np.ndarray:
    """``boxes.tight_box`` of each sprite of ``_resized`` (uint8[side, p, side]): float32 (p, 4).

    The columns with ink come from one reduction over the leading axis; the
    rows with ink from one ``reduceat`` over the flat rows (a last-axis
    reduction would run its loop once per short row).
    """
    side, p, _ = sprites.shape
    cols = sprites.max(axis=0) > 0  # [p, side]
    rows = (np.maximum.reduceat(sprites.reshape(-1), np.arange(0, sprites.size, side)) > 0).reshape(side, p).T
    x0, y0 = cols.argmax(-1), rows.argmax(-1)
    x1, y1 = side - cols[:, ::-1].argmax(-1), side - rows[:, ::-1].argmax(-1)
    box = np.stack([x0, y0, x1, y1], axis=-1).astype(np.float32)
    return np.where(cols.any(-1)[:, None], box, np.float32(0))


def _draw_clutter(rng, pool, n, size, clutter) -> dict[str, np.ndarray]:
    return {"count": rng.integers(0, clutter + 1, size=n),
            "ids": pool[rng.integers(0, len(pool), size=(n, clutter))],
            "crop": rng.integers(0, DIGIT - FRAGMENT + 1, size=(n, clutter, 2)),
            "at": rng.integers(0, size - FRAGMENT + 1, size=(n, clutter, 2))}


def _paste_clutter(canvases, images, pieces) -> None:
    """Pastes the 8x8 pieces (``maximum``) in place, one ``paste`` per piece index."""
    d0, d1, d2 = images.strides
    src = np.lib.stride_tricks.as_strided(images, shape=(len(images), DIGIT - FRAGMENT + 1, DIGIT - FRAGMENT + 1,
                                                         FRAGMENT, FRAGMENT), strides=(d0, d1, d2, d1, d2))
    for j in range(pieces["ids"].shape[1]):
        r = np.flatnonzero(pieces["count"] > j)
        crop, at = pieces["crop"][r, j], pieces["at"][r, j]
        paste(canvases, src[pieces["ids"][r, j], crop[:, 1], crop[:, 0]], r, at[:, 0], at[:, 1])  # [m, 8, 8] pieces
