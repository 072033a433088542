"""Reference models against the classic baseline: every case, the same budget, the same run.

    .venv/bin/python bench/quality.py                  # 4 cases x 2 models x 175 s, about 25 minutes
    .venv/bin/python bench/quality.py --seconds 30 --cases 3 --no-readme   # a quick look

For each case, trains our model (``mnistloc.training.train``) and the
baseline (``bench/baseline.py``) on the same fresh canvases of the bundled
training digits for the same wall-clock budget, scores both on the 2,000
held-out test canvases (``mnistloc.evaluation``), and writes
``bench/results/quality.json`` (``{"1": {"ours": {...}, "baseline": {...}}, ...,
"machine": {...}, "targets": {...}}``) and the table in ``bench/README.md``
between the quality markers. The machine's load is recorded before and
after: the budget is wall-clock time, so other work on the machine costs
steps.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mnistloc import evaluation  # noqa: E402  (NumPy only: the targets)

COLUMNS = evaluation.METRICS
TARGETS = {str(case): goals for case, goals in evaluation.TARGETS.items()}
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


def machine() -> dict:
    """CPU model, cores, versions, date and load: what the numbers depend on."""
    import keras
    import numpy as np
    import tensorflow as tf

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": bool(tf.config.list_physical_devices("GPU")),
            "python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "date": datetime.datetime.now().isoformat(timespec="seconds")}


def run_case(case: int, seconds: float, seed: int, clock: str = "cpu") -> dict:
    """Trains and scores ours and the baseline on one case."""
    import baseline
    from mnistloc import evaluation, training

    row = {}
    model, history = training.train(case, seconds=seconds, seed=seed, clock=clock)
    row["ours"] = {"train_seconds": round(history.seconds, 1), "cpu_seconds": round(history.cpu_seconds, 1),
                   "epochs": len(history.history["loss"]),
                   "parameters": model.count_params(), **evaluation.evaluate(model, case)}
    print(f"case {case} ours: {row['ours']}", flush=True)

    net = baseline.build_baseline(case)
    net, history = training.train(case, seconds=seconds, seed=seed, model=net, encode=baseline.encode,
                                  learning_rate=1e-3, clock=clock)
    ds = evaluation.test_dataset(case)
    pred, found = baseline.decode(case, evaluation.predict(net, ds))
    row["baseline"] = {"train_seconds": round(history.seconds, 1), "cpu_seconds": round(history.cpu_seconds, 1),
                       "epochs": len(history.history["loss"]),
                       "parameters": net.count_params(), **evaluation.score_predictions(case, ds, pred, found)}
    print(f"case {case} baseline: {row['baseline']}", flush=True)
    row["load_after"] = os.getloadavg()
    return row


def table(results: dict) -> str:
    """A markdown table: one row per case and model, targets marked."""
    head = "| case | model | wall s | CPU s | epochs | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (5 + len(COLUMNS))]
    for case in ("1", "2", "3", "4"):
        if case not in results:
            continue
        for who in ("ours", "baseline"):
            r = results[case][who]
            cells = []
            for k in COLUMNS:
                if k not in r:
                    cells.append("")
                    continue
                goal = TARGETS[case].get(k)
                mark = "" if goal is None else (" ✓" if r[k] >= goal else " ✗")
                cells.append(f"{r[k]:.4f}{mark if who == 'ours' else ''}")
            lines.append(f"| {case} | {who} | {r['train_seconds']:.0f} | {r.get('cpu_seconds', 0):.0f} | "
                         f"{r['epochs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme(path: Path, results: dict) -> None:
    """Replaces the text between the quality markers of ``path`` with the table and the machine."""
    m = results["machine"]
    body = (f"{BEGIN}\n{table(results)}\n\nwall s: wall-clock training time; CPU s: the process's CPU time "
            f"during it (both cores busy for 175 s make 350); epochs of 5,000 fresh canvases (the last one cut "
            f"short by the budget). ✓/✗: the target of evaluation.TARGETS met or not (targets: "
            + "; ".join(f"case {c}: " + ", ".join(f"{k} >= {v}" for k, v in t.items()) for c, t in TARGETS.items())
            + f").\nMachine: {m['cpu']}, {m['cores']} cores, no GPU, Python {m['python']}, TensorFlow "
            f"{m['tensorflow']}, Keras {m['keras']}; {m['date']}; load average (1 min) "
            f"{m['load_before'][0]:.1f} before and {m['load_after'][0]:.1f} after the run "
            f"(other helpers' jobs shared the machine; each case's row in the JSON has the load after it"
            + (f"; {m['parallel_runs']} runs over different cases at once" if m.get("parallel_runs") else "")
            + ").\n"
            f"Budget: {results['seconds']:.0f} s of training per model and case on the {results['clock']} clock"
            + (f" (CPU time of the process / {m['cores']} cores, i.e. {results['seconds']:.0f} s of all "
               f"{m['cores']} cores, whatever else runs: wall time grows with the load instead)"
               if results["clock"] == "cpu" else "") + f"; seed {results['seed']}.\n{END}")
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Quality: reference models against the classic baseline\n\n" \
            "`bench/quality.py` (see its docstring) trains each case's model and the baseline for the same " \
            "budget in the same run and scores both on 2,000 held-out test canvases.\n\n" + body + "\n"
    path.write_text(text)


def merge(paths: list[Path], out: Path, *, readme: bool = True) -> int:
    """Combines runs made in parallel over different cases (same budget, clock and seed) into one result."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    keys = {(r["seconds"], r["clock"], r["seed"]) for r in parts}
    if len(keys) != 1:
        raise SystemExit(f"--merge: the runs differ in budget, clock or seed: {sorted(keys)}")
    results = {k: parts[0][k] for k in ("seconds", "clock", "seed", "targets")}
    for r in parts:
        results.update({c: r[c] for c in ("1", "2", "3", "4") if c in r})
    results["machine"] = dict(parts[0]["machine"])
    results["machine"]["load_before"] = max((r["machine"]["load_before"] for r in parts), key=lambda x: x[0])
    results["machine"]["load_after"] = max((r["machine"]["load_after"] for r in parts), key=lambda x: x[0])
    results["machine"]["parallel_runs"] = len(parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if readme:
        write_readme(HERE / "README.md", results)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=175.0, help="training budget per model and case")
    p.add_argument("--cases", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="budget in seconds of all cores (CPU time / cores; default) or wall-clock seconds")
    p.add_argument("--out", type=Path, default=HERE / "results" / "quality.json")
    p.add_argument("--no-readme", action="store_true", help="do not touch bench/README.md")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                   help="combine the results of runs over different --cases into --out (and the README); no training")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, readme=not args.no_readme)
    results = {"seconds": args.seconds, "clock": args.clock, "seed": args.seed, "targets": TARGETS}
    info = machine()
    info["load_before"] = os.getloadavg()
    for case in args.cases:
        results[str(case)] = run_case(case, args.seconds, args.seed, args.clock)
    info["load_after"] = os.getloadavg()
    results["machine"] = info
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if not args.no_readme:
        write_readme(HERE / "README.md", results)
    print(f"wrote {args.out}" + ("" if args.no_readme else " and bench/README.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
