"""What a centre bump that grows with the digit buys case 5: the fixed width against the size-aware one.

    .venv/bin/python bench/bump_width.py run --sigma size --seed 0 --part /tmp/size0.json
    .venv/bin/python bench/bump_width.py run --sigma fixed --seed 0 --part /tmp/fixed0.json
    .venv/bin/python bench/bump_width.py merge /tmp/size*.json /tmp/fixed*.json
    .venv/bin/python bench/bump_width.py install /tmp/size*.json --weights DIR   # ship the median size-aware seed

``run`` trains case 5's detector for ``--steps`` optimiser steps (default
``quality_case5.STEPS``, the shipped model's budget; deterministic) on targets
whose centre bumps are ``targets.SIGMA`` cells wide for every digit
(``--sigma fixed``) or ``targets.size_sigmas`` (``--sigma size``), and scores it
on the 2,000 held-out case 5 test canvases: COCO mAP and AP50 over all digits,
the count accuracy, and per third of the digits by size (``sqrt(w h)``; the
edges are the test digits' 33rd and 67th percentiles) the recall (a detection
with IoU >= 0.5, ``nms_sweep.recall_by_size``) and the mAP restricted to that
third (true digits of the third; detections whose own size falls in it, COCO's
way with an area range). ``merge`` writes ``bench/results/bump_width.json``
(each run, and per policy the minimum and median over seeds) and the table in
``bench/README.md`` between the bump-width markers.
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

from quality_case5 import STEPS  # noqa: E402

THIRDS = ("small", "medium", "large")
BEGIN, END = "<!-- bumpwidth:begin -->", "<!-- bumpwidth:end -->"
COLUMNS = ("map", "map50", "count_accuracy") + tuple(f"{m}_{t}" for t in THIRDS for m in ("recall", "map"))


def _side(boxes):
    import numpy as np

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))


def by_size(ds, found) -> dict:
    """Recall and mAP per third of the true digits by size, and the edges (px) that split them."""
    import numpy as np

    from mnistloc import metrics, nms_sweep

    true_boxes, true_labels = ds.box_lists()
    edges = tuple(float(e) for e in np.percentile(_side(np.concatenate(true_boxes)), [100 / 3, 200 / 3]))
    boxes, labels, scores = found
    recall = nms_sweep.recall_by_size(true_boxes, boxes, edges=edges)
    out = {"edges_px": edges}
    for g, name in enumerate(THIRDS):
        lo, hi = ((0,) + edges)[g], (edges + (np.inf,))[g]
        keep_t = [(_side(t) >= lo) & (_side(t) < hi) for t in true_boxes]
        keep_p = [(_side(b) >= lo) & (_side(b) < hi) for b in boxes]
        ap = metrics.mean_average_precision([t[k] for t, k in zip(true_boxes, keep_t)],
                                            [c[k] for c, k in zip(true_labels, keep_t)],
                                            [b[k] for b, k in zip(boxes, keep_p)], [c[k] for c, k in zip(labels, keep_p)],
                                            [s[k] for s, k in zip(scores, keep_p)])
        out[f"recall_{name}"] = recall[nms_sweep.SIZE_NAMES[g]][0]
        out[f"map_{name}"] = ap["map"]
    return out


def run(sigma: str, seed: int, steps: int, weights: Path | None = None) -> dict:
    """Trains and scores one detector; returns its row."""
    from mnistloc import decoder, evaluation, training

    load_before = os.getloadavg()
    net, history = training.train(5, steps=steps, seed=seed, sigma=sigma, validation=0, progress=True)
    if weights is not None:
        weights.mkdir(parents=True, exist_ok=True)
        net.save_weights(weights / f"case5-{sigma}-seed{seed}.weights.h5")
    ds = evaluation.test_dataset(5)
    outputs = evaluation.predict(net, ds)
    scores = evaluation.score(5, ds, outputs)
    found = decoder.detections(decoder.decode(5, outputs)["found"])
    return {"sigma": sigma, "seed": seed, "steps": history.steps, "stalled": bool(getattr(history, "stalled", False)),
            "precision": history.config.resolved_precision(), "wall_seconds": round(history.seconds, 1),
            "cpu_seconds": round(history.cpu_seconds, 1), "load_before": load_before, "load_after": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "map": scores["map"], "map50": scores["map50"], "count_accuracy": scores["count_accuracy"],
            **by_size(ds, found)}


def summarise(rows: list[dict]) -> dict:
    """Per policy: the rows by seed, and the minimum and median of every column."""
    out = {}
    for sigma in sorted({r["sigma"] for r in rows}):
        mine = sorted((r for r in rows if r["sigma"] == sigma), key=lambda r: r["seed"])
        out[sigma] = {"runs": mine,
                      "min": {c: min(r[c] for r in mine) for c in COLUMNS},
                      "median": {c: statistics.median(r[c] for r in mine) for c in COLUMNS}}
    return out


def table(summary: dict) -> str:
    """The README table: per policy, minimum / median over seeds of each column."""
    head = ["bump width", "seeds", "mAP", "AP50", "count"] + [f"{t} recall / mAP" for t in THIRDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sigma, s in summary.items():
        mm = lambda c: f"{s['min'][c]:.3f} / {s['median'][c]:.3f}"  # noqa: E731
        cells = [sigma, ", ".join(str(r["seed"]) for r in s["runs"]), mm("map"), mm("map50"), mm("count_accuracy")]
        cells += [f"{mm('recall_' + t)}; {mm('map_' + t)}" for t in THIRDS]
        lines.append("| " + " | ".join(cells) + " |")
    runs = [r for s in summary.values() for r in s["runs"]]
    edges = sorted({tuple(round(e, 1) for e in r["edges_px"]) for r in runs})
    loads = [x for r in runs for x in (r["load_before"][0], r["load_after"][0])]
    lines.append("")
    lines.append(f"Minimum / median over seeds. Thirds by digit size sqrt(w h): edges {edges[0][0]} and "
                 f"{edges[0][1]} px. {runs[0]['steps']} steps a run ({runs[0]['precision']}), "
                 f"{min(r['cpu_seconds'] for r in runs):.0f}-{max(r['cpu_seconds'] for r in runs):.0f} CPU-s; "
                 f"1-minute load {min(loads):.1f} to {max(loads):.1f} at the runs' starts and ends; "
                 f"{runs[0]['date'][:10]}. Stalled runs: {sum(r['stalled'] for r in runs)}.")
    return "\n".join(lines)


def merge(paths, out: Path, readme: Path | None) -> dict:
    rows = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        rows += data if isinstance(data, list) else [r for s in data.get("summary", {}).values() for r in s["runs"]] \
            if "summary" in data else [data]
    summary = summarise(rows)
    out.write_text(json.dumps({"summary": summary}, indent=1) + "\n")
    if readme is not None:
        text = readme.read_text()
        if BEGIN in text and END in text:
            a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
            readme.write_text(text[:a] + "\n" + table(summary) + "\n" + text[b:])
    print(table(summary))
    return summary


def install(paths, weights: Path) -> dict:
    """Ships the median size-aware seed (by mAP; the lower median of an even count) as case 5's weights."""
    import quality

    rows = sorted((r for p in paths for r in [json.loads(Path(p).read_text())] if r.get("sigma") == "size"),
                  key=lambda r: (r["map"], r["seed"]))
    if not rows or len({r["steps"] for r in rows}) != 1:
        raise ValueError(f"install: expected size-aware rows of one step budget. Got {[r.get('steps') for r in rows]}.")
    row = rows[(len(rows) - 1) // 2]
    seeds = sorted(r["seed"] for r in rows)
    record = quality.ship(5, weights / f"case5-size-seed{row['seed']}.weights.h5", {
        "case": 5, "seed": row["seed"], "steps": row["steps"], "precision": row["precision"], "sigma": "size",
        "median_of_seeds": seeds, "ranked_by": "map",
        "command": f"python bench/bump_width.py run --sigma size --steps {row['steps']} --seed S --weights DIR "
                   f"--part PART (S in {seeds}); python bench/bump_width.py install PART... --weights DIR",
        "benchmark": {k: row[k] for k in ("steps", "wall_seconds", "cpu_seconds", "stalled", "precision", "map",
                                          "map50", "count_accuracy")}})
    print(f"case 5: shipped seed {row['seed']} of {seeds}: {record['metrics']}")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sigma", choices=("fixed", "size"), required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--steps", type=int, default=STEPS)
    r.add_argument("--part", type=Path, required=True, help="JSON file for this run's row")
    r.add_argument("--weights", type=Path, metavar="DIR", help="write the model's weights here")
    m = sub.add_parser("merge")
    m.add_argument("parts", type=Path, nargs="+")
    m.add_argument("--out", type=Path, default=HERE / "results" / "bump_width.json")
    m.add_argument("--no-readme", action="store_true")
    i = sub.add_parser("install", help="ship the median size-aware seed's weights in mnistloc/weights/")
    i.add_argument("parts", type=Path, nargs="+")
    i.add_argument("--weights", type=Path, metavar="DIR", required=True)
    args = p.parse_args(argv)
    if args.command == "install":
        install(args.parts, args.weights)
        return 0
    if args.command == "run":
        row = run(args.sigma, args.seed, args.steps, args.weights)
        args.part.parent.mkdir(parents=True, exist_ok=True)
        args.part.write_text(json.dumps(row, indent=1) + "\n")
        print(json.dumps({k: row[k] for k in ("sigma", "seed", "map", "map50", "count_accuracy")}))
        return 0
    merge(args.parts, args.out, None if args.no_readme else HERE / "README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
