"""The gradebook in an LMS's import format: Canvas's or Moodle's CSV, one column per lesson.

``lesson_grades(rows, manual)`` adds up each student's points per lesson: the
autograded exercises (the rows ``mnistloc grade`` recorded) plus the written
questions once they are graded in formgrader. A written question counts, in
the points possible and in every score, once nbgrader's gradebook holds a
manual score for it in every submitted notebook of its lesson; until then its
lesson's column holds the autograded points only (``Grades.pending`` names it).
``manual_scores(course_dir)`` reads those manual scores; ``write_export(fmt, path,
grades)`` writes the file:

- ``canvas``: the columns of Canvas's gradebook CSV (``Student``, ``ID``, ``SIS User
  ID``, ``SIS Login ID``, ``Section``, then one per lesson) and a ``Points Possible``
  row under the header; the student id goes into both SIS columns, which Canvas
  matches on.
- ``moodle``: a ``Username`` column (the student id) and one column per lesson,
  headed ``LESSON (max POINTS)``; Moodle's CSV import maps each to a grade item.

A cell that would start a spreadsheet formula (``=``, ``+``, ``-``, ``@``) gets a
leading apostrophe.
"""
from __future__ import annotations

import csv
import dataclasses
import warnings
from pathlib import Path

from mnistloc.grading.registry import QUESTIONS
from mnistloc.grading.results import Row, _gradebook_url

FORMATS = ("canvas", "moodle")


@dataclasses.dataclass(frozen=True)
class Grades:
    """Per lesson, the points possible and each student's points.

    Attributes:
        lessons: lesson ids, in the rows' order.
        possible: lesson -> points possible (autograded exercises + written questions that count).
        scores: student -> lesson -> points (0 for a lesson not submitted).
        names: student -> display name (``Last, First`` from nbgrader's gradebook, else the id).
        pending: lesson -> written questions not yet graded in every submission (not counted).
    """

    lessons: tuple
    possible: dict
    scores: dict
    names: dict
    pending: dict


def lesson_grades(rows: list[Row], manual: dict | None = None, names: dict | None = None) -> Grades:
    """Adds up the rows (and the manual scores of written questions) per student and lesson.

    Args:
        rows: every row of the class (``results.read_results``).
        manual: ``(student, lesson, question) -> score`` from formgrader (``manual_scores``); None: none.
        names: student -> display name.
    """
    manual = manual or {}
    lessons = tuple(dict.fromkeys(r.lesson for r in rows))
    students = sorted({r.student for r in rows})
    submitted = {(r.student, r.lesson) for r in rows if r.status != "not-submitted"}
    possible, pending, counted = {}, {}, {}
    for lesson in lessons:
        auto = {r.exercise: r.max_points for r in rows if r.lesson == lesson and r.status != "manual"}
        questions = [q.name for q in QUESTIONS.values() if q.lesson == lesson]
        mine = [s for s in students if (s, lesson) in submitted]
        counted[lesson] = [q for q in questions if mine and all((s, lesson, q) in manual for s in mine)]
        pending[lesson] = [q for q in questions if q not in counted[lesson]]
        possible[lesson] = sum(auto.values()) + sum(QUESTIONS[q].points for q in counted[lesson])
    scores = {s: {lesson: 0.0 for lesson in lessons} for s in students}
    for r in rows:
        scores[r.student][r.lesson] += r.points
    for s in students:
        for lesson in lessons:
            scores[s][lesson] += sum(manual.get((s, lesson, q), 0.0) for q in counted[lesson])
    return Grades(lessons, possible, scores, {s: (names or {}).get(s) or s for s in students},
                  {lesson: qs for lesson, qs in pending.items() if qs})


def manual_scores(course_dir) -> tuple[dict, dict]:
    """The written questions' manual scores in nbgrader's gradebook, and the students' names there.

    Returns:
        ``({(student, lesson, question): score}, {student: "Last, First"})``; both empty when the
        course has no gradebook yet (nothing is created).
    """
    db_url, course_id = _gradebook_url(course_dir)
    if db_url.startswith("sqlite:///") and not Path(db_url.removeprefix("sqlite:///")).is_file():
        return {}, {}
    from nbgrader.api import Gradebook, MissingEntry  # nbgrader takes 3 s to import: only when needed

    scores, names = {}, {}
    with Gradebook(db_url, course_id=course_id) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for student in gb.students:
            full = ", ".join(n for n in (student.last_name, student.first_name) if n)
            names[student.id] = full or student.id
            for question in QUESTIONS.values():
                try:
                    grade = gb.find_grade(question.name, question.lesson, question.lesson, student.id)
                except MissingEntry:
                    continue
                if grade.manual_score is not None:
                    scores[(student.id, question.lesson, question.name)] = float(grade.manual_score)
    return scores, names


def write_export(fmt: str, path, grades: Grades) -> Path:
    """Writes ``grades`` as the import CSV of ``fmt`` (``canvas`` or ``moodle``) to ``path``.

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"`--export` format should be one of {list(FORMATS)}. Got {fmt!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for row in (_canvas if fmt == "canvas" else _moodle)(grades):
            writer.writerow([_cell(v) for v in row])
    return path


def _canvas(grades: Grades):
    yield ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *grades.lessons]
    yield ["Points Possible", "", "", "", "", *(_number(grades.possible[l]) for l in grades.lessons)]
    for s, mine in grades.scores.items():
        yield [grades.names[s], "", s, s, "", *(_number(mine[l]) for l in grades.lessons)]


def _moodle(grades: Grades):
    yield ["Username", *(f"{l} (max {_number(grades.possible[l])})" for l in grades.lessons)]
    for s, mine in grades.scores.items():
        yield [s, *(_number(mine[l]) for l in grades.lessons)]


def _number(x: float) -> str:
    return f"{x:g}"


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no spreadsheet formulas
