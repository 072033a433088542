"""Pictures: canvases with true and predicted boxes, sample grids, training curves.

Every function returns a ``matplotlib.figure.Figure`` that pyplot does not
keep open, so nothing leaks when many are made and a figure returned as a
notebook cell's value is shown once (not twice). ``save`` writes a PNG.
matplotlib is imported here only, never by ``import mnistloc``.

Colours: true boxes green (solid), predicted boxes red (dashed). Boxes are
``xyxy`` pixels with an exclusive max; pixel ``i`` covers ``[i - 0.5, i + 0.5]``
on the axes, so a box is drawn exactly around its ink.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mnistloc.boxes import union_box

TRUE_COLOUR = "#2ecc40"
PRED_COLOUR = "#ff4136"
CASE_TITLES = {
    1: "Case 1: single-class localization. Labels: the digit's box (presence always 1)",
    2: "Case 2: presence and localization. Labels: presence, and the union box of the digit(s)",
    3: "Case 3: multi-class localization. Labels: the digit's class and box",
    4: "Case 4: multiple objects. Labels: count, and up to two boxes with classes, left to right",
    5: "Case 5: any number of digits at any size. Labels: count, and every box with its class",
}


def _figure(width: float, height: float):
    """A new figure that pyplot does not keep: shown once in Jupyter, never leaked in loops."""
    import matplotlib.pyplot as plt  # picks Agg when there is no display; inline in Jupyter

    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)
    return fig


def _as_boxes(boxes, name: str) -> np.ndarray:
    b = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, dtype=np.float32)
    if b.size and (b.ndim == 0 or b.shape[-1] != 4):
        raise ValueError(f"`{name}` should be xyxy boxes of shape (K, 4). Got shape {b.shape}.")
    return b.reshape(-1, 4)


def _per_box(values, k: int, name: str) -> list:
    if values is None:
        return [None] * k
    v = np.asarray(values).reshape(-1)
    if len(v) != k:
        raise ValueError(f"`{name}` should have one value per box ({k}). Got {len(v)}.")
    return list(v)


def _text(label, score) -> str:
    parts = [] if label is None else [str(label)]
    if score is not None:
        parts.append(f"{float(score):.2f}")
    return " ".join(parts)


def _draw_boxes(ax, boxes, labels, scores, colour: str, dashed: bool, below: bool) -> None:
    from matplotlib.patches import Rectangle

    for (x0, y0, x1, y1), label, score in zip(boxes, labels, scores):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                               linewidth=1.5, linestyle="--" if dashed else "-"))
        text = _text(label, score)
        if text:  # true labels above the box's top-left corner, predictions below its bottom-left
            ax.text(x0 - 0.5, (y1 if below else y0) - 0.5, text, color="black", fontsize=7,
                    va="top" if below else "bottom", ha="left",
                    bbox=dict(facecolor=colour, edgecolor="none", pad=1, alpha=0.9))


def draw_canvas(ax, image, boxes, labels=None, scores=None, pred_boxes=None, pred_labels=None,
                pred_scores=None):
    """Draws one canvas with its true boxes (green) and predicted boxes (red, dashed).

    Args:
        ax: a matplotlib ``Axes``.
        image (uint8[H, W]): the canvas.
        boxes (float[K, 4]): true ``xyxy`` boxes in pixels (K may be 0; a single box (4,) is fine).
        labels (int[K] or None): a class (or any text) for each true box, written above it.
        scores (float[K] or None): a score for each true box (rarely needed).
        pred_boxes (float[M, 4] or None): predicted ``xyxy`` boxes in pixels.
        pred_labels (int[M] or None): predicted classes, written below each predicted box.
        pred_scores (float[M] or None): predicted scores, written with two decimals.

    Returns:
        matplotlib.figure.Figure: the figure that holds ``ax``.

    Raises:
        ValueError: boxes not of shape (K, 4), or labels/scores not one per box.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"`image` should be one canvas of shape (H, W). Got shape {image.shape}.")
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    true = _as_boxes(boxes, "boxes")
    pred = _as_boxes(pred_boxes, "pred_boxes")
    _draw_boxes(ax, true, _per_box(labels, len(true), "labels"), _per_box(scores, len(true), "scores"),
                TRUE_COLOUR, dashed=False, below=False)
    _draw_boxes(ax, pred, _per_box(pred_labels, len(pred), "pred_labels"),
                _per_box(pred_scores, len(pred), "pred_scores"), PRED_COLOUR, dashed=True, below=True)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def _true_labels(ds, i: int):
    """(boxes (K, 4), labels (K,) or None, panel title) that case ``ds.case`` trains on, canvas i."""
    used = ds.mask[i]
    if ds.case == 2:
        present = bool(used.any())
        box = union_box(ds.boxes[i:i + 1], ds.mask[i:i + 1])[0]
        return (box[None] if present else np.zeros((0, 4))), None, f"presence {int(present)}"
    if ds.case in (4, 5):
        return ds.boxes[i][used], ds.classes[i][used], f"count {int(ds.count[i])}"
    if ds.case == 3:
        return ds.boxes[i][used], None, f"class {int(ds.classes[i, 0])}"
    return ds.boxes[i][used], None, ""


def _prediction(predictions, i: int) -> dict:
    if predictions is None:
        return {}
    out = {"pred_boxes": predictions["boxes"][i]}
    for key in ("labels", "scores"):
        if predictions.get(key) is not None:
            out[f"pred_{key}"] = predictions[key][i]
    return out


def sample_grid(ds, n: int = 16, predictions: dict | None = None):
    """A grid of the first ``n`` canvases of a dataset with the labels its case trains on.

    Case 2 shows the union box and presence; case 4 the count and each box with
    its class; case 3 the class; case 1 the box.

    Args:
        ds: a ``mnistloc.canvas.CanvasDataset`` of any case.
        n: how many canvases to show (at most ``len(ds)``).
        predictions: optional dict with ``"boxes"`` (per canvas (M, 4) ``xyxy`` pixels:
            an array (N, M, 4), (N, 4) or a list of arrays) and optionally ``"labels"``
            and ``"scores"`` (per canvas (M,)), drawn red and dashed.

    Returns:
        matplotlib.figure.Figure.

    Raises:
        ValueError: ``n`` < 1 or ``predictions`` without ``"boxes"``.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` should be a whole number >= 1. Got n={n!r}.")
    if predictions is not None and "boxes" not in predictions:
        raise ValueError(f"`predictions` should be a dict with 'boxes' (and optionally 'labels', 'scores'). "
                         f"Got keys {sorted(predictions)}.")
    n = min(n, len(ds))
    cols = min(n, 4 if n <= 16 else 8)
    rows = math.ceil(n / cols)
    fig = _figure(2.4 * cols, 2.4 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        boxes, labels, title = _true_labels(ds, i)
        draw_canvas(ax, ds.images[i], boxes, labels, **_prediction(predictions, i))
        if title:
            ax.set_title(title, fontsize=8)
    legend = "true boxes green" + ("; predictions red, dashed" if predictions is not None else "")
    digit = f" (digit {ds.classes[0, 0]})" if ds.case == 1 and len(ds) else ""
    fig.suptitle(f"{CASE_TITLES[ds.case]}{digit}\n{ds.split} split; {legend}", fontsize=9)
    return fig


def history_plot(history):
    """Training curves: one panel per loss (total, then each output), train solid, validation dashed.

    Args:
        history: a ``keras.callbacks.History`` or a dict of lists, e.g.
            ``{"loss": [...], "val_loss": [...], "box_loss": [...], "val_box_loss": [...]}``.
            Keys not ending in ``loss`` (metrics) get panels after the losses.

    Returns:
        matplotlib.figure.Figure.

    Raises:
        ValueError: an empty history.
    """
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise ValueError(f"`history` should be a Keras History or a non-empty dict of lists. Got {history!r}.")
    names = list(dict.fromkeys(k.removeprefix("val_") for k in h))  # first-seen order
    names.sort(key=lambda k: (k != "loss", not k.endswith("loss")))  # total loss, output losses, metrics
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig = _figure(3.6 * cols, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    from matplotlib.ticker import MaxNLocator

    for ax, name in zip(axes, names):
        for key, style, label in ((name, "-", "train"), (f"val_{name}", "--", "validation")):
            if key in h:
                values = np.asarray(h[key], dtype=float)
                ax.plot(np.arange(1, len(values) + 1), values, style, marker=".", label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    return fig


def save(fig, path) -> Path:
    """Writes ``fig`` as a PNG at ``path`` (folders created) and closes it.

    Args:
        fig: a matplotlib ``Figure``.
        path: where to write; should end in ``.png``.

    Returns:
        Path: the file written.

    Raises:
        ValueError: ``path`` does not end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`path` should end in .png. Got path={str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)  # a no-op for our figures; frees pyplot-made ones
    return path
