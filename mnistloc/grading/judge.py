"""The one judge: what a submission's functions did becomes points, a status and a hint.

Every way of grading goes through here, so they cannot disagree: ``check`` (in
this process), a notebook's test cell (``check_exercise``), ``mnistloc check``,
``mnistloc grade`` and the pytest front end.

- ``read_answers(path, lesson=None, data=None) -> Answers``: the code of each exercise's
  answer cell, or why it cannot be run (missing, duplicated, unreadable, the stub);
  one rule for every front end (a duplicated answer cell scores 0, as in nbgrader).
- ``grade_answers([(answers, seed), ...]) -> [[Result, ...], ...]``: the one plan every front end
  calls (``check``, the pytest plugin, ``grade``): public cases, then hidden cases from the seed,
  run in one sandbox run (one student) and judged as each reply comes, so no reply piles up.
- ``plan(answers, seed) -> Plan``: the ``(exercise, case)`` calls to run in a
  sandbox child, and ``Plan.finish(outcomes) -> list[Result]``.
- ``judge(exercise, trials) -> Result``: one exercise from its ``(case, secret,
  Outcome)`` trials: full points when every case matches the reference, else 0
  and the first failure's hint; ``blocked(exercise, status, reason)`` for one that never ran.
- ``Result``: the record every front end reports (``--json``, CSV rows, pytest items).
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Callable, Iterable

from mnistloc.grading import doctor, notebook, sandbox
from mnistloc.grading.exercises.base import CheckFailure, Exercise, not_done
from mnistloc.grading.registry import EXERCISES, exercises_of
from mnistloc.grading.sandbox import MAX_SOURCE, Outcome
from mnistloc.grading.wire import printable

STATUSES = ("passed", "failed", "error", "timeout", "crash", "missing", "forbidden", "duplicated", "unreadable",
            "not-submitted", "manual")
"""Every exercise ends in exactly one; only ``passed`` earns points. ``manual`` is a written question
(``mnistloc.grading.questions``): 0 automatic points, the instructor scores it in formgrader."""

# What a sandbox status means for the student; ``{}`` is the sandbox's message.
_STATUS_HINTS = {
    "missing": "no answer cell defines it: {}.",
    "error": "its cell does not run: {}",
    "timeout": "it took too long ({}); an endless loop?",
    "crash": "the Python process died while running it: {}",
    "forbidden": "it calls the mnistloc reference of this exercise; write your own code ({}).",
}


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of one exercise: ``status`` in ``STATUSES``; ``hint`` is what the student reads.

    ``mistake`` is the id of the catalogued mistake the hint names (``exercises.base.mistake_id``), else
    ``""``; ``hidden`` says the exercise failed on a hidden case (never which one, nor its values).
    """

    name: str
    points: int
    max_points: int
    status: str
    hint: str = ""
    mistake: str = ""
    hidden: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        """The ``mnistloc check --json`` entry: name, points, max_points, passed, status, hint."""
        return {"name": self.name, "points": self.points, "max_points": self.max_points, "passed": self.passed,
                "status": self.status, "hint": self.hint}


def blocked(ex: Exercise, status: str, reason: str, *, mistake: str = "", hidden: bool = False) -> Result:
    """0 points for an exercise that never ran or failed, with the reason (prefixed by the exercise's name),
    the catalogued mistake's id if any, and whether a hidden case failed."""
    if status not in STATUSES or status == "passed":
        raise ValueError(f"`status` should be one of {STATUSES[1:]}. Got status={status!r}.")
    hint = reason if reason.startswith(f"{ex.name}: ") else f"{ex.name}: {reason}"
    return Result(ex.name, 0, ex.points, status, printable(hint), mistake, hidden)  # no terminal escape in any output


def judge(ex: Exercise, trials: Iterable[tuple[dict, bool, Outcome]]) -> Result:
    """Judges one exercise from what its calls gave, in order; stops at the first failure.

    Args:
        ex: the exercise.
        trials: ``(case, secret, outcome)`` per call: the case, whether it is a hidden case (its
            hint then never shows expected values), and the sandbox's ``Outcome`` (or an
            ``Outcome(name, "ok", ex.call(func, case))`` made in this process).

    Returns:
        Result: full points when every outcome is ``"ok"`` and matches the reference; else 0 points,
        the sandbox status (``"timeout"``, ``"crash"``, ...) or ``"failed"``, and the first hint.
    """
    for case, secret, outcome in trials:
        failure = _trial(ex, case, secret, outcome)
        if failure is not None:
            return failure
    return Result(ex.name, ex.points, ex.points, "passed")


def _trial(ex: Exercise, case, secret: bool, outcome: Outcome) -> Result | None:
    """The failing Result of one call, or None when it matches the reference."""
    if outcome.status != "ok":
        why = _STATUS_HINTS.get(outcome.status, outcome.status + ": {}")  # hidden: the sandbox's own words
        where = " (on a hidden test case)" if secret else ""
        return blocked(ex, outcome.status, why.format(outcome.value) + where, hidden=secret)
    try:
        ex.judge(outcome.value, case, secret=secret)
    except CheckFailure as failure:
        return blocked(ex, "failed", failure.hint, mistake=failure.mistake, hidden=secret)
    except Exception as err:  # noqa: BLE001 - a malformed result from the child is the student's (MemoryError too)
        return blocked(ex, "failed", f"the result could not be checked ({type(err).__name__})", hidden=secret)
    return None


# ---- reading a notebook's answers -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Answers:
    """What a lesson notebook gives to grade.

    Attributes:
        path: the notebook.
        lesson: its lesson id.
        sources: exercise name -> the code of its one answer cell (a markdown answer cell counts, as in nbgrader).
        blocked: exercise name -> ``(status, reason)`` for exercises that are not run: ``"missing"``,
            ``"duplicated"``, ``"unreadable"`` or ``"failed"`` (the released stub, unchanged).
        findings: what ``doctor`` found wrong with the notebook.
        grade_ids: every nbgrader grade id the notebook's cells carry (written questions' too).
    """

    path: Path
    lesson: str
    sources: dict
    blocked: dict
    findings: tuple
    grade_ids: frozenset = frozenset()

    @property
    def exercises(self) -> list[str]:
        """The lesson's exercise names, in lesson order (a retired one where the notebook holds its cell)."""
        return exercises_of(self.lesson, held=self.grade_ids)


def read_answers(path, *, lesson: str | None = None, data: bytes | None = None) -> Answers:
    """Reads the answer cells of a lesson notebook (never runs or writes it).

    Args:
        path: a ``.ipynb`` file.
        lesson: the lesson it is (default: from its name, else from its graded cells).
        data: the file's bytes when already read (the grader's checked read); else ``path`` is read, once.

    Returns:
        Answers.

    Raises:
        mnistloc.grading.notebook.NotALessonError: ``lesson`` is None and the file says no lesson
            (missing, not JSON, not a notebook, or no graded cell of any lesson).
    """
    path = Path(path)
    diagnosis = doctor.diagnose(path, lesson=lesson, data=data)
    if diagnosis.lesson is None:
        problems = [f.problem for f in diagnosis.findings if f.kind != "unknown-lesson"]
        raise notebook.NotALessonError(f"{path}: {problems[0]}" if problems and not diagnosis.readable else (
            f"{path} is a notebook but not an mnistloc lesson: none of its cells is an exercise (nbgrader "
            f"grade_id such as 'iou'). The lessons are {', '.join(notebook.LESSONS)}."))
    held = frozenset(notebook.cells_by_id(diagnosis.notebook)) if diagnosis.readable else frozenset()
    names = exercises_of(diagnosis.lesson, held=held)
    if not diagnosis.readable:
        why = ("unreadable", diagnosis.findings[0].problem)
        return Answers(path, diagnosis.lesson, {}, {name: why for name in names}, diagnosis.findings)
    cells = notebook.cells_by_id(diagnosis.notebook)
    sources, stopped = {}, {}
    for name in names:
        found = cells.get(name, [])
        problem = next((f.problem for f in diagnosis.findings if f.where == name), None)
        if len(found) > 1:
            stopped[name] = ("duplicated", problem)
        elif not found:
            stopped[name] = ("missing", problem or f"no answer cell for `{name}`")
        elif len(notebook.source(found[0][1])) > MAX_SOURCE:  # never parsed here: its size is the limit
            stopped[name] = ("error", f"its cell does not run: it has {len(notebook.source(found[0][1]))} "
                                      f"characters; an answer cell may have at most {MAX_SOURCE}")
        elif _unfinished(notebook.source(found[0][1]), name):  # no child needed for the stub
            stopped[name] = ("failed", not_done(name))
        else:
            sources[name] = notebook.source(found[0][1])
    return Answers(path, diagnosis.lesson, sources, stopped, diagnosis.findings, frozenset(cells))


def _unfinished(source: str, name: str) -> bool:
    """Whether the cell is the released stub: ``def name(...)``, a docstring, ``raise NotImplementedError()``."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or body[0].name != name:
        return False
    stmts = [s for s in body[0].body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return (len(stmts) == 1 and isinstance(stmts[0], ast.Raise) and stmts[0].exc is not None
            and "NotImplementedError" in ast.unparse(stmts[0].exc))


# ---- from answers to results ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plan:
    """What to run for one notebook and how to judge it.

    Attributes:
        sources: exercise name -> code, for ``sandbox.run_exercises``.
        calls: ``(exercise name, case)`` pairs, for ``sandbox.run_exercises``.
        finish: ``finish(outcomes) -> list[Result]``, one per exercise in lesson order, from the
            sandbox's outcomes of ``calls``.
        secret: bool per call, which are hidden cases, for ``sandbox.run_exercises``.
    """

    sources: dict
    calls: list
    finish: Callable[[list], list]
    secret: list = dataclasses.field(default_factory=list)


def plan(answers: Answers, seed: int | None, *, only: Iterable[str] | None = None) -> Plan:
    """The calls that grade ``answers``: public cases, plus hidden cases from ``seed`` (None: public only).

    Args:
        answers: from ``read_answers``.
        seed: the secret seed, or None.
        only: judge only these exercises (default: every exercise of the lesson).
    """
    names = [n for n in answers.exercises if only is None or n in set(only)]
    sources = {n: s for n, s in answers.sources.items() if n in names}
    calls, secret = [], []
    for name in sources:
        public, every = EXERCISES[name].cases(None), EXERCISES[name].cases(seed)
        calls += [(name, case) for case in every]
        secret += [i >= len(public) for i in range(len(every))]

    def finish(outcomes: list) -> list[Result]:
        verdicts = _Verdicts(answers, names, calls, secret)
        for i, outcome in enumerate(outcomes):
            if outcome.status != "skipped":
                verdicts.settle(i, outcome)
        return verdicts.results()

    return Plan(sources, calls, finish, secret)


class _Verdicts:
    """One notebook's exercises judged call by call, as the sandbox's outcomes come (``sandbox.run_exercises``'s
    ``settle``): an exercise is decided at its first failing call, as ``judge`` decides it."""

    def __init__(self, answers: Answers, names: list[str], calls: list, secret: list):
        self.answers, self.names, self.calls, self.secret = answers, names, calls, secret
        self.failed: dict[str, tuple[int, Result]] = {}  # exercise -> its first failing call and the Result

    def settle(self, i: int, outcome: Outcome) -> bool:
        """Judges call ``i``; returns whether its exercise is decided. The first failing call in call order
        decides, also when the sandbox re-answers an earlier call (its replies were forged: ``"crash"``)."""
        name, case = self.calls[i]
        if name not in self.failed or i < self.failed[name][0]:
            failure = _trial(EXERCISES[name], case, self.secret[i], outcome)
            if failure is not None:
                self.failed[name] = (i, failure)
        return name in self.failed

    def results(self) -> list[Result]:
        out = []
        for name in self.names:
            ex = EXERCISES[name]
            if name in self.answers.blocked:
                out.append(blocked(ex, *self.answers.blocked[name]))
            else:
                out.append(self.failed[name][1] if name in self.failed else Result(name, ex.points, ex.points,
                                                                                      "passed"))
        return out


def grade_answers(batch: list[tuple[Answers, int | None]], *, only: Iterable[str] | None = None,
                  timeout: float = 60, memory_mb: int = 4096, hide=(), uid: int | None = None,
                  warm: bool = False) -> list[list[Result]]:
    """The one plan of every front end (``check``, the pytest plugin, ``grade``): one student's notebooks, each
    on its public cases then on hidden cases from its seed, run in one sandbox run and judged as they come.

    Args:
        batch: ``(answers, seed)`` per notebook; a seed of None runs the public cases only.
        only: judge only these exercises (default: every exercise of each lesson).
        timeout, memory_mb, hide, uid, warm: as ``sandbox.run_exercises``.

    Returns:
        list[list[Result]]: per notebook, one Result per exercise in lesson order.
    """
    plans = [plan(answers, seed, only=only) for answers, seed in batch]
    verdicts = [_Verdicts(answers, [n for n in answers.exercises if only is None or n in set(only)], p.calls,
                          p.secret) for (answers, _), p in zip(batch, plans)]
    owner = [(k, j) for k, p in enumerate(plans) for j in range(len(p.calls))]
    sources = {name: src for p in plans for name, src in p.sources.items()}
    sandbox.run_exercises(sources, [c for p in plans for c in p.calls], timeout=timeout, memory_mb=memory_mb,
                          hide=hide, secret=[s for p in plans for s in p.secret], uid=uid, warm=warm,
                          settle=lambda i, outcome: verdicts[owner[i][0]].settle(owner[i][1], outcome))
    return [v.results() for v in verdicts]
