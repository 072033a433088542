"""The classic course architecture, trained beside ours in ``bench/quality.py``.

As in the widely used 75x75 MNIST localisation lab: three Conv2D (3x3, ReLU)
+ AveragePooling2D blocks, Flatten, Dense(128), then a softmax head and a
4-unit box head regressing ``rel_xyxy`` (boxes divided by the canvas size).
Per case, the heads are what the case's labels ask for (``CanvasDataset.targets``):

1. ``box`` Dense(4) (mean squared error) and ``presence`` Dense(1, sigmoid);
2. ``presence`` Dense(1, sigmoid) and ``box`` Dense(4) with the masked box
   loss (``y_true`` = presence then the union box), so empty canvases add none;
3. ``class`` Dense(10, softmax) and ``box`` Dense(4);
4. ``count`` Dense(3, softmax), and two slots ordered left to right:
   ``boxes`` Dense(8) -> (2, 4) and ``classes`` Dense(20) -> (2, 10) softmax,
   both with masked losses (unused slots add none).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from mnistloc import models
from mnistloc.canvas import SLOTS


BOXES = ("linear", "sigmoid")


def build_baseline(case: int, size: int = 128, *, learning_rate: float = 1e-3, box: str = "linear") -> keras.Model:
    """The classic model of ``case``: image (B, size, size) -> named outputs (see the module docstring).

    Args:
        case: 1 to 4.
        size: canvas side in pixels.
        learning_rate: Adam's rate.
        box: ``"linear"`` box outputs (the classic lab's), or ``"sigmoid"``: ``rel_xyxy`` squashed
            into [0, 1], where every box lies.
    """
    if box not in BOXES:
        raise ValueError(f"`box` should be one of {BOXES}. Got box={box!r}.")
    squash = "sigmoid" if box == "sigmoid" else None
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    out = {}
    if case in (1, 2):
        out["presence"] = layers.Dense(1, activation="sigmoid", name="presence")(x)
    if case == 3:
        out["class"] = layers.Dense(10, activation="softmax", name="class")(x)
    if case in (1, 2, 3):
        out["box"] = layers.Dense(4, activation=squash, name="box")(x)
    if case == 4:
        out["count"] = layers.Dense(SLOTS + 1, activation="softmax", name="count")(x)
        out["boxes"] = layers.Reshape((SLOTS, 4), name="boxes")(layers.Dense(SLOTS * 4, activation=squash)(x))
        logits = layers.Reshape((SLOTS, 10))(layers.Dense(SLOTS * 10)(x))
        out["classes"] = layers.Softmax(name="classes")(logits)
    model = keras.Model(images, out, name=f"baseline{case}")
    losses = {"presence": "binary_crossentropy", "class": "categorical_crossentropy", "box": "mse",
              "count": "categorical_crossentropy", "boxes": models.masked_box_loss,
              "classes": models.masked_class_loss}
    if case == 2:
        losses["box"] = models.masked_box_loss
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss={k: losses[k] for k in out})
    return model


def encode(ds) -> dict[str, np.ndarray]:
    """The baseline's targets for a CanvasDataset (masks first where a loss is masked)."""
    t = ds.targets()
    if ds.case == 2:
        return {"presence": t["presence"], "box": np.concatenate([t["presence"], t["box"]], axis=-1)}
    if ds.case == 4:
        m = t["mask"][..., None]
        return {"count": t["count"], "boxes": np.concatenate([m, t["boxes"]], axis=-1),
                "classes": np.concatenate([m, t["classes"]], axis=-1)}
    return t


def decode(case: int, outputs: dict, size: int = 128):
    """``(pred, found)``: predictions in ``mnistloc.decoding.decode``'s format, and case 4's scored detections."""
    out = {k: np.asarray(v) for k, v in outputs.items()}
    n = len(next(iter(out.values())))
    if case in (1, 2, 3):
        box = np.clip(out["box"] * size, 0, size).astype(np.float32)
        pred = {"box": box, "count": np.ones(n, dtype=np.int64)}
        if case == 2:
            pred["presence"] = out["presence"][:, 0] >= 0.5
            pred["box"] = np.where(pred["presence"][:, None], box, 0)
            pred["count"] = pred["presence"].astype(np.int64)
        if case == 3:
            pred["class"] = out["class"].argmax(-1)
        return pred, None
    count = out["count"].argmax(-1)
    mask = np.arange(SLOTS) < count[:, None]
    boxes = np.clip(out["boxes"] * size, 0, size).astype(np.float32)  # [n, 2, 4]
    classes = out["classes"].argmax(-1)  # [n, 2]
    more_than = 1 - np.cumsum(out["count"], axis=-1)[:, :SLOTS]  # [n, 2]: P(count > k)
    scores = more_than * out["classes"].max(-1)
    pred = {"boxes": np.where(mask[..., None], boxes, 0), "mask": mask, "classes": np.where(mask, classes, -1),
            "scores": np.where(mask, scores, 0), "count": count}
    found = ([boxes[i] for i in range(n)], [classes[i].astype(np.int64) for i in range(n)],
             [scores[i].astype(np.float32) for i in range(n)])
    return pred, found


GRID = ((1e-3, "linear"), (1e-3, "sigmoid"), (3e-3, "sigmoid"), (3e-4, "sigmoid"))
"""The learning rates and box outputs tried by ``tune``."""


def tune(case: int = 3, steps: int = 300, seed: int = 0, grid=GRID) -> list[dict]:
    """Trains the classic model for ``steps`` with each (learning rate, box output) of ``grid``; scores each.

    The warm-up is a fifth of the steps, as ``training.WARMUP_STEPS`` is of the benchmark's budget.
    """
    import os

    from mnistloc import evaluation, training

    rows = []
    for rate, box in grid:
        net = build_baseline(case, learning_rate=rate, box=box)
        net, history = training.train(case, steps=steps, seed=seed, model=net, encode=encode, learning_rate=rate,
                                      warmup_steps=steps // 5, validation=0, progress=False)
        ds = evaluation.test_dataset(case)
        pred, found = decode(case, evaluation.predict(net, ds))
        rows.append({"learning_rate": rate, "box": box, "steps": history.steps,
                     "cpu_seconds": round(history.cpu_seconds, 1), "load_after": os.getloadavg()[0],
                     **evaluation.score_predictions(case, ds, pred, found)})
        print(rows[-1], flush=True)
    return rows


def reference(case: int = 3, steps: int = 300, seed: int = 0) -> dict:
    """Our model for the same steps, warm-up and seed as ``tune``'s runs: the comparison at that budget."""
    import os

    from mnistloc import evaluation, training

    model, history = training.train(case, steps=steps, seed=seed, warmup_steps=steps // 5, validation=0,
                                    progress=False)
    return {"model": "reference", "learning_rate": training.LEARNING_RATE, "steps": history.steps,
            "precision": history.config.resolved_precision(), "cpu_seconds": round(history.cpu_seconds, 1),
            "load_after": os.getloadavg()[0], **evaluation.evaluate(model, case)}


if __name__ == "__main__":
    import argparse
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(description="Tune the classic model: a short run per learning rate and box output.")
    p.add_argument("--case", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "baseline_tuning.json")
    p.add_argument("--reference-only", action="store_true", help="add our model's run to --out; no tuning")
    args = p.parse_args()
    if args.reference_only:
        result = json.loads(args.out.read_text())
        result["reference"] = reference(args.case, args.steps, args.seed)
        result.setdefault("warmup_steps", args.steps // 5)
    else:
        result = {"case": args.case, "steps": args.steps, "seed": args.seed, "warmup_steps": args.steps // 5,
                  "runs": tune(args.case, args.steps, args.seed)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
