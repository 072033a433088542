"""The hardened grader: grades a class of untrusted lesson notebooks safely and fast.

``grade_course(COURSE_DIR)`` grades nbgrader's ``submitted/<student>/<lesson>/<lesson>.ipynb``
layout. Each notebook's answer cells run in a sandbox child (``mnistloc.sandbox``)
on the public cases and on cases from the course's secret seed; this process
judges the results, so nothing a submission does inside its child can raise its
grade. Results: one ``Row`` per student, lesson and exercise, written as
``grades.csv`` and ``grades.json``, a feedback page per student and lesson, and
the scores of the test cells (``test_<exercise>``) in nbgrader's gradebook, so
``nbgrader export`` and formgrader agree.

The secret seed comes from ``$MNISTLOC_SECRET_SEED``, else from the file
``COURSE_DIR/secret_seed`` (one integer; keep it ``chmod 600``). The child never
sees either: cases are made here and sent to it.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mnistloc import doctor

SEED_FILE = "secret_seed"
COLUMNS = ("student", "lesson", "exercise", "points", "max_points", "status", "reason")
STATUSES = ("passed", "failed", "error", "timeout", "crash", "missing", "forbidden", "duplicated", "unreadable",
            "not-submitted")


@dataclasses.dataclass(frozen=True)
class Row:
    """One exercise of one student's lesson: ``status`` in ``STATUSES``; ``reason`` is what the student reads."""

    student: str
    lesson: str
    exercise: str
    points: int
    max_points: int
    status: str
    reason: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Task:
    """One notebook to grade (``path`` may not exist: then every exercise is missing)."""

    student: str
    lesson: str
    path: Path


def secret_seed(course_dir) -> int:
    """The course's secret seed: ``$MNISTLOC_SECRET_SEED``, else ``COURSE_DIR/secret_seed``.

    Raises:
        ValueError: neither is set, or the value is not an integer.
    """
    from mnistloc.checks import SECRET_SEED_ENV

    text, where = os.environ.get(SECRET_SEED_ENV, "").strip(), f"${SECRET_SEED_ENV}"
    if not text and (Path(course_dir) / SEED_FILE).exists():
        text, where = (Path(course_dir) / SEED_FILE).read_text().strip(), str(Path(course_dir) / SEED_FILE)
    if not text:
        raise ValueError(f"no secret seed: set ${SECRET_SEED_ENV} or write one integer to "
                         f"{Path(course_dir) / SEED_FILE} (e.g. `python -c 'import secrets; "
                         f"print(secrets.randbits(63))' > {SEED_FILE} && chmod 600 {SEED_FILE}`)")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the secret seed in {where} should be an integer. Got {text[:20]!r}.") from None


def find_tasks(course_dir, *, lessons=None, students=None, shard: tuple[int, int] | None = None) -> list[Task]:
    """Every (student, lesson) notebook to grade, sorted; a shard ``(i, n)`` keeps students i, i + n, ...

    Args:
        course_dir: the nbgrader course folder (with ``submitted/``).
        lessons: lesson ids to grade (default: every lesson of ``mnistloc.checks``).
        students: student ids to grade (default: every folder in ``submitted/``).
        shard: ``(i, n)`` with ``0 <= i < n``: grade only one n-th of the students.

    Raises:
        ValueError: no ``submitted/`` folder, an unknown lesson, or a bad shard.
    """
    from mnistloc.checks import LESSONS

    submitted = Path(course_dir) / "submitted"
    if not submitted.is_dir():
        raise ValueError(f"`course_dir` should hold nbgrader's submitted/<student>/<lesson>/ folders; "
                         f"there is no {submitted}")
    lessons = list(lessons or LESSONS)
    unknown = sorted(set(lessons) - set(LESSONS))
    if unknown:
        raise ValueError(f"`lesson` should be one of {list(LESSONS)}. Got {unknown}.")
    names = sorted(students or (p.name for p in submitted.iterdir() if p.is_dir()))
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"`shard` should be I/N with 0 <= I < N. Got {i}/{n}.")
        names = names[i::n]
    return [Task(s, lesson, submitted / s / lesson / f"{lesson}.ipynb") for s in names for lesson in lessons]


def grade_tasks(tasks: list[Task], seed: int, *, jobs: int = 1, timeout: float = 60, memory_mb: int = 4096,
                hide=()) -> list[Row]:
    """Grades every task, ``jobs`` students at a time; rows in the order of ``tasks``.

    A student's lessons share one sandbox child (one TensorFlow import), restarted after a
    timeout or crash; students never share one. (One student's four lessons: 23 s in one
    child, 44 s as four children on two cores, where each child imports TensorFlow.)
    """
    limits = {"timeout": timeout, "memory_mb": memory_mb, "hide": [str(p) for p in hide]}
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.student, []).append(task)
    units = list(groups.values())
    if jobs <= 1 or len(units) <= 1:
        done = [grade_student(unit, seed, **limits) for unit in units]
    else:
        import multiprocessing

        from concurrent.futures.process import BrokenProcessPool

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(grade_student, unit, seed, **limits) for unit in units]
            done = []
            for unit, future in zip(units, futures):
                try:
                    done.append(future.result())
                except BrokenProcessPool:  # a worker was killed from outside (the OOM killer): grade here
                    done.append(grade_student(unit, seed, **limits))
    by_task = {(r.student, r.lesson): [] for r in (row for rows in done for row in rows)}
    for row in (row for rows in done for row in rows):
        by_task[(row.student, row.lesson)].append(row)
    return [row for task in tasks for row in by_task[(task.student, task.lesson)]]


def grade_notebook(task: Task, seed: int, *, timeout: float = 60, memory_mb: int = 4096, hide=()) -> list[Row]:
    """Grades one notebook: its lesson's exercises, each full points or 0 with the reason."""
    return grade_student([task], seed, timeout=timeout, memory_mb=memory_mb, hide=hide)


def grade_student(tasks: list[Task], seed: int, *, timeout: float = 60, memory_mb: int = 4096,
                  hide=()) -> list[Row]:
    """Grades notebooks of one student in one sandbox child; reads their bytes only, never writes them."""
    from mnistloc import sandbox

    plans = [_safe_plan(task, seed) for task in tasks]
    sources = {name: src for plan in plans for name, src in plan["sources"].items()}
    calls = [call for plan in plans for call in plan["calls"]]
    warming = _warm_keras_here([name for name, _ in calls])
    outcomes = sandbox.run_exercises(sources, calls, timeout=timeout, memory_mb=memory_mb, hide=hide)
    if warming is not None:
        warming.join()  # never import Keras from two threads at once
    rows, start = [], 0
    for plan in plans:
        mine = outcomes[start:start + len(plan["calls"])]
        start += len(plan["calls"])
        rows += plan["finish"](mine)
    return rows


def _safe_plan(task: Task, seed: int) -> dict:
    """``_plan``, or a plan that gives every exercise 0 with the reason when reading the notebook failed."""
    try:
        return _plan(task, seed)
    except Exception as err:  # noqa: BLE001 - one odd notebook must not stop the class
        from mnistloc.checks import EXERCISES

        reason = f"the grader could not read this notebook ({type(err).__name__}: {err})"[:500]
        rows = [Row(task.student, task.lesson, n, 0, ex.points, "unreadable", reason)
                for n, ex in EXERCISES.items() if ex.lesson == task.lesson]
        return {"sources": {}, "calls": [], "finish": lambda _: rows}


def _plan(task: Task, seed: int) -> dict:
    """What to run for one notebook, and how to turn the outcomes into rows."""
    from mnistloc.checks import EXERCISES

    names = [name for name, ex in EXERCISES.items() if ex.lesson == task.lesson]
    row = lambda name, status, reason, points=0: Row(  # noqa: E731
        task.student, task.lesson, name, points, EXERCISES[name].points, status, reason)
    nothing = {"sources": {}, "calls": []}
    if not task.path.exists():
        reason = _other_notebooks(task)
        return {**nothing, "finish": lambda _: [row(name, "not-submitted", reason) for name in names]}
    diagnosis = doctor.diagnose(task.path, lesson=task.lesson)
    if not diagnosis.readable:
        problem = diagnosis.findings[0].problem
        return {**nothing, "finish": lambda _: [row(name, "unreadable", problem) for name in names]}
    sources, blocked = _answers(task.path, names, diagnosis)
    for name in [n for n in sources if _unfinished(sources[n], n)]:
        del sources[name]  # the stub as released: no child needed (a Keras stub would cost the 6 s import)
        blocked[name] = ("failed", f"{name}: not done yet: replace `raise NotImplementedError()` with your code.")
    calls, secret = [], []
    for name in sources:
        public, every = EXERCISES[name].cases(None), EXERCISES[name].cases(seed)
        calls += [(name, case) for case in every]
        secret += [i >= len(public) for i in range(len(every))]

    def finish(outcomes) -> list[Row]:
        rows = []
        for name in names:
            if name in blocked:
                rows.append(row(name, *blocked[name]))
                continue
            mine = [(case, s, o) for (n, case), s, o in zip(calls, secret, outcomes) if n == name]
            rows.append(_judge(name, mine, row))
        return rows

    return {"sources": sources, "calls": calls, "finish": finish}


def _warm_keras_here(names: list[str]):
    """Starts importing Keras (and the reference models) in a thread while the child runs, when a model
    exercise will be judged here; returns the thread to join before judging, or None."""
    import importlib
    import threading

    from mnistloc.checks import EXERCISES, keras

    if not any(getattr(EXERCISES[n], "keras", False) for n in names):
        return None
    thread = threading.Thread(target=lambda: (getattr(keras, "Model"), importlib.import_module("mnistloc.models")),
                              daemon=True)
    thread.start()
    return thread


def _other_notebooks(task: Task) -> str:
    folder = task.path.parent
    others = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if others:
        return (f"no {task.path.name} in submitted/{task.student}/{task.lesson}/ (found {', '.join(others)}): "
                f"nbgrader grades only {task.path.name}; rename it back")
    return f"no submission: submitted/{task.student}/{task.lesson}/{task.path.name} does not exist"


def _answers(path: Path, names: list[str], diagnosis) -> tuple[dict, dict]:
    """The answer cells' code by exercise, and exercises blocked by structure: name -> (status, reason)."""
    nb, _ = doctor.load(path)
    cells: dict[str, list] = {}
    for cell in nb["cells"]:
        gid = doctor._grade_id(cell)
        if gid in names:
            cells.setdefault(gid, []).append(cell)
    sources, blocked = {}, {}
    for name in names:
        found = cells.get(name, [])
        problem = next((f.problem for f in diagnosis.findings if f.where == name), None)
        if len(found) > 1:
            blocked[name] = ("duplicated", problem)
        elif not found:
            blocked[name] = ("missing", problem or f"no answer cell for `{name}`")
        else:  # an answer cell turned into markdown is graded as code, as nbgrader does
            sources[name] = doctor._source(found[0])
    return sources, blocked


def _unfinished(source: str, name: str) -> bool:
    """Whether the cell is the released stub: ``def name(...)``, a docstring, ``raise NotImplementedError()``."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or body[0].name != name:
        return False
    stmts = [s for s in body[0].body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return (len(stmts) == 1 and isinstance(stmts[0], ast.Raise) and stmts[0].exc is not None
            and "NotImplementedError" in ast.unparse(stmts[0].exc))


def _judge(name: str, mine: list, row) -> Row:
    """Full points when every case passes, else 0 and the first failure's reason (secret-safe)."""
    from mnistloc.checks import EXERCISES, CheckFailure

    ex = EXERCISES[name]
    for case, secret, outcome in mine:
        if outcome.status != "ok":
            return row(name, outcome.status, f"{name}: {outcome.value}")
        try:
            ex.judge(outcome.value, case, secret=secret)
        except CheckFailure as failure:
            return row(name, "failed", failure.hint)
        except Exception as err:  # noqa: BLE001 - a malformed result from the child is the student's
            return row(name, "failed", f"{name}: the result could not be checked ({type(err).__name__})")
    return row(name, "passed", "", ex.points)


# ---- outputs: CSV, JSON, feedback pages, shards ------------------------------------------------------

def seed_fingerprint(seed: int) -> str:
    """Identifies the seed without revealing it (shards of one class must share it)."""
    return hashlib.sha256(f"mnistloc:{seed}".encode()).hexdigest()[:12]


def output_paths(out_dir, shard: tuple[int, int] | None = None) -> list[Path]:
    """The files a run writes besides feedback pages: the shard file, or grades.csv and grades.json."""
    out = Path(out_dir)
    if shard is not None:
        return [out / "shards" / f"shard-{shard[0]}-of-{shard[1]}.json"]
    return [out / "grades.csv", out / "grades.json"]


def write_results(rows: list[Row], out_dir, *, seed: int, force: bool = False) -> list[Path]:
    """Writes grades.csv, grades.json and feedback/<student>/<lesson>.html under ``out_dir``.

    Raises:
        FileExistsError: an output exists and ``force`` is False.
    """
    out = Path(out_dir)
    paths = output_paths(out)
    _refuse_overwrite(paths, force)
    out.mkdir(parents=True, exist_ok=True)
    with open(paths[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(r.to_dict() for r in rows)
    paths[1].write_text(json.dumps(_document(rows, seed), indent=1) + "\n")
    for (student, lesson), group in _by_notebook(rows).items():
        page = out / "feedback" / student / f"{lesson}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(feedback_html(student, lesson, group))
        paths.append(page)
    return paths


def write_shard(rows: list[Row], out_dir, shard: tuple[int, int], *, seed: int, force: bool = False) -> Path:
    """Writes one shard's rows to ``out_dir/shards/shard-I-of-N.json`` for ``merge``."""
    (path,) = output_paths(out_dir, shard)
    _refuse_overwrite([path], force)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**_document(rows, seed), "shard": list(shard)}, indent=1) + "\n")
    return path


def read_shards(paths) -> tuple[list[Row], str]:
    """Joins shard files; checks they are one complete set with one seed.

    Raises:
        ValueError: shards of different sizes or seeds, a missing or repeated shard.
    """
    docs = [json.loads(Path(p).read_text()) for p in paths]
    if not docs:
        raise ValueError("`--merge` found no shard files (out/shards/shard-I-of-N.json)")
    sizes = {d["shard"][1] for d in docs}
    seeds = {d["seed_fingerprint"] for d in docs}
    if len(sizes) != 1 or len(seeds) != 1:
        raise ValueError(f"the shards should come from one run (one N, one seed). Got N in {sorted(sizes)}, "
                         f"{len(seeds)} different seeds.")
    have = sorted(d["shard"][0] for d in docs)
    if have != list(range(sizes.pop())):
        raise ValueError(f"the shards should be 0..N-1 exactly once each. Got {have}.")
    rows = [Row(**r) for d in sorted(docs, key=lambda d: d["shard"][0]) for r in d["rows"]]
    return sorted(rows, key=lambda r: (r.student, r.lesson)), seeds.pop()


def _refuse_overwrite(paths, force: bool) -> None:
    for p in paths:
        if Path(p).exists() and not force:
            raise FileExistsError(f"{p} exists; pass --force to overwrite it")


def _document(rows: list[Row], seed: int) -> dict:
    return {"generated_by": "mnistloc grade", "seed_fingerprint": seed_fingerprint(seed),
            "columns": list(COLUMNS), "rows": [r.to_dict() for r in rows]}


def _by_notebook(rows: list[Row]) -> dict:
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r.student, r.lesson), []).append(r)
    return groups


def feedback_html(student: str, lesson: str, rows: list[Row]) -> str:
    """A self-contained page: each exercise's points, status and hint (never secret expected values)."""
    e = html.escape
    total, most = sum(r.points for r in rows), sum(r.max_points for r in rows)
    lines = "\n".join(
        f"<tr class='{e(r.status)}'><td><code>{e(r.exercise)}</code></td><td>{r.points}/{r.max_points}</td>"
        f"<td>{e(r.status)}</td><td>{e(r.reason)}</td></tr>" for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(lesson)}: {e(student)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.3em .6em;text-align:left;
vertical-align:top;border-bottom:1px solid #ddd}}.passed td:nth-child(3){{color:#070}}
tr:not(.passed) td:nth-child(3){{color:#a00}}</style></head>
<body><h1>{e(lesson)}</h1><p>Student <b>{e(student)}</b>: <b>{total}/{most}</b> points.</p>
<table><tr><th>exercise</th><th>points</th><th>status</th><th>hint</th></tr>
{lines}
</table><p>Each exercise is checked on public cases (as in the notebook) and on hidden cases; hints for hidden
cases never show the expected values. Run <code>mnistloc doctor</code> on your notebook to see structural
problems.</p></body></html>
"""


# ---- nbgrader's gradebook -----------------------------------------------------------------------------

def record_gradebook(course_dir, rows: list[Row]) -> int:
    """Sets the auto score of each ``test_<exercise>`` cell in nbgrader's gradebook; returns grades set.

    Manual scores an instructor gave in formgrader are kept (nbgrader prefers them).
    A lesson with no submission notebook at all gets no submission, as in nbgrader.

    Raises:
        ValueError: a lesson is not in the gradebook (run ``nbgrader generate_assignment`` first).
    """
    from nbgrader.api import Gradebook, MissingEntry

    import warnings

    db_url, course_id = _gradebook_url(course_dir)
    count = 0
    with Gradebook(db_url, course_id=course_id) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarning from inside nbgrader's add_submission
        for (student, lesson), group in _by_notebook(rows).items():
            gb.update_or_create_student(student)  # listed by `nbgrader export`, with 0 when not submitted
            if all(r.status == "not-submitted" for r in group):
                continue
            try:
                gb.find_assignment(lesson)
            except MissingEntry:
                raise ValueError(f"lesson {lesson} is not in the gradebook {db_url}: run `nbgrader "
                                 f"generate_assignment {lesson}` in {course_dir} first") from None
            stamp = Path(course_dir) / "submitted" / student / lesson / "timestamp.txt"
            extra = {"timestamp": stamp.read_text().strip()} if stamp.is_file() else {}
            gb.update_or_create_submission(lesson, student, **extra)
            for r in group:
                try:
                    grade = gb.find_grade(f"test_{r.exercise}", lesson, lesson, student)
                except MissingEntry:
                    continue  # the lesson's notebook has no such test cell
                grade.auto_score = float(r.points)
                grade.needs_manual_grade = False
                count += 1
            gb.db.commit()
    return count


def _gradebook_url(course_dir) -> tuple[str, str]:
    """The gradebook URL and course id, as nbgrader would use them with its root at ``course_dir``.

    The configuration is ``COURSE_DIR/nbgrader_config.py`` when there is one, else the course's
    own ``grader/nbgrader_config.py`` (whose root, ``$MNISTLOC_COURSE_ROOT``, is the course folder).
    """
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(course_dir).resolve()
    config = Config()
    for folder in (root, Path(__file__).resolve().parent.parent / "grader"):
        if (folder / "nbgrader_config.py").exists():
            config = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
            break
    config.CourseDirectory.root = str(root)
    coursedir = CourseDirectory(config=config)
    return coursedir.db_url, coursedir.course_id or "default_course"


def summary(rows: list[Row]) -> str:
    """A short table: per lesson, students graded, mean points and how many exercises ended in each status."""
    lines = [f"{'lesson':<20} {'students':>8} {'mean points':>12}  statuses"]
    for lesson in dict.fromkeys(r.lesson for r in rows):
        mine = [r for r in rows if r.lesson == lesson]
        totals: dict[str, tuple[int, int]] = {}
        for r in mine:
            got, most = totals.get(r.student, (0, 0))
            totals[r.student] = (got + r.points, most + r.max_points)
        counts = {s: sum(r.status == s for r in mine) for s in STATUSES if any(r.status == s for r in mine)}
        mean = sum(g for g, _ in totals.values()) / len(totals)
        most = max(m for _, m in totals.values())
        lines.append(f"{lesson:<20} {len(totals):>8} {mean:>7.1f}/{most:<4}  "
                     + ", ".join(f"{s} {n}" for s, n in counts.items()))
    return "\n".join(lines)
