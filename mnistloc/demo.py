"""The main job (``make demo`` = ``mnistloc demo``): the course end to end in a few minutes, on one page.

``run`` does four things, prints a short table for each, and writes
``demo-output/index.html`` (``mnistloc.demo_page``) that shows the pictures and tables together:

1. **data**: a dataset of each case (``cases.ALL_CASES``) from the bundled digits, a table and a sample grid;
2. **reference models**: each case's shipped weights (``mnistloc.pretrained``), scored on the
   held-out canvases of ``mnistloc.evaluation`` and compared with ``evaluation.TARGETS``
   (met or below, with the numbers). Where no weights ship, one of the four course cases
   trains for ``FALLBACK_SECONDS`` instead, and the table says so (case 5 is then left out);
3. **live training**: case ``LIVE_CASE`` trains for ``LIVE_SECONDS`` of both cores, to show
   that training works (the targets are for the full budget, ``FULL_SECONDS``);
4. **grading**: a small class (``SAMPLE_CLASS``: a correct, a partial and hostile notebooks of
   lesson 1, ``mnistloc.course.sample_notebook``: the package's lesson 1 with each student's answers)
   is written into a temporary course folder and graded by the hardened grader, as ``mnistloc grade``
   does; grades and feedback pages are kept.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mnistloc import canvas, cases, course, demo_page
from mnistloc.cases import name as case_name
from mnistloc.demo_page import FULL_SECONDS

CANVASES = 2000  # per case, for the data table
TEST_CANVASES = 2000  # held-out canvases per case for the scores (as evaluation.TEST_CANVASES, the targets' count)
SEED = 0
LIVE_CASE = 1
LIVE_SECONDS = 30.0  # of both cores: about 30 s of wall time on an idle 2-core machine
FALLBACK_SECONDS = 30.0  # per case whose weights are not shipped
QUICK = {"n": 200, "test_canvases": 200, "live_seconds": 5.0, "fallback_seconds": 5.0}  # ``mnistloc demo --quick``
# A short budget gives few warm-up steps; the reference rate (6e-3) can then stall a model at chance. Measured on
# the idle 2-core VM, 60 s of both cores, seed 0: case 3 class accuracy 0.10 at 6e-3 vs 0.913 at 2e-3.
SHORT_LEARNING_RATE = 2e-3
LESSON = course.sample_class()["lesson"]
# student -> what their notebook is: the case of the repository's tests/corpus/ whose answers it carries
SAMPLE_CLASS = {student: made["case"] for student, made in course.sample_class()["students"].items()}


# ---- 1. data ----------------------------------------------------------------------------------------------

def make_datasets(n: int = CANVASES, seed: int = SEED, split: str = "train") -> dict:
    """One dataset per case of ``cases.ALL_CASES``, from the bundled digits.

    Returns:
        dict case -> CanvasDataset of ``n`` canvases (case c uses seed ``seed + c``).
    """
    return {case: canvas.make_dataset(case, n, seed=seed + case, split=split, source="bundled")
            for case in cases.ALL_CASES}


def summary(ds) -> dict:
    """One table row: canvases, digits per canvas, share of 0, 1 and 2 or more digits, mean digit box size.

    Args:
        ds: a CanvasDataset.

    Returns:
        dict with ``case``, ``canvases``, ``digits`` (mean per canvas), ``empty``/``one``/``two``
        (fractions; ``two``: two or more), ``width`` and ``height`` (mean over digit boxes, pixels).
    """
    used = ds.boxes[ds.mask]  # [m, 4] every digit's box
    return {"case": ds.case, "canvases": len(ds), "digits": float(ds.count.mean()),
            "empty": float(np.mean(ds.count == 0)), "one": float(np.mean(ds.count == 1)),
            "two": float(np.mean(ds.count >= 2)),
            "width": float((used[:, 2] - used[:, 0]).mean()), "height": float((used[:, 3] - used[:, 1]).mean())}


def format_table(rows: list[dict]) -> str:
    """The summary rows as a plain-text table."""
    head = f"{'case':<22} {'canvases':>8} {'digits/canvas':>13} {'0 / 1 / 2+ digits':>18} {'mean box w x h':>15}"
    lines = [head, "-" * len(head)]
    for r in rows:
        shares = f"{r['empty']:.2f} / {r['one']:.2f} / {r['two']:.2f}"
        lines.append(f"{case_name(r['case']):<22} {r['canvases']:>8,} {r['digits']:>13.2f} "
                     f"{shares:>18} {r['width']:>7.1f} x {r['height']:.1f}")
    return "\n".join(lines)


def write_grids(datasets: dict, out_dir) -> dict[int, Path]:
    """A sample grid PNG per case: ``out_dir/case{N}.png``; returns case -> path."""
    from mnistloc import viz

    return {case: viz.save(viz.sample_grid(ds), Path(out_dir) / f"case{case}.png") for case, ds in datasets.items()}


# ---- 2. and 3. models -------------------------------------------------------------------------------------

def compare(case: int, result: dict) -> list[dict]:
    """Each target of ``case`` against ``result``.

    Returns:
        list of ``{"metric", "value", "target", "met"}``, in ``evaluation.TARGETS[case]``'s order.
    """
    from mnistloc.evaluation import TARGETS

    return [{"metric": k, "value": float(result[k]), "target": goal, "met": bool(result[k] >= goal)}
            for k, goal in TARGETS[case].items()]


def verdict(checks: list[dict]) -> str:
    """``"meets every target"`` or ``"below target: map 0.612 < 0.7"``, from ``compare``."""
    below = [f"{c['metric']} {c['value']:.3f} < {c['target']}" for c in checks if not c["met"]]
    return "below target: " + ", ".join(below) if below else "meets every target"


def shipped_cases() -> tuple[int, ...]:
    """The cases whose reference weights ship with the package (``mnistloc.pretrained``)."""
    try:
        from mnistloc import pretrained
    except ImportError:  # a version of the package without shipped weights
        return ()
    return tuple(pretrained.available())


def shipped_model(case: int):
    """The case's shipped reference model, and a few words on how it was trained."""
    from mnistloc import pretrained

    made = pretrained.record(case)
    how = f" (seed {made['seed']}, {made['steps']:,} steps)" if {"seed", "steps"} <= set(made) else ""
    return pretrained.model(case), "shipped weights" + how


def train_live(case: int, seconds: float, out_dir, test_canvases: int = TEST_CANVASES) -> dict:
    """Trains ``case`` for ``seconds`` of both cores, scores it, writes its report into ``out_dir``.

    Returns:
        dict: ``case``, ``seconds`` (the budget), ``wall_seconds``, ``cpu_seconds``, ``steps``,
        ``metrics`` (``evaluation.write_report``'s record), ``checks`` (``compare``), ``model``.
    """
    from mnistloc import evaluation, training

    print(f"\ncase {case_name(case)}: training for {seconds:.0f} s of both cores", flush=True)
    model, history = training.train(case, seconds=seconds, clock="cpu", seed=SEED, learning_rate=SHORT_LEARNING_RATE)
    record = evaluation.write_report(model, case, out_dir, history=history, n=test_canvases)
    return {"case": case, "seconds": seconds, "wall_seconds": float(history.seconds),
            "cpu_seconds": float(history.cpu_seconds), "steps": int(model.optimizer.iterations.numpy()),
            "metrics": record, "checks": compare(case, record), "model": model}


def score_models(out_dir, live: dict | None = None, test_canvases: int = TEST_CANVASES,
                 fallback_seconds: float = FALLBACK_SECONDS) -> list[dict]:
    """Scores every case's reference model: the shipped weights, else a short training run.

    Args:
        out_dir: writes ``caseN/`` (``evaluation.write_report``: ``metrics.json``, ``predictions.png``,
            ``worst.png``) here.
        live: ``train_live``'s result, reused for its case when no weights ship.
        test_canvases: held-out canvases per case.
        fallback_seconds: training per case whose weights do not ship, in seconds of both cores.

    Returns:
        list of dicts, one per case: ``case``, ``how`` (what ran), ``metrics``, ``checks``.
    """
    from mnistloc import evaluation

    rows, shipped = [], shipped_cases()
    for case in [c for c in evaluation.TARGETS if c in cases.BRIEF_CASES or c in shipped]:
        folder = Path(out_dir) / f"case{case}"
        if case in shipped:
            model, how = shipped_model(case)
        elif live is not None and live["case"] == case:
            model, how = live["model"], f"live run, {live['seconds']:.0f} s (no weights)"
        else:
            how = f"trained {fallback_seconds:.0f} s here (no weights)"
            record = train_live(case, fallback_seconds, folder, test_canvases)["metrics"]
            rows.append({"case": case, "how": how, "metrics": record, "checks": compare(case, record)})
            continue
        print(f"scoring case {case_name(case)} ({how})", flush=True)
        record = evaluation.write_report(model, case, folder, n=test_canvases)
        rows.append({"case": case, "how": how, "metrics": record, "checks": compare(case, record)})
    return rows


def format_metrics_table(rows: list[dict]) -> str:
    """One line per case: what ran, then each target metric as ``value (>= target met|below)``."""
    lines = [f"{'case':<22} {'model':<38} metrics (target)", "-" * 120]
    for r in rows:
        cells = [f"{c['metric']} {c['value']:.3f} (>= {c['target']} {'met' if c['met'] else 'below'})"
                 for c in r["checks"]]
        lines.append(f"{case_name(r['case']):<22} {r['how']:<38} " + ", ".join(cells))
    return "\n".join(lines)


def format_live(live: dict) -> str:
    """One sentence: what the live run did and how it compares with the case's targets."""
    parts = ", ".join(f"{c['metric']} {c['value']:.3f} (target >= {c['target']}: {'met' if c['met'] else 'below'})"
                      for c in live["checks"])
    return (f"case {case_name(live['case'])}, {live['seconds']:.0f} s of both cores ({live['steps']:,} steps, "
            f"{live['wall_seconds']:.0f} s of wall time): {parts}. The targets are for {FULL_SECONDS:.0f} s.")


# ---- 4. grading -------------------------------------------------------------------------------------------

def make_course(root, students=None) -> Path:
    """A course folder for the grader: ``submitted/<student>/<lesson>/<lesson>.ipynb`` and a secret seed.

    Args:
        root: an empty or missing folder.
        students: names of the sample class (default: all of ``SAMPLE_CLASS``).

    Raises:
        ValueError: a student is not in the sample class.
    """
    import secrets

    from mnistloc.grading import grade

    root = Path(root)
    for student in students or SAMPLE_CLASS:
        course.write_sample_notebook(student, root / "submitted" / student / LESSON / f"{LESSON}.ipynb")
    (root / grade.SEED_FILE).write_text(f"{secrets.randbits(63)}\n")
    (root / grade.SEED_FILE).chmod(0o600)
    return root


def grade_class(out_dir, students=None) -> dict:
    """Grades the sample class in a temporary course folder with ``grading.grade.grade_course`` (what
    ``mnistloc grade`` calls); keeps grades and feedback pages in ``out_dir``.

    Returns:
        dict: ``rows`` (list of ``grading.results.Row``), ``summary`` (text), ``sandbox`` (what the
        sandbox confines), ``students`` (student -> what their notebook is, ``SAMPLE_CLASS``), ``why``
        (what each notebook is -> what it does), ``seconds`` (wall time).
    """
    from mnistloc.grading import grade, results

    students = {student: SAMPLE_CLASS[student] for student in students or SAMPLE_CLASS}
    print(f"\ngrading {len(students)} notebooks of lesson 1 in the sandbox", flush=True)
    start, said = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="mnistloc-demo-course-") as tmp:
        made = make_course(Path(tmp) / "course", students)
        rows = grade.grade_course(made, out=out_dir, lessons=[LESSON], jobs=2, timeout=30, gradebook=False,
                                  force=True, say=said.append)
    sample = course.sample_class()["students"]
    return {"rows": rows, "summary": results.summary(rows), "sandbox": next((s for s in said if "sandbox" in s), ""),
            "students": students, "seconds": time.perf_counter() - start,
            "why": {sample[student]["case"]: sample[student]["why"] for student in students}}


def format_grades(graded: dict) -> str:
    """One line per student: points, then each exercise's status."""
    by_student: dict[str, list] = {}
    for r in graded["rows"]:
        by_student.setdefault(r.student, []).append(r)
    lines = [f"{'student':<24} {'points':>7}  exercises"]
    for student, rows in by_student.items():
        got, most = sum(r.points for r in rows), sum(r.max_points for r in rows)
        lines.append(f"{student:<24} {got:>3}/{most:<3}  " + ", ".join(f"{r.exercise} {r.status}" for r in rows))
    return "\n".join(lines)


# ---- the run ----------------------------------------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the grader's workers and sandboxes), in seconds."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def run(out_dir="demo-output", n: int = CANVASES, live_seconds: float = LIVE_SECONDS, grading: bool = True,
        test_canvases: int = TEST_CANVASES, fallback_seconds: float = FALLBACK_SECONDS) -> int:
    """Builds every case's data, scores the reference models, trains one live, grades a class; writes the page.

    Args:
        out_dir: folder for the pictures, tables and ``index.html`` (created; the demo's subfolders
            ``data/``, ``models/``, ``live/`` and ``grading/`` are replaced).
        n: canvases per case in the data table.
        live_seconds: the live training run, in seconds of both cores; 0 skips it.
        grading: grade the sample class (shipped in the package: ``mnistloc.course.sample_class``).
        test_canvases: held-out canvases per case for the scores.
        fallback_seconds: training per case whose weights do not ship.

    Returns:
        0 (the CLI's exit code).
    """

    start, start_cpu = time.perf_counter(), cpu_seconds()
    out = Path(out_dir)
    for part in ("data", "models", "live", "grading"):
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    datasets = make_datasets(n)
    data_rows = [summary(ds) for ds in datasets.values()]
    print(f"1. Data: canvases from the bundled MNIST digits (train split, {canvas.DIGIT}x{canvas.DIGIT} digits on "
          f"{datasets[cases.BRIEF_CASES[0]].size}x{datasets[cases.BRIEF_CASES[0]].size}), tight boxes:\n")
    print(format_table(data_rows))
    grids = write_grids(datasets, out / "data")
    page = {"data": {"rows": data_rows, "grids": grids}}
    live = train_live(LIVE_CASE, live_seconds, out / "live", test_canvases) if live_seconds else None
    page["models"] = score_models(out / "models", live, test_canvases, fallback_seconds)
    print(f"\n2. Reference models, scored on {page['models'][0]['metrics']['test_canvases']:,} canvases of held-out "
          f"test digits each:\n")
    print(format_metrics_table(page["models"]))
    if live is not None:
        page["live"] = {k: v for k, v in live.items() if k != "model"}
        print(f"\n3. Live training: {format_live(live)}")
    if grading:
        page["grading"] = grade_class(out / "grading")
        print(f"\n4. Grading: {len(page['grading']['students'])} sample notebooks of lesson 1 (the package's "
              f"lesson 1 with each student's answers), graded in the sandbox in {page['grading']['seconds']:.0f} s:\n")
        print(format_grades(page["grading"]))
        print(page["grading"]["sandbox"])
    page["seconds"] = time.perf_counter() - start
    page["cpu_seconds"] = cpu_seconds() - start_cpu
    index = demo_page.write_index(page, out)
    print(f"\nThe whole demo on one page: {index} (open it in a browser). "
          f"{page['seconds']:.0f} s of wall time, {page['cpu_seconds']:.0f} s of CPU time.")
    return 0
