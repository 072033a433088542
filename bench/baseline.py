"""The classic course architecture, trained beside ours in ``bench/quality.py``.

The model is ``mnistloc.models.classic_model`` (what lesson 1's first exercise
builds), compiled by ``models.compile_classic`` and trained on
``models.classic_targets``: as in the widely used 75x75 MNIST localisation lab,
three Conv2D (3x3, ReLU) + AveragePooling2D blocks, Flatten, Dense(128), then a
Dense head per label, the boxes in ``rel_xyxy`` (divided by the canvas side):

1. ``presence`` Dense(1, sigmoid) and ``box`` Dense(4);
2. ``presence`` and ``box`` with the masked box loss, so empty canvases add none;
3. ``class`` Dense(10, softmax) and ``box`` Dense(4);
4. ``count`` Dense(3, softmax), and two slots ordered left to right:
   ``boxes`` Dense(8) -> (2, 4) and ``classes`` Dense(20) -> (2, 10) softmax,
   both with masked losses (unused slots add none).

``tune`` searches the learning rate and the box output (``"linear"``, the lab's,
or ``"sigmoid"``) in short runs; ``bench/quality.py --baseline`` trains the best
for the full step budget on every seed.
"""
from __future__ import annotations

import numpy as np

from mnistloc import models  # first: mnistloc keeps TensorFlow's start-up lines quiet
from mnistloc.cases import SLOTS

BOXES = ("linear", "sigmoid")


def build_baseline(case: int, size: int = 128, *, learning_rate: float = 1e-3, box: str = "linear") -> "keras.Model":
    """The classic model of ``case``, compiled: ``models.classic_model`` with ``box`` outputs and Adam at
    ``learning_rate`` (``models.compile_classic``: mean absolute error on boxes, cross-entropy elsewhere)."""
    if box not in BOXES:
        raise ValueError(f"`box` should be one of {BOXES}. Got box={box!r}.")
    return models.compile_classic(models.classic_model(case, size=size, box=box), case, learning_rate=learning_rate)


encode = models.classic_targets
"""The baseline's targets for a CanvasDataset (masks first where a loss is masked)."""


def decode(case: int, outputs: dict, size: int = 128):
    """``(pred, found)``: predictions in ``mnistloc.decoder.decode``'s format, and case 4's scored detections."""
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


GRID = ((1e-3, "linear"), (3e-3, "linear"), (3e-4, "sigmoid"), (1e-3, "sigmoid"), (3e-3, "sigmoid"), (1e-2, "sigmoid"))
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
