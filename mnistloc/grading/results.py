"""What the hardened grader writes: ``Row`` records, CSV, JSON, feedback pages, shards, the gradebook.

One ``Row`` per student, lesson and exercise; ``write_results`` writes them as
``grades.csv`` and ``grades.json`` and a feedback page per student and lesson;
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

COLUMNS = ("student", "lesson", "exercise", "points", "max_points", "status", "reason")


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

    @classmethod
    def of(cls, student: str, lesson: str, result: Result) -> "Row":
        """The row of one judged exercise (``judge.Result``) of a student's lesson."""
        return cls(student, lesson, result.name, result.points, result.max_points, result.status, result.hint)

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


def write_results(rows: list[Row], out_dir, *, seed: int, force: bool = False) -> list[Path]:
    """Writes grades.csv, grades.json and feedback/<student>/<lesson>.html under ``out_dir``.

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
        page = out / "feedback" / student / f"{lesson}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(feedback_html(student, lesson, group))
        paths.append(page)
    return paths


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
