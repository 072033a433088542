"""Pictures: canvases with true and predicted boxes, sample grids, training curves, and the detector's parts:
heatmaps over canvases, boxes before and after NMS, precision-recall curves, confusion matrices.

Every function returns a ``matplotlib.figure.Figure`` that pyplot does not
keep open, so nothing leaks when many are made and a figure returned as a
notebook cell's value is shown once (not twice). ``save`` writes a PNG.
matplotlib (and scikit-learn) are imported here only, never by ``import mnistloc``.

Colours: true boxes green (solid), predicted boxes red (dashed). Boxes are
``xyxy`` pixels with an exclusive max; pixel ``i`` covers ``[i - 0.5, i + 0.5]``
on the axes, so a box is drawn exactly around its ink.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mnistloc import cases
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
    used, spec = ds.mask[i], cases.get(ds.case)
    if spec.box_kind == "union":
        present = bool(used.any())
        box = union_box(ds.boxes[i:i + 1], ds.mask[i:i + 1])[0]
        return (box[None] if present else np.zeros((0, 4))), None, f"presence {int(present)}"
    if spec.box_kind == "matched":
        return ds.boxes[i][used], ds.classes[i][used], f"count {int(ds.count[i])}"
    if spec.classes:
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
    digit = f" (digit {ds.classes[0, 0]})" if cases.get(ds.case).one_class and len(ds) else ""
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


def draw_heatmap(ax, image, heatmap, boxes=None, *, alpha: float = 0.55):
    """Draws a canvas with a heatmap laid over it, each cell over the pixels it covers, and true boxes.

    Args:
        ax: a matplotlib ``Axes``.
        image (uint8[H, W]): the canvas.
        heatmap (float[G, G']): one value per cell, e.g. ``heatmap_targets(...)[i]`` or a
            model's ``presence[i, ..., 0]``; cell (r, c) covers rows ``r * H / G ...``.
        boxes (float[K, 4] or None): ``xyxy`` pixels, drawn green.
        alpha: the heatmap's opacity.

    Returns:
        matplotlib.figure.Figure: the figure that holds ``ax``.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"`heatmap` should be one map of shape (G, G). Got shape {heat.shape}.")
    fig = draw_canvas(ax, image, boxes)
    h, w = np.shape(image)
    ax.imshow(heat, cmap="inferno", vmin=0, vmax=1, alpha=alpha, interpolation="nearest",
              extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    return fig


def heatmap_plot(images, heatmaps: dict, boxes=None, titles=None):
    """Heatmaps over their canvases: one row per named heatmap, one column per canvas.

    Args:
        images (uint8[N, H, W]): the canvases.
        heatmaps: ``{name: float[N, G, G]}``, e.g. ``{"target": ..., "predicted": ...}``.
        boxes (list of float[K, 4] or None): true ``xyxy`` boxes per canvas.
        titles (list of str or None): one per canvas, above the first row.

    Returns:
        matplotlib.figure.Figure.
    """
    if not isinstance(heatmaps, dict) or not heatmaps:
        raise ValueError(f"`heatmaps` should be a dict {{name: (N, G, G) maps}}. Got {type(heatmaps).__name__}.")
    images = np.asarray(images)
    for name, maps in heatmaps.items():
        if np.shape(maps)[:1] != images.shape[:1] or np.ndim(maps) != 3:
            raise ValueError(f"`heatmaps[{name!r}]` should hold one (G, G) map per canvas ({len(images)}). "
                             f"Got shape {np.shape(maps)}.")
    fig = _figure(2.3 * len(images), 2.3 * len(heatmaps) + 0.4)
    axes = fig.subplots(len(heatmaps), len(images), squeeze=False)
    for r, (name, maps) in enumerate(heatmaps.items()):
        for c, ax in enumerate(axes[r]):
            draw_heatmap(ax, images[c], maps[c], None if boxes is None else boxes[c])
            ax.set_title(f"{name}" + (f": {titles[c]}" if titles is not None and r == 0 else ""), fontsize=8)
    fig.suptitle("centre heatmaps over the canvases (bright: a digit's centre); true boxes green", fontsize=9)
    return fig


def nms_plot(image, boxes, scores, keep, labels=None):
    """Detections before and after non-maximum suppression, side by side.

    Args:
        image (uint8[H, W]): the canvas.
        boxes (float[M, 4]): every detection, ``xyxy`` pixels.
        scores (float[M]): their scores.
        keep (int[K]): the indices NMS kept (``decoder.nms``).
        labels (int[M] or None): their classes.

    Returns:
        matplotlib.figure.Figure.
    """
    b, keep = _as_boxes(boxes, "boxes"), np.asarray(keep, dtype=np.int64).reshape(-1)
    s, lab = _per_box(scores, len(b), "scores"), _per_box(labels, len(b), "labels")
    if keep.size and (keep.min() < 0 or keep.max() >= len(b)):
        raise ValueError(f"`keep` should index `boxes` (0 to {len(b) - 1}). Got {keep.tolist()}.")
    fig = _figure(6, 3.4)
    before, after = fig.subplots(1, 2)
    draw_canvas(before, image, None, pred_boxes=b, pred_labels=None if labels is None else lab, pred_scores=s)
    draw_canvas(after, image, None, pred_boxes=b[keep], pred_scores=[s[i] for i in keep],
                pred_labels=None if labels is None else [lab[i] for i in keep])
    before.set_title(f"before NMS: {len(b)} boxes", fontsize=9)
    after.set_title(f"after NMS: {len(keep)} kept", fontsize=9)
    return fig


def pr_curve(scores, matched, num_true: int, *, ap: float | None = None, ax=None):
    """The precision-recall curve of ranked detections, with its interpolated envelope.

    Detections are ranked by descending score (stable); after the first k,
    precision = TP / k and recall = TP / ``num_true``. The envelope at recall r is
    the best precision at recall >= r: COCO's AP is its mean at the 101 recalls 0, 0.01, ..., 1.

    Args:
        scores (float[D]): detection scores.
        matched (bool[D]): true positives (e.g. ``match_detections(...) >= 0``).
        num_true: the number of true boxes, >= 1.
        ap: an average precision to show in the title (e.g. your own ``average_precision``).
        ax: draw into this ``Axes``; a new figure when None.

    Returns:
        matplotlib.figure.Figure.
    """
    s, m = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(matched, dtype=bool).reshape(-1)
    if len(s) != len(m) or not num_true >= 1:
        raise ValueError(f"`scores` and `matched` should have one entry per detection and `num_true` >= 1. "
                         f"Got {len(s)}, {len(m)} and num_true={num_true!r}.")
    tp = np.cumsum(m[np.argsort(-s, kind="mergesort")])
    precision, recall = tp / np.arange(1, len(tp) + 1), tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if ax is None:
        ax = _figure(4.2, 3.6).subplots()
    if len(s):  # the envelope holds envelope[k] on (recall[k-1], recall[k]]
        ax.plot(recall, precision, ".-", color="#999999", label="precision after each detection")
        ax.step(np.r_[0, recall], np.r_[envelope[0], envelope], where="pre", color=PRED_COLOUR,
                label="interpolated envelope")
        ax.legend(fontsize=7, loc="lower left")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title("precision-recall" + (f" (AP {ap:.3f})" if ap is not None else ""), fontsize=9)
    ax.grid(alpha=0.3)
    return ax.figure


def confusion_matrix_plot(y_true, y_pred, *, labels=range(10), normalize: str | None = None, ax=None):
    """The confusion matrix as an image (scikit-learn's ``ConfusionMatrixDisplay``).

    Args:
        y_true (int[N]): true classes.
        y_pred (int[N]): predicted classes.
        labels: the classes, in order (rows and columns).
        normalize: None (counts), ``"true"`` (each row sums to 1), ``"pred"`` or ``"all"``.
        ax: draw into this ``Axes``; a new figure when None.

    Returns:
        matplotlib.figure.Figure.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        ax = _figure(4.6, 4.2).subplots()
    ConfusionMatrixDisplay.from_predictions(np.asarray(y_true), np.asarray(y_pred), labels=list(labels),
                                            normalize=normalize, ax=ax, colorbar=False, cmap="Blues",
                                            values_format=".2f" if normalize else "d")
    ax.set_title("confusion matrix (rows: true class, columns: predicted)", fontsize=9)
    return ax.figure


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
