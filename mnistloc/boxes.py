"""Boxes: one format inside (``xyxy`` absolute pixels), conversions at the edge.

Formats, named as in ``keras.utils.bounding_boxes``; each is ``(..., 4)`` floats:

==============  ===============================================================
``xyxy``        ``x0, y0, x1, y1`` in pixels; exclusive max: ``x1 = last ink
                column + 1``, so ``width = x1 - x0``. The format used inside.
``xywh``        ``x0, y0, width, height`` in pixels.
``cxcywh``      ``centre x, centre y, width, height`` in pixels.
``rel_xyxy``    ``xyxy`` divided by the canvas size, in [0, 1] (the lessons' heads).
==============  ===============================================================

Every conversion goes through ``xyxy``. IoU has no "+1": touching or disjoint
boxes give 0, and two empty boxes give 0, never NaN.
"""
from __future__ import annotations

import numpy as np

FORMATS = ("xyxy", "xywh", "cxcywh", "rel_xyxy")


def _as_boxes(boxes, name: str) -> np.ndarray:
    """Returns ``boxes`` as a float array of shape ``(..., 4)`` or raises."""
    arr = np.asarray(boxes)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` should be numeric boxes of shape (..., 4). Got dtype {arr.dtype}.")
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"`{name}` should have shape (..., 4). Got shape {arr.shape}.")
    return arr.astype(np.result_type(arr.dtype, np.float32), copy=False)


def _check_format(fmt: str, name: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"`{name}` should be one of {FORMATS}. Got {name}={fmt!r}.")


def _to_xyxy(b: np.ndarray, src: str, size) -> np.ndarray:
    a, c, d, e = np.moveaxis(b, -1, 0)
    if src == "xyxy":
        return b
    if src == "xywh":
        return np.stack([a, c, a + d, c + e], axis=-1)
    if src == "cxcywh":
        return np.stack([a - d / 2, c - e / 2, a + d / 2, c + e / 2], axis=-1)
    return b * size  # rel_xyxy


def _from_xyxy(b: np.ndarray, dst: str, size) -> np.ndarray:
    x0, y0, x1, y1 = np.moveaxis(b, -1, 0)
    if dst == "xyxy":
        return b
    if dst == "xywh":
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)
    if dst == "cxcywh":
        return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)
    return b / size  # rel_xyxy


def convert(boxes, src: str, dst: str, size: float | None = None) -> np.ndarray:
    """Converts boxes between formats, always through ``xyxy``.

    Args:
        boxes (array[..., 4]): boxes in format ``src``.
        src: one of ``FORMATS``.
        dst: one of ``FORMATS``.
        size: the canvas side in pixels; needed when either format is ``rel_xyxy``.

    Returns:
        array[..., 4]: the same boxes in format ``dst``, floats.

    Raises:
        ValueError: an unknown format, a wrong shape, or ``size`` missing for
            ``rel_xyxy``.
    """
    _check_format(src, "src")
    _check_format(dst, "dst")
    b = _as_boxes(boxes, "boxes")
    if src == dst:
        return b  # nothing to convert: rel_xyxy to rel_xyxy needs no size
    if "rel_xyxy" in (src, dst):
        if size is None or not np.isscalar(size) or size <= 0:
            raise ValueError(f"`size` should be the canvas side in pixels (> 0) when converting "
                             f"to or from 'rel_xyxy'. Got size={size!r}.")
    return _from_xyxy(_to_xyxy(b, src, size), dst, size)


def area(boxes) -> np.ndarray:
    """Area of ``xyxy`` boxes; inverted or empty boxes have area 0.

    Args:
        boxes (array[..., 4]): ``xyxy`` boxes.

    Returns:
        array[...]: areas, never negative.
    """
    b = _as_boxes(boxes, "boxes")
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _inter_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union areas of broadcast ``xyxy`` boxes ``(..., 4)``."""
    lt = np.maximum(a[..., :2], b[..., :2])  # [..., 2]
    rb = np.minimum(a[..., 2:], b[..., 2:])  # [..., 2]
    wh = np.clip(rb - lt, 0, None)  # overlap clamped at 0: disjoint boxes share nothing
    inter = wh[..., 0] * wh[..., 1]
    return inter, area(a) + area(b) - inter


def _safe_divide(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(inter, union).shape, dtype=np.result_type(inter, union, np.float32))
    np.divide(inter, union, out=out, where=union > 0)
    return out


def iou(a, b) -> np.ndarray:
    """Elementwise intersection over union of ``xyxy`` boxes.

    Args:
        a (array[..., 4]): ``xyxy`` boxes.
        b (array[..., 4]): ``xyxy`` boxes, broadcastable against ``a``.

    Returns:
        array[...]: IoU in [0, 1]; 0 where both boxes are empty.
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    return _safe_divide(*_inter_union(a, b))


def pairwise_iou(a, b) -> np.ndarray:
    """IoU of every box in ``a`` with every box in ``b``.

    Args:
        a (array[N, 4]): ``xyxy`` boxes.
        b (array[M, 4]): ``xyxy`` boxes.

    Returns:
        array[N, M]: ``out[i, j] = iou(a[i], b[j])``.
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"`a` and `b` should have shapes (N, 4) and (M, 4). Got {a.shape} and {b.shape}.")
    return _safe_divide(*_inter_union(a[:, None, :], b[None, :, :]))  # [N, M]


def tight_box(image, threshold: float = 0) -> np.ndarray:
    """The ``xyxy`` box around the pixels brighter than ``threshold``.

    Args:
        image (array[..., H, W]): one image or a batch.
        threshold: a pixel is ink when its value is ``> threshold``.

    Returns:
        array[..., 4] float32: ``x0, y0, x1, y1`` with exclusive max; all zeros
        for an image with no ink.
    """
    img = np.asarray(image)
    if img.ndim < 2:
        raise ValueError(f"`image` should have shape (..., H, W). Got shape {img.shape}.")
    ink = img > threshold
    cols, rows = ink.any(axis=-2), ink.any(axis=-1)  # [..., W], [..., H]
    x0, y0 = cols.argmax(-1), rows.argmax(-1)
    x1 = cols.shape[-1] - cols[..., ::-1].argmax(-1)
    y1 = rows.shape[-1] - rows[..., ::-1].argmax(-1)
    box = np.stack([x0, y0, x1, y1], axis=-1).astype(np.float32)
    return np.where(cols.any(-1)[..., None], box, np.float32(0))


def union_box(boxes, mask) -> np.ndarray:
    """The smallest ``xyxy`` box holding every used box of a canvas.

    Args:
        boxes (array[N, K, 4]): ``xyxy`` boxes, K slots per canvas.
        mask (array[N, K] bool): which slots hold a box.

    Returns:
        array[N, 4] float32: the union box; zeros where no slot is used.
    """
    b = _as_boxes(boxes, "boxes")
    m = np.asarray(mask, dtype=bool)
    if m.shape != b.shape[:-1]:
        raise ValueError(f"`mask` should have shape {b.shape[:-1]} to match `boxes`. Got {m.shape}.")
    lo = np.where(m[..., None], b[..., :2], np.inf).min(axis=-2)
    hi = np.where(m[..., None], b[..., 2:], -np.inf).max(axis=-2)
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(-1)[..., None], out, 0).astype(np.float32)
