"""Case 5's reference detector on several seeds, beside the case-4 slot model on the same canvases.

    .venv/bin/python bench/quality_case5.py run --model dense --seed 0 --part /tmp/d0.json
    .venv/bin/python bench/quality_case5.py run --model slot --seed 0 --part /tmp/s0.json
    .venv/bin/python bench/quality_case5.py merge /tmp/d*.json /tmp/s*.json

``run`` trains one model for ``--seconds`` (default 175) of all cores
(``clock="cpu"``: the process's CPU time over the cores, so other jobs on the
machine cost wall time, not steps) and scores it on the 2,000 held-out case 5
test canvases (``mnistloc.evaluation.test_dataset(5)``): COCO mAP, AP50, AP75
and the count accuracy.

- ``dense``: ``training.train(5)``, the dense detector (``mnistloc.dense``).
- ``slot``: the classic case-4 model (``bench/baseline.py``: count 0-2 and
  two slots), trained on case 4 canvases as designed, then shown case 5
  canvases: it cannot report more than two digits.

``merge`` writes ``bench/results/quality_case5.json`` (per seed, min and
median per model) and the table in ``bench/README.md`` between the case 5 markers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

METRICS = ("map", "map50", "map75", "count_accuracy")
DENSE_RATE = 6e-3  # training.LEARNING_RATE when these runs were made (not imported: that loads TensorFlow)
BEGIN, END = "<!-- quality5:begin -->", "<!-- quality5:end -->"


def run(model: str, seed: int, seconds: float, clock: str, save: Path | None = None, **train) -> dict:
    """Trains and scores one model (saved to ``save`` if given); returns its row."""
    import numpy as np

    from mnistloc import evaluation, metrics, training

    load_before = os.getloadavg()
    ds = evaluation.test_dataset(5)
    if model == "dense":
        net, history = training.train(5, seconds=seconds, seed=seed, clock=clock, progress=False, **train)
        result = evaluation.evaluate(net, 5)
    else:
        import baseline

        net = baseline.build_baseline(4)
        net, history = training.train(4, seconds=seconds, seed=seed, model=net, encode=baseline.encode,
                                      learning_rate=1e-3, clock=clock, progress=False)
        pred, found = baseline.decode(4, evaluation.predict(net, ds))
        ap = metrics.mean_average_precision(*ds.box_lists(), *found)
        result = {"count_accuracy": float(np.mean(pred["count"] == ds.count)),
                  "map": ap["map"], "map50": ap["map50"], "map75": ap["map75"]}
    if save is not None:
        training.save_model(net, save, force=True)
    return {"model": model, "seed": seed, "seconds": seconds, "clock": clock, "train": train,
            "wall_seconds": round(history.seconds, 1), "cpu_seconds": round(history.cpu_seconds, 1),
            "epochs": len(history.history["loss"]), "parameters": net.count_params(),
            "load_before": load_before, "load_after": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **{k: float(result[k]) for k in METRICS}}


def _group(r: dict) -> str:
    """A run's configuration: model, budget and learning rate (the script's default is training's)."""
    rate = r["train"].get("learning_rate", DENSE_RATE if r["model"] == "dense" else 1e-3)
    return f"{r['model']} {r['seconds']:.0f}s lr={rate:g}"


def summarise(rows: list[dict]) -> dict:
    """Per configuration (model, budget, learning rate): the rows by seed, and the min and median."""
    out = {}
    for group in sorted({_group(r) for r in rows}):
        mine = sorted((r for r in rows if _group(r) == group), key=lambda r: r["seed"])
        out[group] = {"seeds": {str(r["seed"]): r for r in mine},
                      "min": {k: min(r[k] for r in mine) for k in METRICS},
                      "median": {k: statistics.median(r[k] for r in mine) for k in METRICS}}
    return out


def table(summary: dict) -> str:
    names = {"dense": "dense detector (case 5)", "slot": "case-4 slot model (classic, 2 slots)"}
    lines = ["| model | budget (s of 2 cores) | learning rate | seed | CPU s | wall s | epochs | mAP | AP50 | AP75 "
             "| count accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for group, s in summary.items():
        model, budget, rate = group.split()
        head = f"| {names.get(model, model)} | {budget[:-1]} | {rate[3:]} "
        for seed, r in s["seeds"].items():
            lines.append(f"{head}| {seed} | {r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} | {r['epochs']} | "
                         + " | ".join(f"{r[k]:.3f}" for k in METRICS) + " |")
        if len(s["seeds"]) > 1:
            for agg in ("min", "median"):
                lines.append(f"{head}| **{agg}** | | | | " + " | ".join(f"**{s[agg][k]:.3f}**" for k in METRICS) + " |")
    return "\n".join(lines)


def write_readme(path: Path, summary: dict, rows: list[dict]) -> None:
    loads = [r["load_after"][0] for r in rows] + [r["load_before"][0] for r in rows]
    budget = {(r["seconds"], r["clock"]) for r in rows}
    body = (f"{BEGIN}\n{table(summary)}\n\nBudget: "
            + "; ".join(f"{s:.0f} s of training on the {c} clock" for s, c in sorted(budget))
            + " (cpu: the process's CPU time / 2 cores, i.e. seconds of both cores whatever else runs). "
            f"Scored on the 2,000 held-out case 5 test canvases. Load average (1 min) from {min(loads):.1f} "
            f"to {max(loads):.1f} during the runs (other sessions shared the 2 cores; runs went in parallel). "
            f"Targets: mAP >= 0.65 and AP50 >= 0.90 on every seed.\n{END}")
    text = path.read_text()
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + (
            "\n\n## Case 5: any number of digits at any size (`bench/quality_case5.py`)\n\n"
            "The dense detector (presence, box and class per 8x8 cell; the count is the number of presence "
            "peaks after NMS) against the classic case-4 slot model, which predicts a count of 0 to 2 and two "
            "boxes, trained on case 4 canvases and shown case 5 canvases (0 to 6 digits scaled 0.6-1.6).\n\n"
            + body + "\n")
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score one model")
    r.add_argument("--model", choices=("dense", "slot"), required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--seconds", type=float, default=175.0)
    r.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    r.add_argument("--learning-rate", type=float, default=None)
    r.add_argument("--part", type=Path, required=True, help="JSON file for this run's row")
    r.add_argument("--save", type=Path, help="also save the trained model here (.keras)")
    m = sub.add_parser("merge", help="combine rows into the results JSON and the README table")
    m.add_argument("parts", type=Path, nargs="+")
    m.add_argument("--out", type=Path, default=HERE / "results" / "quality_case5.json")
    m.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    if args.command == "run":
        train = {} if args.learning_rate is None or args.model != "dense" else {"learning_rate": args.learning_rate}
        row = run(args.model, args.seed, args.seconds, args.clock, args.save, **train)
        args.part.parent.mkdir(parents=True, exist_ok=True)
        args.part.write_text(json.dumps(row, indent=2) + "\n")
        print(json.dumps(row))
        return 0
    rows = [json.loads(Path(q).read_text()) for q in args.parts]
    summary = summarise(rows)
    args.out.write_text(json.dumps({"targets": {"map": 0.65, "map50": 0.90}, **summary}, indent=2) + "\n")
    print(table(summary))
    if not args.no_readme:
        write_readme(HERE / "README.md", summary, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
