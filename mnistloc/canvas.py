"""Canvases of MNIST digits for the five cases, made in whole batches.

A canvas is ``size x size`` uint8, black, with 28x28 digits pasted at uniform
random integer positions fully inside; the digits' 28x28 frames never overlap,
so neither does their ink (except in case 5). The cases:

1. one digit of one class (``digit``, default 1): its box;
2. empty, one or two digits of any class: presence, and the union box;
3. one digit of any class: its class and box;
4. empty, one or two digits of any class: count, and up to two boxes with
   classes ordered left to right, with a mask for the unused slot;
5. 0 to ``max_digits`` (default 6) digits resized by 0.6 to 1.6, whose
   frames may overlap a little (``mnistloc.scaled_canvas``): boxes and classes in
   ``max_digits`` slots ordered left to right, with a mask; ``instances(i)``
   and ``box_lists()`` give them as variable-length lists.

Every random draw for the whole batch is made up front from one
``numpy.random.Generator`` (so the same seed gives the same bytes, in chunks
or not), then digits are written with one fancy-indexed store per slot.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from mnistloc import boxes as B
from mnistloc import cases, scaled_canvas
from mnistloc.data import load_digits

DIGIT = 28  # side of an MNIST digit in pixels
BOX_KINDS = ("tight", "frame")
NUM_CLASSES = 10
_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class CanvasDataset:
    """Canvases and their labels; ``n`` canvases, ``K`` slots each (2; ``max_digits`` in case 5).

    Attributes:
        case: 1 to 5.
        images (uint8[n, size, size]): the canvases.
        boxes (float32[n, K, 4]): ``xyxy`` pixels, zeros where a slot is unused.
        mask (bool[n, K]): which slots hold a digit.
        classes (int64[n, K]): digit classes, -1 where unused.
        count (int64[n]): digits per canvas.
        digit_ids (int64[n, K]): index of each digit in ``load_digits(split)``, -1 where unused.
        split: ``"train"`` or ``"test"``: where the digit instances came from.
        frames (float32[n, K, 4] | None): each digit's square frame (28x28, or
            its resized side in case 5), ``xyxy``, zeros where unused; None in
            files saved before frames were recorded.
    """

    case: int
    images: np.ndarray
    boxes: np.ndarray
    mask: np.ndarray
    classes: np.ndarray
    count: np.ndarray
    digit_ids: np.ndarray
    split: str = "train"
    frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def instances(self, i: int) -> dict[str, np.ndarray]:
        """The digits of canvas ``i`` without padding: ``boxes`` float32 (m, 4) ``xyxy``, ``classes`` int64 (m,)."""
        m = self.mask[i]
        return {"boxes": self.boxes[i][m], "classes": self.classes[i][m]}

    def box_lists(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every canvas's boxes (m_i, 4) and classes (m_i,), as two lists: what ``metrics`` take."""
        return [b[m] for b, m in zip(self.boxes, self.mask)], [c[m] for c, m in zip(self.classes, self.mask)]

    def targets(self) -> dict[str, np.ndarray]:
        """The case's labels per canvas (``cases.get(case).labels``), keyed by name; boxes in ``rel_xyxy``.

        These are the plain per-canvas targets that a classic model learns. A
        detector learns per-cell maps instead (``mnistloc.targets.encode_targets``).

        Returns:
            dict of float32 arrays, some of: ``box`` (n, 4): the digit's box, or in case 2 the
            union box (zeros when empty); ``presence`` (n, 1); ``class`` (n, 10) one-hot;
            ``count`` (n, K + 1) one-hot; ``boxes`` (n, K, 4); ``classes`` (n, K, 10) one-hot
            (zeros where unused); ``mask`` (n, K).
        """
        spec = cases.get(self.case)
        rel = B.convert(self.boxes, "xyxy", "rel_xyxy", size=self.size).astype(np.float32)
        union = B.convert(B.union_box(self.boxes, self.mask), "xyxy", "rel_xyxy", size=self.size)
        label = {"box": lambda: (union if spec.box_kind == "union" else rel[:, 0]).astype(np.float32),
                 "presence": lambda: (self.count > 0).astype(np.float32)[:, None],
                 "class": lambda: one_hot(self.classes[:, 0], NUM_CLASSES),
                 "count": lambda: one_hot(self.count, self.mask.shape[1] + 1),
                 "boxes": lambda: rel,
                 "classes": lambda: one_hot(self.classes, NUM_CLASSES),
                 "mask": lambda: self.mask.astype(np.float32)}
        return {name: label[name]() for name in spec.labels}

    def save(self, path) -> None:
        """Writes every array and the case to an ``.npz`` file."""
        np.savez_compressed(path, case=self.case, split=self.split,
                            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                               if f.name not in ("case", "split") and getattr(self, f.name) is not None})

    @classmethod
    def load(cls, path) -> "CanvasDataset":
        """Reads a dataset written by ``save``."""
        with np.load(path, allow_pickle=False) as f:
            kw = {k: f[k] for k in f.files}
        return cls(case=int(kw.pop("case")), split=str(kw.pop("split")), **kw)


def subset(ds: CanvasDataset, index) -> CanvasDataset:
    """The canvases ``index`` of ``ds``, as a new CanvasDataset.

    Args:
        ds: a CanvasDataset of n canvases.
        index (int[k] | bool[n] | slice): which canvases, in order.

    Returns:
        CanvasDataset: the same case and split, k canvases.
    """
    if not isinstance(ds, CanvasDataset):
        raise TypeError(f"`ds` should be a CanvasDataset. Got {type(ds).__name__}.")
    index = index if isinstance(index, slice) else np.asarray(index)
    arrays = {f.name: getattr(ds, f.name)[index] for f in dataclasses.fields(ds) if f.name not in ("case", "split")}
    return dataclasses.replace(ds, **arrays)


def one_hot(labels, num_classes: int) -> np.ndarray:
    """One-hot rows for integer labels; a label of -1 gives a row of zeros.

    Args:
        labels (int[...]): classes in ``[0, num_classes)``, or -1 for "none".
        num_classes: the number of classes.

    Returns:
        float32[..., num_classes].
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"`labels` should be integers. Got dtype {labels.dtype}.")
    if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
        raise ValueError(f"`labels` should lie in [-1, {num_classes}). Got values from "
                         f"{labels.min()} to {labels.max()}.")
    return (labels[..., None] == np.arange(num_classes)).astype(np.float32)


def left_to_right_order(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Slot order int64[N, K] that sorts used slots by ``x0``, ties by ``y0``, unused last.

    Args:
        boxes (float[N, K, 4]): ``xyxy`` boxes.
        mask (bool[N, K]): used slots.
    """
    x0 = np.where(mask, boxes[..., 0], np.inf)
    y0 = np.where(mask, boxes[..., 1], np.inf)
    return np.lexsort((y0, x0), axis=-1)  # primary key x0, then y0


def take_slots(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``a[i, order[i, k], ...]`` for an array ``a`` of shape (N, K, ...) and an order int[N, K]."""
    return np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)


def order_left_to_right(boxes, classes, mask):
    """Sorts each canvas's used slots by ``x0`` (ties by ``y0``), unused slots last.

    Args:
        boxes (float[N, K, 4]): ``xyxy`` boxes.
        classes (int[N, K]): classes.
        mask (bool[N, K]): used slots.

    Returns:
        (boxes, classes, mask) in the new order, same shapes and dtypes.
    """
    boxes, classes, mask = np.asarray(boxes), np.asarray(classes), np.asarray(mask, dtype=bool)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:2] or mask.shape != boxes.shape[:2]:
        raise ValueError(f"Expected boxes (N, K, 4), classes (N, K) and mask (N, K). "
                         f"Got {boxes.shape}, {classes.shape} and {mask.shape}.")
    order = left_to_right_order(boxes, mask)
    return take_slots(boxes, order), take_slots(classes, order), take_slots(mask, order)


def place_digit(canvas, digit, x: int, y: int) -> np.ndarray:
    """Returns a copy of ``canvas`` with ``digit`` written with its top-left pixel at (x, y).

    Args:
        canvas (uint8[S, S]): the canvas.
        digit (uint8[28, 28]): the digit.
        x: column of the digit's left edge; ``0 <= x <= S - 28``.
        y: row of the digit's top edge; ``0 <= y <= S - 28``.

    Returns:
        uint8[S, S]: a new canvas; the one given is unchanged.
    """
    canvas, digit = np.asarray(canvas), np.asarray(digit)
    h, w = digit.shape
    if not (0 <= x <= canvas.shape[1] - w and 0 <= y <= canvas.shape[0] - h):
        raise ValueError(f"The digit must lie fully inside the canvas: 0 <= x <= {canvas.shape[1] - w} "
                         f"and 0 <= y <= {canvas.shape[0] - h}. Got x={x}, y={y}.")
    out = canvas.copy()
    out[y:y + h, x:x + w] = digit
    return out


def _check_args(spec, n, size, mix, digit, box) -> np.ndarray:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` should be a whole number >= 0. Got n={n!r}.")
    smallest = 1 if spec.counts == "many" else 2 * DIGIT  # digits at many sizes shrink to fit
    if not isinstance(size, (int, np.integer)) or size < smallest:
        raise ValueError(f"`size` should be an integer >= {smallest} in case {spec.number}"
                         f"{' so that two digits fit' if smallest > 1 else ''}. Got size={size!r}.")
    if digit not in range(NUM_CLASSES):
        raise ValueError(f"`digit` should be a class from 0 to 9. Got digit={digit!r}.")
    if box not in BOX_KINDS:
        raise ValueError(f"`box` should be one of {BOX_KINDS}. Got box={box!r}.")
    p = np.asarray(mix, dtype=float)
    if p.shape != (3,) or (p < 0).any() or not np.isclose(p.sum(), 1):
        raise ValueError(f"`mix` should be three probabilities (empty, one, two digits) summing to 1. Got mix={mix!r}.")
    return p


def _sample_positions(rng: np.random.Generator, count: np.ndarray, span: int) -> np.ndarray:
    """Top-left corners (n, 2 slots, 2 = x, y) with non-overlapping frames where count == 2.

    Overlapping pairs are drawn again whole, so pairs are uniform over the valid ones.
    """
    xy = rng.integers(0, span + 1, size=(len(count), cases.SLOTS, 2))
    redo = np.flatnonzero(count == 2)
    while redo.size:
        xy[redo] = rng.integers(0, span + 1, size=(redo.size, cases.SLOTS, 2))
        d = np.abs(xy[redo, 0] - xy[redo, 1])  # [m, 2]
        redo = redo[(d < DIGIT).all(axis=-1)]  # frames overlap when both gaps are < 28
    return xy


def make_dataset(case: int, n: int, *, seed, split: str = "train", size: int = 128,
                 digit: int = 1, mix: Sequence[float] = (1 / 3, 1 / 3, 1 / 3), box: str = "tight",
                 source="auto", progress: bool = False, **scene) -> CanvasDataset:
    """Makes ``n`` canvases of one case.

    Args:
        case: 1 to 5 (see the module docstring).
        n: number of canvases.
        seed: an int or a ``numpy.random.Generator``; same seed, same bytes.
        split: ``"train"`` or ``"test"``: which digit instances to draw from.
        size: canvas side in pixels.
        digit: the class of case 1.
        mix: probabilities of 0, 1 and 2 digits for cases 2 and 4.
        box: ``"tight"`` (the ink's extent) or ``"frame"`` (the digit's square frame).
        source: passed to ``mnistloc.data.load_digits``.
        progress: show a progress bar while writing the canvases.
        **scene: case 5 only: ``min_digits`` (0), ``max_digits`` (6), ``scale``
            ((0.6, 1.6)), ``max_overlap`` (0.3, frame IoU), ``noise`` (0.0,
            grey levels), ``clutter`` (0 pieces); see ``mnistloc.scaled_canvas.make``.

    Returns:
        CanvasDataset: K = 2 slots, or ``max_digits`` in case 5.
    """
    spec = cases.get(case)
    p = _check_args(spec, n, size, mix, digit, box)
    unknown = set(scene) - set(SCENE_OPTIONS) if spec.counts == "many" else set(scene)
    if unknown:
        raise TypeError(f"make_dataset() got unexpected options {sorted(unknown)} for case {case}; "
                        f"a case of many digits takes {SCENE_OPTIONS}, the other cases none of them.")
    rng = np.random.default_rng(seed)
    images, labels = load_digits(split, source)
    if spec.counts == "many":
        return _make_scenes(rng, images, labels, n, size, box, split, progress, scene, case)
    pool = np.flatnonzero(labels == digit) if spec.one_class else np.arange(len(labels))

    count = rng.choice(3, size=n, p=p) if spec.counts == "mix" else np.ones(n, dtype=np.int64)
    count = count.astype(np.int64)
    mask = np.arange(cases.SLOTS) < count[:, None]  # [n, 2]
    ids = np.where(mask, pool[rng.integers(0, len(pool), size=(n, cases.SLOTS))], -1)
    xy = _sample_positions(rng, count, size - DIGIT)  # [n, 2, 2]

    frames = np.where(mask[..., None], np.concatenate([xy, xy + DIGIT], axis=-1), 0).astype(np.float32)
    local = _tight_boxes(images) if box == "tight" else np.tile(np.float32([0, 0, DIGIT, DIGIT]), (len(images), 1))
    boxes = np.where(mask[..., None], local[ids] + np.tile(xy, 2), 0).astype(np.float32)  # [n, 2, 4]
    classes = np.where(mask, labels[ids], -1)
    order = left_to_right_order(boxes, mask)
    boxes, classes, mask, ids, xy, frames = (take_slots(a, order) for a in (boxes, classes, mask, ids, xy, frames))
    canvases = _paste(images, ids, xy, mask, size, progress)
    return CanvasDataset(case=case, images=canvases, boxes=boxes, mask=mask, classes=classes,
                         count=count, digit_ids=ids, split=split, frames=frames)


SCENE_OPTIONS = ("min_digits", "max_digits", "scale", "max_overlap", "noise", "clutter")
"""The options of case 5 canvases (``mnistloc.scaled_canvas.make``)."""


def _make_scenes(rng, images, labels, n, size, box, split, progress, options, case) -> CanvasDataset:
    """Many digits at many sizes: ``scaled_canvas.make`` draws and renders; here the slots are ordered left to right."""
    made = scaled_canvas.make(rng, images, np.arange(len(labels)), n, size=size, progress=progress, **options)
    mask, ids = made["mask"], made["digit_ids"]
    boxes = made["boxes"] if box == "tight" else made["frames"]
    classes = np.where(mask, labels[np.maximum(ids, 0)], -1)
    order = left_to_right_order(boxes, mask)
    boxes, classes, mask, ids, frames = (take_slots(a, order) for a in (boxes, classes, mask, ids, made["frames"]))
    return CanvasDataset(case=case, images=made["images"], boxes=boxes, mask=mask, classes=classes,
                         count=made["count"], digit_ids=ids, split=split, frames=frames)


_TIGHT: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(images) -> (images, tight boxes (N, 4))


def _tight_boxes(images: np.ndarray) -> np.ndarray:
    """``B.tight_box(images)``, computed once per read-only digit array (``load_digits`` caches them)."""
    hit = _TIGHT.get(id(images))
    if hit is not None and hit[0] is images:
        return hit[1]
    local = B.tight_box(images)  # [N, 4]
    if not images.flags.writeable:  # read-only: cannot change under the cache
        if len(_TIGHT) >= 4:
            _TIGHT.pop(next(iter(_TIGHT)))
        _TIGHT[id(images)] = (images, local)  # holding `images` keeps its id from being reused
    return local


def _paste(images, ids, xy, mask, size, progress) -> np.ndarray:
    """Writes digit ``ids[i, k]`` at corner ``xy[i, k]`` of canvas i, in chunks (``scaled_canvas.paste``).

    Frames never overlap, so no two digits write the same pixel and each chunk
    is one store of whole digits.
    """
    n = len(ids)
    out = np.zeros((n, size, size), dtype=np.uint8)
    starts = range(0, n, _CHUNK)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, total=len(starts), desc="canvases", unit="chunk")
    for s in starts:
        rows, slots = np.nonzero(mask[s:s + _CHUNK])  # [m], [m]
        rows += s
        scaled_canvas.paste(out, images[ids[rows, slots]], rows, xy[rows, slots, 0], xy[rows, slots, 1], maximum=False)
    return out
