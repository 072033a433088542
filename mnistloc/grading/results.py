"""What the hardened grader writes: ``Row`` records, CSV, JSON, feedback pages, shards, the gradebook.

One ``Row`` per student, lesson and exercise; ``write_results`` writes them as
``grades.csv`` and ``grades.json`` and a feedback page per student and lesson;
``read_results`` reads them back and ``merge_rows`` replaces one student's notebooks
in them (a one-student regrade); ``publish`` writes all a run gives (results,
gradebook, then ``write_reports``: the class dashboard and the LMS exports, both
rebuilt from the recorded rows);
``write_shard`` / ``read_shards`` carry one shard of a class between machines;
``record_gradebook`` sets the scores of the test cells (``test_<exercise>``) in
nbgrader's gradebook, so ``nbgrader export`` and formgrader agree;
``bonus_points`` and ``record_bonus`` turn leaderboard scores into extra credit there.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import json
import warnings
from pathlib import Path

from mnistloc.grading.judge import STATUSES, Result

COLUMNS = ("student", "lesson", "exercise", "points", "max_points", "status", "reason", "mistake", "hidden")


@dataclasses.dataclass(frozen=True)
class Row:
    """One exercise of one student's lesson: ``status`` in ``STATUSES``; ``reason`` is what the student reads;
    ``mistake`` the id of the catalogued mistake it names (``exercises.base.mistake_id``) or ``""``; ``hidden``
    whether it failed on a hidden case."""

    student: str
    lesson: str
    exercise: str
    points: int
    max_points: int
    status: str
    reason: str = ""
    mistake: str = ""
    hidden: bool = False

    @classmethod
    def of(cls, student: str, lesson: str, result: Result) -> "Row":
        """The row of one judged exercise (``judge.Result``) of a student's lesson."""
        return cls(student, lesson, result.name, result.points, result.max_points, result.status, result.hint,
                   result.mistake, result.hidden)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def seed_fingerprint(seed: int) -> str:
    """Identifies the seed without revealing it (shards of one class must share it)."""
    return hashlib.sha256(f"mnistloc:{seed}".encode()).hexdigest()[:12]


def output_paths(out_dir, shard: tuple[int, int] | None = None) -> list[Path]:
    """The files a run writes besides feedback pages: the shard file, or grades.csv and grades.json."""
    out = Path(out_dir)
    if shard is not None:
        return [out / "shards" / f"shard-{shard[0]}-of-{shard[1]}.json"]
    return [out / "grades.csv", out / "grades.json"]


def write_results(rows: list[Row], out_dir, *, seed: int, force: bool = False, pages=None) -> list[Path]:
    """Writes grades.csv, grades.json and feedback/<student>/<lesson>.html under ``out_dir``.

    Args:
        rows: every row of the class.
        out_dir: the results folder.
        seed: the secret seed (only its fingerprint is written).
        force: overwrite existing results.
        pages: the ``(student, lesson)`` notebooks whose feedback pages to write (default: every one);
            a one-student regrade leaves the other students' pages untouched.

    Raises:
        FileExistsError: an output exists and ``force`` is False.
    """
    out = Path(out_dir)
    paths = output_paths(out)
    refuse_overwrite(paths, force)
    out.mkdir(parents=True, exist_ok=True)
    with open(paths[0], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(r.to_dict() for r in rows)
    paths[1].write_text(json.dumps(_document(rows, seed), indent=1) + "\n")
    for (student, lesson), group in _by_notebook(rows).items():
        if pages is not None and (student, lesson) not in pages:
            continue
        page = out / "feedback" / student / f"{lesson}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(feedback_html(student, lesson, group))
        paths.append(page)
    return paths


def publish(course_dir, out_dir, rows: list[Row], *, seed: int, keep_others: bool = False, gradebook: bool = True,
            export=(), force: bool = False, say=print) -> list[Row]:
    """Writes everything a grading run gives from its ``rows``: grades.csv and grades.json, the feedback pages,
    nbgrader's gradebook, then the class dashboard and the LMS exports (``write_reports``).

    Args:
        course_dir: the nbgrader course folder (its gradebook).
        out_dir: the results folder.
        rows: the rows this run graded (or merged from shards).
        seed: the secret seed.
        keep_others: keep the recorded rows of every notebook ``rows`` does not grade (a one-student
            regrade): only the graded notebooks' feedback pages and gradebook entries are written.
        gradebook: record the graded rows in nbgrader's gradebook.
        export: ``(format, path)`` pairs for ``lms_export.write_export``, of the whole class.
        force: overwrite existing results.
        say: prints one line.

    Returns:
        list[Row]: every row of the class as now recorded.

    Raises:
        ValueError: the recorded results were graded with another secret seed.
    """
    out = Path(out_dir)
    every = rows
    if keep_others and (out / "grades.json").exists():
        old, fingerprint = read_results(out)
        if fingerprint != seed_fingerprint(seed):
            raise ValueError(f"{out / 'grades.json'} was graded with another secret seed than this course's; "
                             f"regrade the whole class or pass another --out")
        every = merge_rows(old, rows)
    paths = write_results(every, out, seed=seed, force=force, pages=set(_by_notebook(rows)))
    if gradebook:
        say(f"recorded {record_gradebook(course_dir, rows)} grades in nbgrader's gradebook")
    say(f"wrote {paths[0]}, {paths[1]} and {len(paths) - 2} feedback pages")
    write_reports(course_dir, out, export=export, say=say)
    say(summary(every))
    return every


def write_reports(course_dir, out_dir, *, export=(), force: bool = True, say=print) -> list[Row]:
    """Rebuilds the class dashboard and writes the LMS exports from the rows recorded in ``out_dir/grades.json``
    (grading nothing): after a run, or alone once formgrader holds the written answers' scores.

    Args:
        course_dir: the nbgrader course folder (its gradebook's manual scores go into the exports).
        out_dir: the results folder.
        export: ``(format, path)`` pairs for ``lms_export.write_export``.
        force: overwrite existing export files.
        say: prints one line.

    Returns:
        list[Row]: the recorded rows.

    Raises:
        FileNotFoundError: no grades.json in ``out_dir``.
        FileExistsError: an export file exists and ``force`` is False.
    """
    from mnistloc.grading import dashboard, lms_export  # they read what this module writes

    rows, _ = read_results(out_dir)
    refuse_overwrite([path for _, path in export], force)
    say(f"wrote {dashboard.write_dashboard(out_dir)}")
    if export:
        grades = lms_export.lesson_grades(rows, *lms_export.manual_scores(course_dir))
        for fmt, path in export:
            say(f"wrote {lms_export.write_export(fmt, path, grades)} ({fmt})")
        for lesson, questions in grades.pending.items():
            say(f"{lesson}: written questions not yet graded in formgrader, so not exported: {', '.join(questions)}")
    return rows


def read_results(out_dir) -> tuple[list[Row], str]:
    """The rows and seed fingerprint recorded in ``out_dir/grades.json`` (by ``write_results``).

    Raises:
        FileNotFoundError: no grades.json there.
        ValueError: the file is not one that ``mnistloc grade`` wrote.
    """
    path = Path(out_dir) / "grades.json"
    if not path.is_file():
        raise FileNotFoundError(f"no recorded grades at {path}: grade the class first (`mnistloc grade COURSE_DIR`)")
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or doc.get("generated_by") != "mnistloc grade" or "rows" not in doc:
        raise ValueError(f"{path} should be the grades.json that `mnistloc grade` writes; it is not")
    return [Row(**r) for r in doc["rows"]], doc["seed_fingerprint"]


def merge_rows(old: list[Row], new: list[Row]) -> list[Row]:
    """``old`` with every notebook (student, lesson) that ``new`` grades replaced by its new rows.

    Rows come out by student, then lesson, as a class run writes them; other students' rows are unchanged.
    """
    fresh = _by_notebook(new)
    kept = {key: group for key, group in _by_notebook(old).items() if key not in fresh}
    merged = {**kept, **fresh}
    return [row for key in sorted(merged) for row in merged[key]]


def write_shard(rows: list[Row], out_dir, shard: tuple[int, int], *, seed: int, force: bool = False) -> Path:
    """Writes one shard's rows to ``out_dir/shards/shard-I-of-N.json`` for ``merge``."""
    (path,) = output_paths(out_dir, shard)
    refuse_overwrite([path], force)
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


def refuse_overwrite(paths, force: bool) -> None:
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
    from nbgrader.api import Gradebook, MissingEntry  # nbgrader takes 3 s to import: only when needed

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
            for r in (r for r in group if r.status != "manual"):  # formgrader holds the written answers' scores
                try:
                    grade = gb.find_grade(f"test_{r.exercise}", lesson, lesson, student)
                except MissingEntry:
                    continue  # the lesson's notebook has no such test cell
                grade.auto_score = float(r.points)
                grade.needs_manual_grade = False
                count += 1
            gb.db.commit()
    return count


def bonus_points(scores: dict[str, float], thresholds: dict[float, float]) -> dict[str, float]:
    """Each student's bonus: the points of the highest threshold their score reaches; none below them all.

    Args:
        scores: student -> score (the leaderboard's mAP).
        thresholds: score -> points, e.g. ``{0.70: 1, 0.75: 2}``.
    """
    awards = {}
    for student, score in scores.items():
        reached = [t for t in thresholds if score >= t]
        if reached:
            awards[student] = float(thresholds[max(reached)])
    return awards


def record_bonus(course_dir, awards: dict[str, float], lesson: str, cell: str, *, force: bool = False) -> int:
    """Sets each student's bonus as nbgrader extra credit on ``cell`` of ``lesson``; returns grades set.

    The extra credit counts in ``nbgrader export`` and formgrader once the
    cell is graded (``mnistloc grade`` or ``nbgrader autograde``). A student
    without a submission of ``lesson`` in the gradebook gets one, as
    ``record_gradebook`` makes them.

    Raises:
        ValueError: the lesson or the cell is not in the gradebook.
        FileExistsError: a student's cell already holds another extra credit (an instructor's, or an
            earlier leaderboard's) and ``force`` is False.
    """
    from nbgrader.api import Gradebook, MissingEntry  # nbgrader takes 3 s to import: only when needed

    db_url, course_id = _gradebook_url(course_dir)
    with Gradebook(db_url, course_id=course_id) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarning from inside nbgrader's add_submission
        try:
            gb.find_grade_cell(cell, lesson, lesson)
        except MissingEntry:
            raise ValueError(f"lesson {lesson} with a graded cell {cell} is not in the gradebook {db_url}: run "
                             f"`nbgrader generate_assignment {lesson}` in {course_dir} first") from None
        grades = {}
        for student in sorted(awards):
            gb.update_or_create_student(student)
            gb.update_or_create_submission(lesson, student)
            grades[student] = gb.find_grade(cell, lesson, lesson, student)
        clash = [s for s, g in grades.items() if g.extra_credit not in (None, 0.0, awards[s])]
        if clash and not force:
            raise FileExistsError(f"{cell} of {lesson} already holds other extra credit for {', '.join(clash)}; "
                                  f"pass force=True (--force) to replace it")
        for student, grade in grades.items():
            grade.extra_credit = awards[student]
        gb.db.commit()
    return len(grades)


def _gradebook_url(course_dir) -> tuple[str, str]:
    """The gradebook URL and course id, as nbgrader would use them with its root at ``course_dir``.

    The configuration is ``COURSE_DIR/nbgrader_config.py`` when there is one, else the one the package
    ships (``mnistloc.course.nbgrader_config``; the repository's ``grader/nbgrader_config.py``).
    """
    from nbgrader.coursedir import CourseDirectory  # nbgrader takes 3 s to import: only when needed
    from traitlets.config.loader import PyFileConfigLoader

    from mnistloc import course

    root = Path(course_dir).resolve()
    with course.nbgrader_config() as shipped:
        config_file = root / "nbgrader_config.py" if (root / "nbgrader_config.py").exists() else shipped
        config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
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
