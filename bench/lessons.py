"""Runs each lesson's solution notebook top to bottom on several seeds: time, CPU and the trained model's scores.

Each run copies the solution folders ``solutions/0*-*/`` to a temporary folder
(the whole course, as a student has it: lesson 5 takes the earlier lessons'
checked parts from their notebooks), sets the lesson's
one ``SEED = 0`` line (the model cell's: starting weights and training
canvases) to the run's seed, and executes every cell with nbclient in a fresh
kernel, as a student would (no ``NBGRADER_EXECUTION``: the full training
budget). A last cell, added to the temporary copy only, reads ``scores`` and
``history`` in the kernel and the kernel's own CPU time (all its threads, and
its children), so nothing is parsed from printed text. Per lesson the script
reports the minimum and the median of each metric over the seeds against 90%
of ``mnistloc.evaluation.TARGETS`` (the issue's budget), the wall time, the
CPU time and the idle-machine estimate (training CPU / cores, plus the rest of
the CPU as if it ran on one core). Results go to ``bench/results/lessons.json``
(rewritten after each run, so an interrupted run keeps what it measured) with
the machine and the load before and after.

    .venv/bin/python bench/lessons.py                              # every lesson found, seeds 0-2, one at a time
    .venv/bin/python bench/lessons.py --lessons 3 4 --seeds 3 --jobs 2
    .venv/bin/python bench/lessons.py --merge a.json b.json        # one table from several partial runs
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import mnistloc  # noqa: E402,F401  (before TensorFlow: keeps its start-up log lines quiet)

OUT = REPO / "bench" / "results" / "lessons.json"
SHARE = 0.9
"""The lesson's trained model must reach this share of each reference target (issue's budget)."""
WALL_BUDGET = 360.0
"""Seconds a lesson may take top to bottom on an idle 2-core machine."""
SEED_LINE = re.compile(r"^SEED = \d+\b", re.MULTILINE)

PROBE = '''
import json as _json, resource as _resource
_self, _kids = _resource.getrusage(_resource.RUSAGE_SELF), _resource.getrusage(_resource.RUSAGE_CHILDREN)
print("LESSON-BENCH " + _json.dumps({
    "scores": {k: float(v) for k, v in scores.items()},
    "train_cpu_seconds": float(history.cpu_seconds), "train_seconds": float(history.seconds),
    "steps": int(history.steps), "stalled": bool(getattr(history, "stalled", False)),
    "budget_seconds": history.config.seconds, "seed": SEED,
    "kernel_cpu_seconds": _self.ru_utime + _self.ru_stime + _kids.ru_utime + _kids.ru_stime}))
'''


def find_lessons(numbers=None) -> dict[int, Path]:
    """Solution notebooks ``solutions/0N-name/0N-name.ipynb`` -> {N: path}, only ``numbers`` if given."""
    found = {}
    for folder in sorted((REPO / "solutions").glob("[0-9][0-9]-*")):
        path = folder / f"{folder.name}.ipynb"
        if path.is_file():
            found[int(folder.name[:2])] = path
    if numbers:
        missing = sorted(set(numbers) - set(found))
        if missing:
            raise ValueError(f"`--lessons` should be among {sorted(found)}. Got {missing}, which have no notebook.")
        found = {n: found[n] for n in numbers}
    return found


def set_seed(nb, seed: int) -> None:
    """Sets the notebook's one ``SEED = ...`` line (in place) to ``seed``.

    Raises:
        ValueError: the notebook has no such line, or more than one.
    """
    hits = [cell for cell in nb.cells if cell.cell_type == "code" and SEED_LINE.search(cell.source)]
    count = sum(len(SEED_LINE.findall(cell.source)) for cell in hits)
    if count != 1:
        raise ValueError(f"the lesson should set `SEED = <int>` on exactly one line of one code cell; found {count}")
    hits[0].source = SEED_LINE.sub(f"SEED = {int(seed)}", hits[0].source)


def _cell_seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_lesson(number: int, path: str, seed: int, timeout: float) -> dict:
    """Executes one lesson's notebook with ``SEED = seed``; returns its times, load and scores (or its error)."""
    import nbclient
    import nbformat

    shown = Path(path).relative_to(REPO) if Path(path).is_relative_to(REPO) else Path(path)
    row = {"lesson": number, "notebook": str(shown), "seed": seed,
           "load_before": os.getloadavg()[0], "started": dt.datetime.now().isoformat(timespec="seconds")}
    nb = nbformat.read(path, as_version=4)
    try:
        set_seed(nb, seed)
    except ValueError as exc:  # a lesson without its SEED line: a row that says so, the other runs go on
        return {**row, "error": f"ValueError: {exc}", "wall_seconds": 0.0, "load_after": os.getloadavg()[0]}
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    with tempfile.TemporaryDirectory(prefix=f"lesson{number}-seed{seed}-") as tmp:
        for folder in Path(path).parent.parent.glob("[0-9][0-9]-*"):  # the whole course, as a student has it:
            shutil.copytree(folder, Path(tmp) / folder.name)  # lesson 5 takes the earlier lessons' parts
        work = Path(tmp) / Path(path).parent.name
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                                         resources={"metadata": {"path": str(work)}})
        start = time.perf_counter()
        try:
            client.execute(env=env)
        except Exception as exc:  # a failing cell: keep the row, with the error
            row["error"] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
        row["wall_seconds"] = round(time.perf_counter() - start, 1)
    row["load_after"] = os.getloadavg()[0]
    row["train_cell_seconds"] = round(sum(_cell_seconds(c) or 0.0 for c in nb.cells
                                          if "train" in c.get("metadata", {}).get("tags", [])), 1)
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("LESSON-BENCH "):
                row.update(json.loads(line[len("LESSON-BENCH "):]))
    if "scores" not in row and "error" not in row:
        row["error"] = "the probe cell printed nothing"
    if "kernel_cpu_seconds" in row:
        other = row["kernel_cpu_seconds"] - row["train_cpu_seconds"]
        row["idle_estimate_seconds"] = round(row["train_cpu_seconds"] / (os.cpu_count() or 1) + other, 1)
    return row


def summarise(runs: list[dict]) -> dict:
    """Per lesson: min and median of each metric over its seeds against ``SHARE`` of its target, and the times."""
    from mnistloc.evaluation import TARGETS

    out = {}
    for number in sorted({r["lesson"] for r in runs}):
        done = [r for r in runs if r["lesson"] == number and "scores" in r]
        if not done:
            continue
        case = number  # lesson N trains case N
        lesson = {"seeds": sorted(r["seed"] for r in done), "metrics": {}}
        for name in done[0]["scores"]:
            values = [r["scores"][name] for r in done]
            metric = {"min": min(values), "median": statistics.median(values)}
            if name in TARGETS.get(case, {}):
                metric["target"] = TARGETS[case][name]
                metric["needed"] = round(SHARE * TARGETS[case][name], 4)
                metric["met"] = metric["min"] >= metric["needed"]
            lesson["metrics"][name] = metric
        for key in ("wall_seconds", "kernel_cpu_seconds", "train_cpu_seconds", "idle_estimate_seconds"):
            values = [r[key] for r in done]
            lesson[key] = {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}
        lesson["within_wall_budget_idle"] = lesson["idle_estimate_seconds"]["max"] <= WALL_BUDGET
        lesson["stalled_seeds"] = [r["seed"] for r in done if r.get("stalled")]
        out[str(number)] = lesson
    return out


def machine() -> dict:
    """CPU model, cores, bfloat16 support and versions: what the numbers depend on (``bench/quality.py``'s)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality

    return quality.machine()


def table(summary: dict) -> str:
    """Markdown: one row per lesson and metric, then one row of times per lesson."""
    lines = ["| lesson | metric | seeds | min | median | 90% of target | met by the min |", "|---|---|---|---|---|---|---|"]
    for number, lesson in summary.items():
        for name, m in lesson["metrics"].items():
            if "target" not in m:
                continue
            lines.append(f"| {number} | {name} | {len(lesson['seeds'])} | {m['min']:.3f} | {m['median']:.3f} | "
                         f"{m['needed']:.3f} ({m['target']}) | {'yes' if m['met'] else '**no**'} |")
    lines += ["", "| lesson | seeds | wall s (median, max) | kernel CPU s (median, max) | training CPU s (median) | "
              "idle estimate s (max) | within 6 min idle |", "|---|---|---|---|---|---|---|"]
    for number, lesson in summary.items():
        w, c, t, e = (lesson[k] for k in ("wall_seconds", "kernel_cpu_seconds", "train_cpu_seconds",
                                           "idle_estimate_seconds"))
        lines.append(f"| {number} | {', '.join(map(str, lesson['seeds']))} | {w['median']:.0f}, {w['max']:.0f} | "
                     f"{c['median']:.0f}, {c['max']:.0f} | {t['median']:.0f} | {e['max']:.0f} | "
                     f"{'yes' if lesson['within_wall_budget_idle'] else '**no**'} |")
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> str:
    """Markdown: one row per run that scored, by lesson and seed (``bench/README.md``'s "Each run")."""
    lines = ["| lesson | seed | wall s | kernel CPU s | training CPU s | idle estimate s | steps | load before, after "
             "| scores |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted((r for r in runs if "scores" in r), key=lambda r: (r["lesson"], r["seed"])):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in r["scores"].items())
        lines.append(f"| {r['lesson']} | {r['seed']} | {r['wall_seconds']:.0f} | {r['kernel_cpu_seconds']:.0f} | "
                     f"{r['train_cpu_seconds']:.0f} | {r['idle_estimate_seconds']:.0f} | {r['steps']} | "
                     f"{r['load_before']:.1f}, {r['load_after']:.1f} | {scores} |")
    return "\n".join(lines)


def _write(out: Path, results: dict) -> None:
    results["summary"] = summarise(results["runs"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def merge(paths: list[Path], out: Path) -> dict:
    """One record from several: every run, the machine of the last, the load range over all."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    results = {"machine": parts[-1]["machine"], "runs": [r for p in parts for r in p["runs"]],
               "load_before": parts[0]["load_before"], "load_after": parts[-1].get("load_after"),
               "date": parts[0]["date"], "merged_from": [str(p) for p in paths],
               "dropped": [d for p in parts for d in p.get("dropped", [])]}
    _write(out, results)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", type=int, nargs="+", help="lesson numbers (default: every lesson found)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of --seeds")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1; more inflate wall time)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds a cell may run (default 7200)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default {OUT.relative_to(REPO)})")
    parser.add_argument("--merge", type=Path, nargs="+", help="combine these results files into --out and stop")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds should be >= 1. Got {args.seeds}.")
    if args.jobs < 1:
        parser.error(f"--jobs should be >= 1. Got {args.jobs}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.merge:
        merged = merge(args.merge, args.out)
        print(f"{table(merged['summary'])}\n\nEach run:\n\n{runs_table(merged['runs'])}")
        return 0
    try:
        lessons = find_lessons(args.lessons)
    except ValueError as exc:
        parser.error(str(exc))
    seeds = args.seed_list or list(range(args.seeds))
    results = {"machine": machine(), "load_before": os.getloadavg(), "date": dt.datetime.now().isoformat(
        timespec="seconds"), "command": " ".join(sys.argv), "runs": []}
    jobs = [(n, str(p), s) for s in seeds for n, p in lessons.items()]
    print(f"{len(jobs)} runs: lessons {sorted(lessons)} x seeds {seeds}, {args.jobs} at a time", file=sys.stderr)
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_lesson, n, p, s, args.timeout): (n, s) for n, p, s in jobs}
        for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
            row = future.result()
            results["runs"].append(row)
            results["load_after"] = os.getloadavg()
            _write(args.out, results)
            what = row.get("error") or ", ".join(f"{k} {v:.3f}" for k, v in row["scores"].items())
            print(f"[{i}/{len(jobs)}] lesson {row['lesson']} seed {row['seed']}: {row['wall_seconds']:.0f} s wall, "
                  f"{row.get('kernel_cpu_seconds', float('nan')):.0f} s CPU, load {row['load_before']:.1f} -> "
                  f"{row['load_after']:.1f}: {what}", file=sys.stderr, flush=True)
    print(f"{table(results['summary'])}\n\nEach run:\n\n{runs_table(results['runs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
