"""Grades classes with `mnistloc grade` (the warm path and the old, fresh-child path) and with `nbgrader autograde`.

Three gradings, in one run, each by every grader (the same secret seed, the same
per-cell / per-exercise time limit, ``--timeout``):

- a mixed class (``--students``, default 30) submitting lesson 1: a third correct,
  a third partial (stubs and typical mistakes), a third broken or hostile (files
  from ``tests/corpus/``: not JSON, nbformat 3, renamed, missing, deleted,
  duplicated and retyped cells, an endless loop, ``sys.exit``, a call of the
  reference);
- a large class (``--class-size``, default 100) submitting every lesson, all
  answers correct (the slowest case: a wrong answer stops at its first failing
  call), by mnistloc only (nbgrader would take hours: its time per student is
  the one-student figure below);
- one student's lessons (every one in ``solutions/``), all correct;
- one grading process grading ``--worker-students`` such students one after the other (what a
  student costs a worker once it has started: the figure the 5-second target is about).

mnistloc runs twice: ``mnistloc grade`` as shipped (each grading process forks
its students' sandbox children from a warm parent that imported TensorFlow once)
and with ``--fresh-children`` (a new Python per student, the path before the warm
parent). Results go to ``bench/results/grading.json`` with the machine and its
load; the tables are printed as markdown for ``bench/README.md``.

    .venv/bin/python bench/grading.py                 # about 45 minutes on 2 cores, mostly nbgrader
    .venv/bin/python bench/grading.py --students 6 --class-size 10 --skip-nbgrader
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "corpus"))
sys.path.insert(0, str(REPO))

import build as corpus  # noqa: E402  (tests/corpus/build.py: the lesson-1 notebooks and hostile cases)

LESSON = "01-single-digit"
LESSONS = tuple(sorted(p.name for p in (REPO / "solutions").glob("[0-9]*") if p.is_dir()))
SEED = "424242"
BIN = Path(sys.executable).parent
BROKEN = ("not_json", "nbformat3", "renamed", "missing", "deleted_answer", "duplicated", "markdown",
          "infinite_loop", "sys_exit", "reference_call")


def _partials() -> list[tuple[str, dict]]:
    sol, fn = corpus.SOL, corpus._fn
    iou_unclamped = fn("iou", "a, b", """
a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
inter = (np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])) * (
    np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
union = area(a) + area(b) - inter
return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)""")
    in_place = fn("place_digit", "canvas, digit, x, y", "canvas[y:y + 28, x:x + 28] = digit\nreturn canvas")
    return [("head not done", corpus._with(corpus.NUMPY)),
            ("tight_box off by one, head not done", corpus._with({**corpus.NUMPY,
                                                                  "tight_box": sol["tight_box"].replace("+ 1", "")})),
            ("iou unclamped", corpus._with({**sol, "iou": iou_unclamped})),
            ("place_digit in place", corpus._with({**sol, "place_digit": in_place})),
            ("only place_digit", corpus._with({"place_digit": sol["place_digit"]}))]


def make_class(course: Path, n: int) -> dict[str, str]:
    """Writes ``n`` submissions of lesson 1; returns student -> kind."""
    partials = _partials()
    kinds = {}
    for i in range(n):
        student = f"s{i:02d}"
        folder = course / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        group = i % 3
        if group == 0:
            kinds[student] = "correct"
            (folder / f"{LESSON}.ipynb").write_text(json.dumps(corpus._with(corpus.SOL), indent=1))
        elif group == 1:
            kind, nb = partials[(i // 3) % len(partials)]
            kinds[student] = f"partial: {kind}"
            (folder / f"{LESSON}.ipynb").write_text(json.dumps(nb, indent=1))
        else:
            case = BROKEN[(i // 3) % len(BROKEN)]
            kinds[student] = f"broken: {case}"
            file = json.loads((corpus.HERE / "expected.json").read_text())[case]["file"]
            if file:
                shutil.copy(corpus.HERE / file, folder)
    return kinds


def solo_submission(course: Path, student: str = "solo") -> None:
    """One student's lessons (``LESSONS``), each answer the reference solution."""
    for lesson in LESSONS:
        release = json.loads((REPO / "lessons" / lesson / f"{lesson}.ipynb").read_text())
        answers = {}
        for cell in json.loads((REPO / "solutions" / lesson / f"{lesson}.ipynb").read_text())["cells"]:
            gid = corpus._gid(cell)
            if cell["metadata"].get("nbgrader", {}).get("solution"):
                answers[gid] = re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", "".join(cell["source"]))
        for cell in release["cells"]:
            if corpus._gid(cell) in answers:
                cell["source"] = answers[corpus._gid(cell)].splitlines(keepends=True)
        folder = course / "submitted" / student / lesson
        folder.mkdir(parents=True)
        (folder / f"{lesson}.ipynb").write_text(json.dumps(release, indent=1))


def new_course(root: Path, lessons, timeout: float) -> Path:
    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'mnistloc'\n"
        f"c.CourseDirectory.source_directory = {str(REPO / 'solutions')!r}\n"
        f"c.CourseDirectory.release_directory = {str(root / 'release')!r}\n"
        f"c.Execute.timeout = {int(timeout)}\n"
        "c.Execute.interrupt_on_timeout = True\n")
    (root / "secret_seed").write_text(SEED + "\n")
    for lesson in lessons:
        run(["nbgrader", "generate_assignment", lesson, "--force"], root)
    return root


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> tuple[float, bool]:
    """Runs a command from the venv; returns its wall time in seconds and whether it succeeded."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "MNISTLOC_SECRET_SEED": SEED,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    t = time.perf_counter()
    done = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0 and check:
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(cmd)} failed with code {done.returncode}")
    return time.perf_counter() - t, done.returncode == 0


def large_class(course: Path, n: int) -> None:
    """``n`` students, each submitting every lesson with the reference answers."""
    solo_submission(course, "c000")
    for i in range(1, n):
        shutil.copytree(course / "submitted" / "c000", course / "submitted" / f"c{i:03d}")


def mnistloc_scores(course: Path, lessons, jobs: int, timeout: float, *,
                    fresh: bool = False) -> tuple[float, dict, dict]:
    args = ["mnistloc", "grade", str(course), "--jobs", str(jobs), "--timeout", str(timeout), "--force",
            *(["--fresh-children"] if fresh else [])]
    seconds, _ = run(args + [a for lesson in lessons for a in ("--lesson", lesson)], course)
    points, statuses = {}, {}
    for r in csv.DictReader(open(course / "mnistloc_grades" / "grades.csv")):
        points[r["student"]] = points.get(r["student"], 0) + int(r["points"])
        if r["status"] != "passed":
            statuses.setdefault(r["student"], []).append(f"{r['exercise']}: {r['status']}")
    return seconds, points, statuses


_WORKER = """
import json, os, sys, time
from pathlib import Path
from mnistloc.grading import grade, warden, warm_parent
course, warm = Path(sys.argv[1]), sys.argv[2] == "warm"
by = {}
for task in grade.find_tasks(course):
    by.setdefault(task.student, []).append(task)
uids = warden.fresh_uids(len(by)) if os.geteuid() == 0 else [None] * len(by)
seconds = []
for (student, tasks), uid in zip(by.items(), uids):
    start = time.perf_counter()
    rows = grade.grade_student(tasks, int(os.environ["MNISTLOC_SECRET_SEED"]), uid=uid, warm=warm)
    seconds.append(round(time.perf_counter() - start, 3))
    assert all(r.status in ("passed", "manual") for r in rows), [r for r in rows if r.status != "passed"]
warm_parent.close_shared()
print(json.dumps(seconds))
"""


def one_worker(course: Path, warm: bool) -> list[float]:
    """Seconds for each student of ``course`` graded one after the other in one grading process (as one
    ``--jobs`` worker grades its share): the first pays the process's start, the others show what a student
    costs a warm worker."""
    env = {**os.environ, "MNISTLOC_SECRET_SEED": SEED, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _WORKER, str(course), "warm" if warm else "fresh"], cwd=REPO,
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def nbgrader_scores(course: Path, lessons) -> tuple[float, dict, list]:
    """Autogrades student by student: one broken notebook makes `nbgrader autograde` stop the whole run."""
    seconds, failed = 0.0, []
    students = sorted(p.name for p in (course / "submitted").iterdir())
    for lesson in lessons:
        for student in students:
            took, ok = run(["nbgrader", "autograde", lesson, "--student", student, "--force"], course, check=False)
            seconds += took
            if not ok:
                failed.append(f"{student}/{lesson}")
    run(["nbgrader", "export", "--to", str(course / "nbgrader_export.csv")], course)
    points = {}
    for r in csv.DictReader(open(course / "nbgrader_export.csv")):
        points[r["student_id"]] = points.get(r["student_id"], 0) + float(r["raw_score"])
    return seconds, points, failed


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "root": os.geteuid() == 0,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=30, help="the mixed lesson-1 class")
    p.add_argument("--class-size", type=int, default=100, help="the large class, every lesson")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=float, default=60, help="per exercise (mnistloc) and per cell (nbgrader)")
    p.add_argument("--worker-students", type=int, default=6,
                   help="students graded one after the other by one grading process (all five lessons each)")
    p.add_argument("--skip-nbgrader", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "grading.json")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mnistloc-bench-grading-"))
    loads = [os.getloadavg()]
    try:
        course = new_course(work / "class", [LESSON], args.timeout)
        kinds = make_class(course, args.students)
        solo = new_course(work / "solo", LESSONS, args.timeout)
        solo_submission(solo)
        large = new_course(work / "large", LESSONS, args.timeout)
        large_class(large, args.class_size)
        runs = {}
        for path, fresh in (("warm", False), ("fresh", True)):
            for name, where, lessons in (("class", course, [LESSON]), ("large", large, LESSONS),
                                         ("solo", solo, LESSONS)):
                seconds, points, statuses = mnistloc_scores(where, lessons, args.jobs, args.timeout, fresh=fresh)
                runs[f"{name}_{path}"] = {"seconds": seconds, "points": points, "statuses": statuses}
                loads.append(os.getloadavg())
                print(f"mnistloc grade, {name}, {path}: {seconds:.1f} s (load {loads[-1][0]:.1f})", flush=True)
        worker = new_course(work / "worker", LESSONS, args.timeout)
        large_class(worker, args.worker_students)
        per_student = {path: one_worker(worker, path == "warm") for path in ("warm", "fresh")}
        loads.append(os.getloadavg())
        print(f"one worker, {args.worker_students} students one after the other: {per_student}", flush=True)
        t_nb, theirs, nb_failed, t_nb_solo, theirs_solo = None, {}, [], None, {}
        if not args.skip_nbgrader:
            t_nb, theirs, nb_failed = nbgrader_scores(course, [LESSON])
            t_nb_solo, theirs_solo, _ = nbgrader_scores(solo, LESSONS)
            loads.append(os.getloadavg())
        ours = runs["class_warm"]
        agree = all(runs[f"{n}_warm"]["points"] == runs[f"{n}_fresh"]["points"] for n in ("class", "large", "solo"))
        full = runs["large_warm"]["points"]
        result = {
            "machine": machine(), "load_average_before": loads[0], "load_average_after": os.getloadavg(),
            "load_averages": loads, "students": args.students, "class_size": args.class_size, "jobs": args.jobs,
            "timeout": args.timeout, "warm_and_fresh_agree": agree,
            "class": {"mnistloc_seconds": ours["seconds"], "mnistloc_fresh_seconds": runs["class_fresh"]["seconds"],
                      "nbgrader_seconds": t_nb,
                      "rows": [{"student": s, "kind": kinds[s], "mnistloc": ours["points"].get(s, 0),
                                "nbgrader": theirs.get(s), "nbgrader_failed": f"{s}/{LESSON}" in nb_failed,
                                "mnistloc_not_passed": ours["statuses"].get(s, [])}
                               for s in sorted(kinds)]},
            "large": {"mnistloc_seconds": runs["large_warm"]["seconds"],
                      "mnistloc_fresh_seconds": runs["large_fresh"]["seconds"],
                      "students_with_full_points": sum(v == max(full.values()) for v in full.values()),
                      "points": max(full.values()) if full else None},
            "solo": {"mnistloc_seconds": runs["solo_warm"]["seconds"],
                     "mnistloc_fresh_seconds": runs["solo_fresh"]["seconds"], "nbgrader_seconds": t_nb_solo,
                     "mnistloc": runs["solo_warm"]["points"].get("solo"), "nbgrader": theirs_solo.get("solo"),
                     "mnistloc_not_passed": runs["solo_warm"]["statuses"].get("solo", [])},
            "worker": {path: {"seconds": secs, "first": secs[0], "median_after_first": statistics.median(secs[1:])}
                       for path, secs in per_student.items()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


def _s(seconds) -> str:
    return "not run" if seconds is None else f"{seconds:.0f} s"


def table(result: dict) -> str:
    c, s, m = result["class"], result["solo"], result["machine"]
    lines = [f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, {m['date']}, "
             f"load {result['load_average_before'][0]:.1f} before, {result['load_average_after'][0]:.1f} after.", "",
             "| grading | mnistloc grade (warm parent) | mnistloc grade --fresh-children | nbgrader autograde |",
             "|---|---:|---:|---:|",
             f"| class of {result['students']} (lesson 1), jobs {result['jobs']} | {_s(c['mnistloc_seconds'])} | "
             f"{_s(c.get('mnistloc_fresh_seconds'))} | {_s(c['nbgrader_seconds'])} |"]
    if "large" in result:
        g, n = result["large"], result["class_size"]
        lines.append(f"| class of {n} ({len(LESSONS)} lessons each, all correct), jobs {result['jobs']} | "
                     f"{_s(g['mnistloc_seconds'])} ({g['mnistloc_seconds'] * result['jobs'] / n:.1f} s a student "
                     f"per process) | {_s(g['mnistloc_fresh_seconds'])} "
                     f"({g['mnistloc_fresh_seconds'] * result['jobs'] / n:.1f} s) | not run |")
    lines += [f"| one student, {len(LESSONS)} lessons | {_s(s['mnistloc_seconds'])} | "
              f"{_s(s.get('mnistloc_fresh_seconds'))} | {_s(s['nbgrader_seconds'])} |"]
    if "worker" in result:
        w = result["worker"]
        lines.append(f"| one student, {len(LESSONS)} lessons, in a grading process that graded one before "
                     f"(median of {len(w['warm']['seconds']) - 1}) | {w['warm']['median_after_first']:.1f} s | "
                     f"{w['fresh']['median_after_first']:.1f} s | - |")
    lines += ["",
             "| student | submission | mnistloc | nbgrader | mnistloc: exercises not passed |",
             "|---|---|---:|---:|---|"]
    for r in c["rows"]:
        nb = "-" if r["nbgrader"] is None else f"{r['nbgrader']:g}" + (" (autograde failed)" if r.get(
            "nbgrader_failed") else "")
        lines.append(f"| {r['student']} | {r['kind']} | {r['mnistloc']} | {nb} | "
                     f"{', '.join(r['mnistloc_not_passed']) or '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
