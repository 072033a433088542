"""Checking one student's functions: in this process (``check``), in a notebook's test cell
(``check_exercise``) and for a whole lesson notebook in a sandbox child (``check_notebook``).

An exercise is a function the student writes (``iou``, ``tight_box``,
``build_box_head``, ...). Its check compares the student's function with the
``mnistloc`` reference on fixed public cases, on random cases from a fixed
public seed, and, when grading, on random cases from a secret seed
(``$MNISTLOC_SECRET_SEED``, set only by graders) so that a hard-coded answer
fails. A failure raises ``CheckFailure`` whose ``hint`` names the likely
mistake; hints never show expected values of secret cases.

- ``check(name, func, seed=None) -> Result``: in this process (pytest, tools).
- ``check_exercise(name, func)``: a notebook's test cell: prints the points or
  raises ``CheckFailure`` with the hint (so nbgrader scores the cell 0).
- ``check_notebook(path)``: ``mnistloc check``: every exercise of a lesson
  notebook, run in a sandbox child (``mnistloc.grading.sandbox``).
"""
from __future__ import annotations

import dataclasses

from mnistloc.grading import notebook, sandbox
from mnistloc.grading.exercises.base import CheckFailure, Exercise
from mnistloc.grading.registry import EXERCISES, exercise, secret_seed

@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of checking one exercise (the ``--json`` exercise entry)."""

    name: str
    points: int
    max_points: int
    passed: bool
    hint: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(name: str, func, *, seed: int | None = None) -> Result:
    """Checks ``func`` as exercise ``name`` in this process.

    Args:
        name: the exercise, a key of ``EXERCISES``.
        func: the student's function.
        seed: also run random cases from this seed, judged as secret (None: public cases only).

    Returns:
        Result: full points when every case passes, else 0 points and the first hint.
    """
    ex = exercise(name)
    if not callable(func):
        return Result(name, 0, ex.points, False, f"{name}: expected a function; got {type(func).__name__}.")
    public = ex.cases(None)
    cases = [(c, False) for c in public]
    if seed is not None:
        cases += [(c, True) for c in ex.cases(seed)[len(public):]]
    for case, secret in cases:
        try:
            ex.judge(ex.call(func, case), case, secret=secret)
        except CheckFailure as failure:
            return Result(name, 0, ex.points, False, failure.hint)
    return Result(name, ex.points, ex.points, True, "")


def check_exercise(name: str, func, *, secret: bool = False) -> None:
    """A notebook test cell: prints the points, or raises ``CheckFailure`` with the hint.

    Args:
        name: the exercise.
        func: the student's function.
        secret: run the hidden random cases (the grader's secret seed) instead of the public ones.
    """
    ex = exercise(name)
    if secret:
        ex_seed = secret_seed()
        public = len(ex.cases(None))
        for case in ex.cases(ex_seed)[public:]:
            try:
                ex.judge(ex.call(func, case), case, secret=True)
            except CheckFailure as failure:
                raise CheckFailure(failure.hint) from None
        print(f"{name}: hidden tests passed")
        return
    result = check(name, func)
    if not result.passed:
        raise CheckFailure(result.hint) from None
    print(f"{name}: {result.points}/{result.max_points} points")


def check_notebook(path, *, timeout: float = 60) -> dict:
    """Checks every exercise of a lesson notebook in a fresh child process, without running its other cells.

    Args:
        path: a lesson notebook (``.ipynb``).
        timeout: seconds each exercise may take.

    Returns:
        dict: ``lesson``, ``score``, ``max_score``, and ``exercises``: one
        ``Result.to_dict()`` per exercise of the lesson, in lesson order.

    Raises:
        mnistloc.grading.notebook.NotALessonError: the file is not a lesson notebook.
    """
    lesson = notebook.read_lesson(path)
    names = lesson.exercises
    cases = {name: EXERCISES[name].cases(None) for name in names}
    calls = [(name, case) for name in names for case in cases[name]]
    outcomes = sandbox.run_exercises(lesson.sources, calls, timeout=timeout)
    results = []
    for name in names:
        mine = [o for (n, _), o in zip(calls, outcomes) if n == name]
        results.append(_judge_outcomes(EXERCISES[name], cases[name], mine, lesson.problems))
    return {"lesson": lesson.lesson, "score": sum(r.points for r in results),
            "max_score": sum(r.max_points for r in results), "exercises": [r.to_dict() for r in results]}


_STATUS_HINTS = {
    "missing": "no answer cell defines it: {message}.",
    "error": "its cell does not run: {message}",
    "timeout": "it took too long ({message}); an endless loop?",
    "crash": "the Python process died while running it: {message}",
    "forbidden": "it calls the mnistloc reference of this exercise; write your own code ({message}).",
}


def _judge_outcomes(ex: Exercise, cases: list, outcomes: list, problems: list) -> Result:
    """The Result of one exercise from the sandbox's outcomes of its public cases."""
    for case, outcome in zip(cases, outcomes):
        if outcome.status != "ok":
            hint = _STATUS_HINTS.get(outcome.status, outcome.status + ": {message}").format(message=outcome.value)
            mine = [p for p in problems if p.startswith(f"{ex.name}:")]
            return Result(ex.name, 0, ex.points, False, f"{ex.name}: " + (" ".join(mine) if mine else hint))
        try:
            ex.judge(outcome.value, case, secret=False)
        except CheckFailure as failure:
            return Result(ex.name, 0, ex.points, False, failure.hint)
    return Result(ex.name, ex.points, ex.points, True, "")
