"""The class dashboard: what the class got right and wrong, per lesson and exercise, on one page.

``write_dashboard(out_dir)`` reads the rows that ``mnistloc grade`` recorded in
``out_dir/grades.json`` and writes ``out_dir/class.html`` with its score
histograms in ``out_dir/class/``. It is rebuilt from those rows alone, so a
shard merge or a one-student regrade (which rewrite ``grades.json``) updates it.

``class_summary(rows)`` computes every number on the page (tested on its own):
per lesson, each student's points; per exercise, the pass rate, the count of
each status, the failures on hidden cases (counted, never shown), and every
catalogued mistake (``Row.mistake``) with its hint and the students who made it,
most common first; across lessons, the exercises that time out, crash or error most.
"""
from __future__ import annotations

import collections
import dataclasses
import html
import statistics
from pathlib import Path
from urllib.parse import quote

from mnistloc.grading.exercises.base import not_done
from mnistloc.grading.judge import STATUSES
from mnistloc.grading.results import Row, read_results

TROUBLE = ("timeout", "crash", "error")  # statuses where the grader, not a check, stopped the exercise


@dataclasses.dataclass(frozen=True)
class Mistake:
    """One catalogued mistake of one exercise: its id, the hint students read, who made it (sorted)."""

    id: str
    hint: str
    students: tuple

    @property
    def count(self) -> int:
        return len(self.students)


@dataclasses.dataclass(frozen=True)
class ExerciseSummary:
    """One exercise of one lesson across the class.

    Attributes:
        name: the exercise (or written question).
        submitted: notebooks of the lesson that were submitted (every status but ``not-submitted``).
        statuses: status -> count, over every student of the lesson.
        hidden_failures: exercises that failed on a hidden case (which case is never recorded).
        mistakes: the catalogued mistakes made, most common first (then by id).
        stubs: ``failed`` because the answer is still the released stub.
        unnamed_failures: ``failed`` with no catalogued mistake (a violated property, a wrong value).
    """

    name: str
    submitted: int
    statuses: dict
    hidden_failures: int
    mistakes: tuple
    stubs: int
    unnamed_failures: int

    @property
    def written(self) -> bool:
        """A written question: scored by hand in formgrader, no pass rate here."""
        return self.statuses.get("manual", 0) > 0

    @property
    def pass_rate(self) -> float | None:
        """Passed / submitted; None when nothing was submitted or the exercise is a written question."""
        if self.written or not self.submitted:
            return None
        return self.statuses.get("passed", 0) / self.submitted


@dataclasses.dataclass(frozen=True)
class LessonSummary:
    """One lesson across the class: ``scores`` student -> points (submitted notebooks only), out of ``max_points``."""

    lesson: str
    students: int
    scores: dict
    max_points: int
    exercises: tuple


def class_summary(rows: list[Row]) -> list[LessonSummary]:
    """Every number of the dashboard, per lesson in the order the rows first name them."""
    lessons = []
    for lesson in dict.fromkeys(r.lesson for r in rows):
        mine = [r for r in rows if r.lesson == lesson]
        by_student: dict[str, list[Row]] = collections.defaultdict(list)
        for r in mine:
            by_student[r.student].append(r)
        submitted = {s for s, group in by_student.items() if any(r.status != "not-submitted" for r in group)}
        scores = {s: sum(r.points for r in by_student[s]) for s in sorted(submitted)}
        most = max((sum(r.max_points for r in group) for group in by_student.values()), default=0)
        exercises = tuple(_exercise(name, [r for r in mine if r.exercise == name], submitted)
                          for name in dict.fromkeys(r.exercise for r in mine))
        lessons.append(LessonSummary(lesson, len(by_student), scores, most, exercises))
    return lessons


def _exercise(name: str, rows: list[Row], submitted: set) -> ExerciseSummary:
    statuses = collections.Counter(r.status for r in rows)
    named: dict[str, list[Row]] = collections.defaultdict(list)
    for r in rows:
        if r.mistake and r.status != "passed":
            named[r.mistake].append(r)
    mistakes = sorted((Mistake(mid, group[0].reason.removeprefix(f"{name}: "), tuple(sorted(r.student for r in group)))
                       for mid, group in named.items()), key=lambda m: (-m.count, m.id))
    stub = not_done(name)
    return ExerciseSummary(
        name=name, submitted=sum(r.student in submitted for r in rows),
        statuses={s: statuses[s] for s in STATUSES if statuses[s]},
        hidden_failures=sum(r.hidden and r.status != "passed" for r in rows), mistakes=tuple(mistakes),
        stubs=sum(r.status == "failed" and r.reason == stub for r in rows),
        unnamed_failures=sum(r.status == "failed" and not r.mistake and r.reason != stub for r in rows))


def most_trouble(lessons: list[LessonSummary], top: int = 10) -> list[tuple[str, str, dict]]:
    """The exercises that time out, crash or error most: ``(lesson, exercise, {status: count})``, worst first."""
    found = [(ls.lesson, ex.name, {s: ex.statuses[s] for s in TROUBLE if ex.statuses.get(s)})
             for ls in lessons for ex in ls.exercises]
    found = [f for f in found if f[2]]
    return sorted(found, key=lambda f: (-sum(f[2].values()), f[0], f[1]))[:top]


# ---- the page ---------------------------------------------------------------------------------------

def write_dashboard(out_dir) -> Path:
    """Writes ``out_dir/class.html`` and its histograms ``out_dir/class/scores-<n>.png`` from grades.json.

    Raises:
        FileNotFoundError: no grades.json in ``out_dir``.
    """
    out = Path(out_dir)
    rows, _ = read_results(out)
    lessons = class_summary(rows)
    pictures = out / "class"
    pictures.mkdir(parents=True, exist_ok=True)
    for old in pictures.glob("scores-*.png"):
        old.unlink()  # a lesson no longer graded leaves no stale picture
    for i, ls in enumerate(lessons):
        _histogram(ls, pictures / f"scores-{i}.png")
    page = out / "class.html"
    page.write_text(dashboard_html(lessons, len({r.student for r in rows})))
    return page


def score_bins(scores: list[int], max_points: int) -> list[tuple[int, int, int]]:
    """``(low, high, count)`` per bin of the histogram, ``low <= points <= high``: one point per bin up to 20
    points, else 10 bins of equal width (the last one closed at ``max_points``)."""
    if max_points <= 20:
        edges = [(p, p) for p in range(max_points + 1)]
    else:
        step = -(-(max_points + 1) // 10)
        edges = [(lo, min(lo + step - 1, max_points)) for lo in range(0, max_points + 1, step)]
    return [(lo, hi, sum(lo <= s <= hi for s in scores)) for lo, hi in edges]


def _histogram(ls: LessonSummary, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state

    bins = score_bins(list(ls.scores.values()), ls.max_points)
    fig = Figure(figsize=(4.2, 2.4), dpi=100)
    ax = fig.subplots()
    ax.bar([(lo + hi) / 2 for lo, hi, _ in bins], [n for _, _, n in bins],
           width=[hi - lo + 0.8 for lo, hi, _ in bins], color="#4a78b0")
    ax.set_xlabel(f"points (of {ls.max_points})")
    ax.set_ylabel("students")
    ax.set_xlim(-0.5, ls.max_points + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(ls.lesson, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


_STYLE = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}
td,th{padding:.3em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin-bottom:1em}.num{text-align:right}.bad{color:#a00}
.lesson{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}ul{margin:.2em 0;padding-left:1.2em}
.who a{margin-right:.5em}details{margin:.2em 0}"""


def dashboard_html(lessons: list[LessonSummary], students: int) -> str:
    """The page; every text that came from a submission or a student id is escaped."""
    trouble = most_trouble(lessons)
    trouble_rows = "\n".join(
        f"<tr><td>{_e(lesson)}</td><td><code>{_e(name)}</code></td>"
        + "".join(f"<td class='num'>{counts.get(s, 0)}</td>" for s in TROUBLE) + "</tr>"
        for lesson, name, counts in trouble)
    trouble_html = (f"<table><tr><th>lesson</th><th>exercise</th>{''.join(f'<th>{s}</th>' for s in TROUBLE)}</tr>"
                    f"\n{trouble_rows}\n</table>" if trouble else "<p>No exercise timed out, crashed or errored.</p>")
    sections = "\n".join(_lesson_html(i, ls) for i, ls in enumerate(lessons))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Class results</title>
<style>{_STYLE}</style></head>
<body><h1>Class results</h1>
<p>{students} student{"s" * (students != 1)}, {len(lessons)} lesson{"s" * (len(lessons) != 1)}. Built from <a href="grades.json">grades.json</a> (also
<a href="grades.csv">grades.csv</a>); each student's name links to their feedback page. Hidden-case failures are
counted, never shown.</p>
<h2>Exercises that time out, crash or error most</h2>
{trouble_html}
{sections}
</body></html>
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _link(student: str, lesson: str) -> str:
    href = f"feedback/{quote(student, safe='')}/{quote(lesson, safe='')}.html"
    return f"<a href=\"{_e(href)}\">{_e(student)}</a>"


def _lesson_html(i: int, ls: LessonSummary) -> str:
    scores = list(ls.scores.values())
    stats = (f"mean {statistics.mean(scores):.1f}, median {statistics.median(scores):g}, "
             f"min {min(scores)}, max {max(scores)}" if scores else "no submissions")
    bins = "\n".join(f"<tr><td class='num'>{lo}{'' if lo == hi else f'-{hi}'}</td><td class='num'>{n}</td></tr>"
                     for lo, hi, n in score_bins(scores, ls.max_points) if n)  # the empty bins: in the picture
    rows = "\n".join(_exercise_html(ls.lesson, ex) for ex in ls.exercises)
    return f"""<h2 id="lesson-{i}">{_e(ls.lesson)}</h2>
<p>{len(scores)} of {ls.students} students submitted; points of {ls.max_points}: {stats}.</p>
<div class="lesson"><img src="class/scores-{i}.png" width="420" height="240"
 alt="histogram of the points of {_e(ls.lesson)}">
<table><tr><th>points</th><th>students</th></tr><!-- bins with no student are left out -->
{bins}
</table></div>
<table><tr><th>exercise</th><th>pass rate</th><th>statuses</th><th>failed on a hidden case</th>
<th>named mistakes (most common first) and other failures</th></tr>
{rows}
</table>"""


def _exercise_html(lesson: str, ex: ExerciseSummary) -> str:
    rate = "written: graded in formgrader" if ex.written else (
        "-" if ex.pass_rate is None else f"{ex.pass_rate:.0%} ({ex.statuses.get('passed', 0)}/{ex.submitted})")
    statuses = ", ".join(f"{_e(s)} {n}" for s, n in ex.statuses.items())
    items = [f"<li><b>{m.count}</b> <code>{_e(m.id)}</code>: {_e(m.hint)}<div class='who'>"
             + "".join(_link(s, lesson) for s in m.students) + "</div></li>" for m in ex.mistakes]
    if ex.unnamed_failures:
        items.append(f"<li><b>{ex.unnamed_failures}</b> failed with no catalogued mistake (see their feedback)</li>")
    if ex.stubs:
        items.append(f"<li><b>{ex.stubs}</b> still the released stub (not done yet)</li>")
    mistakes = f"<ul>{''.join(items)}</ul>" if items else ""
    return (f"<tr><td><code>{_e(ex.name)}</code></td><td>{rate}</td><td>{statuses}</td>"
            f"<td class='num'>{ex.hidden_failures}</td><td>{mistakes}</td></tr>")
