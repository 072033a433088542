"""Checking one student's functions: in this process (``check``), in a notebook's test cell
(``check_exercise``) and for a whole lesson notebook in a sandbox child (``check_notebook``).

An exercise is a function the student writes (``iou``, ``tight_box``,
``build_box_head``, ...). Its check compares the student's function with the
``mnistloc`` reference on fixed public cases, on random cases from a fixed
public seed, and, when grading, on random cases from a secret seed
(``$MNISTLOC_SECRET_SEED``, set only by graders) so that a hard-coded answer
fails. A failure raises ``CheckFailure`` whose ``hint`` names the likely
mistake; hints never show expected values of secret cases.

All three turn outcomes into points and hints through ``mnistloc.grading.judge``,
as ``mnistloc grade`` and the pytest front end do, so they never disagree.

- ``check(name, func, seed=None) -> Result``: in this process (pytest, tools).
- ``check_exercise(name, func)``: a notebook's test cell: prints the points or
  raises ``CheckFailure`` with the hint (so nbgrader scores the cell 0); for a box
  exercise in a notebook, first a picture of expected and got boxes on a public case.
- ``check_notebook(path)``: ``mnistloc check``: every exercise of a lesson
  notebook, run in a sandbox child (``mnistloc.grading.sandbox``).
"""
from __future__ import annotations

from mnistloc.grading import judge
from mnistloc.grading.exercises.base import CheckFailure
from mnistloc.grading.judge import Result
from mnistloc.grading.registry import exercise, secret_seed
from mnistloc.grading.sandbox import Outcome

__all__ = ["Result", "check", "check_exercise", "check_notebook"]


def check(name: str, func, *, seed: int | None = None) -> Result:
    """Checks ``func`` as exercise ``name`` in this process.

    Args:
        name: the exercise, a key of ``EXERCISES``.
        func: the student's function.
        seed: also run random cases from this seed, judged as secret (None: public cases only).

    Returns:
        Result: full points when every case passes, else 0 points and the first hint (``judge.judge``).
    """
    ex = exercise(name)
    if not callable(func):
        return judge.blocked(ex, "failed", f"expected a function; got {type(func).__name__}.")
    public = ex.cases(None)
    cases = [(c, False) for c in public] + [(c, True) for c in (ex.cases(seed)[len(public):] if seed is not None
                                                                 else [])]
    return judge.judge(ex, ((c, secret, Outcome(name, "ok", ex.call(func, c))) for c, secret in cases))


def check_exercise(name: str, func, *, secret: bool = False) -> None:
    """A notebook test cell: prints the points, or raises ``CheckFailure`` with the hint.

    Args:
        name: the exercise.
        func: the student's function.
        secret: run the hidden random cases (the grader's secret seed) instead of the public ones.

    Raises:
        CheckFailure: the hint of ``judge.judge``, the same as ``mnistloc check`` and ``mnistloc grade`` give.
    """
    ex = exercise(name)
    if not secret or not callable(func):
        result = check(name, func)
    else:
        hidden = ex.cases(secret_seed())[len(ex.cases(None)):]
        result = judge.judge(ex, ((c, True, Outcome(name, "ok", ex.call(func, c))) for c in hidden))
    if not result.passed:
        if not secret and callable(func):
            _picture(ex, func)
        raise CheckFailure(result.hint) from None
    print(f"{name}: hidden tests passed" if secret else f"{name}: {result.points}/{result.max_points} points")


def _picture(ex, func) -> None:
    """In a notebook, a failing box exercise's first differing public case, drawn (``mnistloc.grading.pictures``)."""
    try:
        from mnistloc.grading import pictures

        pictures.show_mismatch(ex, func)
    except Exception:  # noqa: BLE001 - a picture that cannot be made must never hide the hint
        pass


def check_notebook(path, *, timeout: float = 60, seed: int | None = None) -> dict:
    """Checks every exercise of a lesson notebook in a fresh child process, without running its other cells.

    Args:
        path: a lesson notebook (``.ipynb``).
        timeout: seconds each exercise may take.
        seed: also run hidden cases from this seed (None: the public cases only, as a self-learner runs it).

    Returns:
        dict: ``lesson``, ``score``, ``max_score``, and ``exercises``: one
        ``Result.to_dict()`` per exercise of the lesson, in lesson order.

    Raises:
        mnistloc.grading.notebook.NotALessonError: the file is not a lesson notebook.
    """
    answers = judge.read_answers(path)
    (results,) = judge.grade_answers([(answers, seed)], timeout=timeout)
    return {"lesson": answers.lesson, "score": sum(r.points for r in results),
            "max_score": sum(r.max_points for r in results), "exercises": [r.to_dict() for r in results]}
