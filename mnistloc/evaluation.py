"""Scoring a case model on held-out digits: the metrics, their targets and the pictures.

The test canvases are ``canvas.make_dataset(case, 2000, seed=TEST_SEED,
split="test")``: digit instances the model never saw in training. Metric names
(also the keys of ``bench/results/quality.json``):

- case 1: ``mean_iou``, ``iou50``, ``iou75`` (share of canvases with IoU >= .5 / .75);
- case 2: ``presence_accuracy``, ``mean_iou`` (of the union box, on canvases with digits);
- case 3: ``class_accuracy``, ``mean_iou``, ``joint_accuracy`` (class right and IoU >= .5);
- case 4: ``count_accuracy``, ``map``, ``map50``, ``map75`` (COCO), and ``class_accuracy``
  and ``mean_iou`` of the true digits matched to a predicted digit (slots paired by the
  highest IoU, the unmatched ones left out);
- case 5: ``count_accuracy``, ``map``, ``map50``, ``map75``.

Which metrics a case reports, which box they measure and the targets are the
case's spec (``mnistloc.cases``); the predictions come from ``mnistloc.decoder``.
"""
from __future__ import annotations

import numpy as np

from mnistloc import boxes as B
from mnistloc import canvas, cases, decoder, metrics

TEST_CANVASES = 2000
METRICS = ("presence_accuracy", "count_accuracy", "class_accuracy", "joint_accuracy", "mean_iou", "iou50",
           "iou75", "map", "map50", "map75")  # every metric, in the order tables show them
TEST_SEED = 20_260_101
TARGETS = {n: c.targets for n, c in cases.CASES.items()}
"""Per case, metric -> the minimum its reference model meets on every seed (``cases.Case.targets``)."""


def test_dataset(case: int, n: int = TEST_CANVASES, seed: int = TEST_SEED, source="auto"):
    """The held-out canvases of ``case``: test-split digits, a fixed seed."""
    return canvas.make_dataset(case, n, seed=seed, split="test", source=source)


def predict(model, ds, *, batch_size: int = 256):
    """The model's raw outputs (dict of arrays, n rows each) on ``ds.images``.

    Every batch has the same shape (the last one is padded with blank canvases,
    then cut off), so Keras traces the model's predict function once, not once
    more for a short last batch.
    """
    images = ds.images.astype(np.float32)
    n = len(images)
    pad = -n % batch_size if n > batch_size else 0
    if pad:
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], np.float32)])
    outputs = model.predict(images, batch_size=min(batch_size, max(n, 1)), verbose=0)
    return {name: np.asarray(v)[:n] for name, v in outputs.items()}


def score(case: int, ds, outputs, **parts) -> dict[str, float]:
    """The case's metrics for raw model ``outputs`` on dataset ``ds``.

    Args:
        case: 1 to 5.
        ds: the CanvasDataset the outputs are for.
        outputs: ``predict(model, ds)``.
        **parts: stand-ins for the decoder's parts (``decoder.detect``).

    Returns:
        dict of floats named as in the module docstring.
    """
    pred = decoder.decode(case, outputs, **parts)
    found = decoder.detections(pred["found"]) if "probs" in pred["found"] else None
    return score_predictions(case, ds, pred, found)


def score_predictions(case: int, ds, pred: dict, found=None) -> dict[str, float]:
    """The case's metrics (``cases.Case.metrics``) for decoded predictions (any model's, in ``decoder.decode``'s format).

    Args:
        case: 1 to 5.
        ds: the CanvasDataset.
        pred: as returned by ``decoder.decode``: ``boxes``, ``mask``, ``classes``, ``count`` per canvas.
        found: ``(boxes, labels, scores)`` lists for average precision (``decoder.detections``), where
            the case reports ``map``.
    """
    spec = cases.get(case)
    if "map" in spec.metrics and found is None:
        raise ValueError(f"Case {case} needs `found`: (boxes, labels, scores) lists for average precision.")
    value = {}
    if spec.box_kind == "matched":
        ious, right = _matched(ds, pred)
        value["mean_iou"] = float(np.mean(ious)) if len(ious) else 0.0
        value["class_accuracy"] = float(np.mean(right)) if len(right) else 0.0
    else:
        true, guess, keep = _boxes_measured(spec, ds, pred)
        value.update(_box_scores(true[keep], guess[keep]))
        value["class_accuracy"] = metrics.accuracy(ds.classes[:, 0], pred["classes"][:, 0])
        value["joint_accuracy"] = float(np.mean((ds.classes[:, 0] == pred["classes"][:, 0])
                                                & (B.iou(true, guess) >= 0.5)))
    value["presence_accuracy"] = metrics.accuracy((ds.count > 0).astype(int), (pred["count"] > 0).astype(int))
    value["count_accuracy"] = metrics.accuracy(ds.count, pred["count"])
    if found is not None:
        ap = metrics.mean_average_precision(*ds.box_lists(), *found)
        value.update(map=ap["map"], map50=ap["map50"], map75=ap["map75"])
    return {name: value[name] for name in spec.metrics}


def _boxes_measured(spec, ds, pred):
    """True and predicted box (n, 4) a canvas, and which canvases count: the digit's, or the union (with digits)."""
    if spec.box_kind == "union":
        present = ds.count > 0
        return B.union_box(ds.boxes, ds.mask), B.union_box(pred["boxes"], pred["mask"]), present
    return ds.boxes[:, 0], pred["boxes"][:, 0], np.ones(len(ds), bool)


def _box_scores(true_boxes, pred_boxes) -> dict[str, float]:
    return {"mean_iou": metrics.mean_iou(true_boxes, pred_boxes),
            "iou50": metrics.iou_rate(true_boxes, pred_boxes, 0.5),
            "iou75": metrics.iou_rate(true_boxes, pred_boxes, 0.75)}


def _matched(ds, pred):
    """IoU and class-correctness of each true digit paired with its best-overlapping predicted digit."""
    ious, right = [], []
    for i in range(len(ds)):
        t, p = ds.mask[i], pred["mask"][i]
        if not t.any() or not p.any():
            continue
        m = B.pairwise_iou(ds.boxes[i][t], pred["boxes"][i][p])  # [T, P]
        for a in range(m.shape[0]):  # at most two digits: greedy by IoU is exact enough
            b = int(np.argmax(m[a]))
            if m[a, b] > 0:
                ious.append(m[a, b])
                right.append(ds.classes[i][t][a] == pred["classes"][i][p][b])
                m[:, b] = -1
    return np.array(ious), np.array(right, dtype=bool)


def evaluate(model, case: int, *, n: int = TEST_CANVASES, seed: int = TEST_SEED, source="auto",
             return_predictions: bool = False):
    """Scores ``model`` on ``n`` held-out canvases of ``case``.

    Args:
        model: a model of ``case`` (``mnistloc.models``); another case's raises ValueError.
        case: 1 to 5.
        n: test canvases.
        seed: their seed.
        source: the digits.
        return_predictions: also return the dataset, the raw outputs and the decoded predictions.

    Returns:
        dict of metrics; or ``(metrics, ds, outputs)`` with ``return_predictions``.
    """
    from mnistloc.models import check_case  # Keras: only when a model is scored

    check_case(model, case)
    ds = test_dataset(case, n, seed, source)
    outputs = predict(model, ds)
    result = score(case, ds, outputs)
    return (result, ds, outputs) if return_predictions else result


def per_canvas_quality(case: int, ds, outputs) -> np.ndarray:
    """A score per canvas (n,), higher is better: what "worst predictions" sorts by.

    The IoU of the case's box (the union box in case 2, the mean best IoU over
    the true digits where digits are matched), 0 where a presence, class or count is wrong.
    """
    return per_canvas_quality_from_predictions(case, ds, decoder.decode(case, outputs))


def per_canvas_quality_from_predictions(case: int, ds, pred: dict) -> np.ndarray:
    """``per_canvas_quality`` for decoded predictions (``decoder.decode``'s format), shape (n,)."""
    spec = cases.get(case)
    if spec.box_kind == "matched":
        digits = pred["found"] if spec.pick == "all" else pred  # every digit found, or the slots
        q = np.array([_canvas_iou(ds.boxes[i][ds.mask[i]], digits["boxes"][i][digits["mask"][i]])
                      for i in range(len(ds))])
        right = np.ones(len(ds), bool)
        if spec.classes and spec.count_head:  # every digit's class, as a multiset
            right = np.array([sorted(ds.classes[i][ds.mask[i]]) == sorted(pred["classes"][i][pred["mask"][i]])
                              for i in range(len(ds))])
        return np.where((ds.count == pred["count"]) & right, q, 0.0)
    true, guess, present = _boxes_measured(spec, ds, pred)
    q = np.where(present, B.iou(true, guess), 1.0)
    q = np.where((ds.count > 0) == (pred["count"] > 0), q, 0.0)
    return np.where(ds.classes[:, 0] == pred["classes"][:, 0], q, 0.0) if spec.classes else q


def _canvas_iou(t: np.ndarray, p: np.ndarray) -> float:
    if len(t) == 0:
        return 1.0 if len(p) == 0 else 0.0
    if len(p) == 0:
        return 0.0
    return float(B.pairwise_iou(t, p).max(axis=1).mean())


def picture_predictions(case: int, outputs, index=None) -> dict:
    """Decoded predictions in the form ``viz.sample_grid(..., predictions=...)`` takes.

    Args:
        case: 1 to 5.
        outputs: raw outputs for n canvases.
        index (int[k] | None): which canvases, in order; all when None.

    Returns:
        dict: ``boxes`` (list of (M_i, 4) xyxy pixels), ``scores`` (list of (M_i,)), and ``labels``
        (list of (M_i,)) where the model labels its digits. The union box where the case measures it.
    """
    spec = cases.get(case)
    pred = decoder.decode(case, outputs)
    index = np.arange(len(pred["count"])) if index is None else np.asarray(index)
    if spec.box_kind == "union":
        union = B.union_box(pred["boxes"], pred["mask"])
        boxes = [union[i][None] if pred["count"][i] else np.zeros((0, 4)) for i in index]
        return {"boxes": boxes, "scores": [pred["scores"][i].max(initial=0)[None][:len(b)] for i, b in zip(index, boxes)]}
    found = pred["found"] if spec.pick == "all" else pred
    m = found["mask"]
    out = {"boxes": [found["boxes"][i][m[i]] for i in index], "scores": [found["scores"][i][m[i]] for i in index]}
    if spec.classes:
        out["labels"] = [found["classes"][i][m[i]] for i in index]
    return out


def write_report(model, case: int, out_dir, *, history=None, n: int = TEST_CANVASES, seed: int = TEST_SEED,
                 source="auto", show: int = 16) -> dict:
    """Evaluates ``model`` and writes ``metrics.json`` and pictures into ``out_dir``.

    Pictures: ``predictions.png`` (the first ``show`` test canvases, predicted
    red against true green), ``worst.png`` (the ``show`` canvases with the lowest
    ``per_canvas_quality``) and, given a history, ``history.png``.

    Returns:
        dict: the metrics (also in ``metrics.json``, with ``case`` and ``test_canvases``).
    """
    import json
    from pathlib import Path

    from mnistloc import viz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result, ds, outputs = evaluate(model, case, n=n, seed=seed, source=source, return_predictions=True)
    first = np.arange(min(show, len(ds)))
    worst = np.argsort(per_canvas_quality(case, ds, outputs), kind="stable")[:show]
    viz.save(viz.sample_grid(canvas.subset(ds, first), show, predictions=picture_predictions(case, outputs, first)),
             out / "predictions.png")
    viz.save(viz.sample_grid(canvas.subset(ds, worst), show, predictions=picture_predictions(case, outputs, worst)),
             out / "worst.png")
    if history is not None:
        viz.save(viz.history_plot(history), out / "history.png")
    record = {"case": case, "test_canvases": n, "test_seed": seed, **result}
    if history is not None and getattr(history, "seconds", None) is not None:
        record["train_seconds"] = round(float(history.seconds), 1)
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def format_metrics(result: dict) -> str:
    """Metrics as ``name  value`` lines, in a fixed order."""
    return "\n".join(f"{k:<18} {result[k]:.4f}" for k in METRICS if k in result)
