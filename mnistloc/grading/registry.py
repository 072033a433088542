"""Every graded exercise by name, and what all graders share: lessons, prelude, secret seed.

Everything that judges student code imports this module directly (it imports
no other grading module but the exercises), so nothing needs a lazy import to
find an exercise. An exercise is registered by listing it in the ``EXERCISES``
tuple of its topic module in ``mnistloc.grading.exercises`` (``canvas``,
``labels``, ``metrics``, ``heads``, ``classic``, ``target_parts``, ``decoder_parts``, ``losses``, ``crowds``, ``assembly``) and naming that module
in ``_TOPICS`` below. An exercise that a lesson no longer asks for stays registered, listed in ``RETIRED``, so that
notebooks released before keep their points for it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Callable

from mnistloc.grading.exercises import (assembly, canvas, classic, crowds, decoder_parts, heads, labels, losses,
                                        metrics, target_parts)
from mnistloc.grading.exercises.base import LESSONS, Exercise
from mnistloc.grading.questions import QUESTIONS as _QUESTIONS
from mnistloc.grading.questions import Question

__all__ = ["ALL_EXERCISES", "EXERCISES", "LESSONS", "PENDING", "PRELUDE", "QUESTIONS", "REFERENCES", "RETIRED",
           "SECRET_SEED_ENV",
           "SEED_FILE", "Question", "exercise", "exercises_of", "hidden_seed", "questions_of", "secret_seed"]

SECRET_SEED_ENV = "MNISTLOC_SECRET_SEED"
SEED_FILE = "secret_seed"  # in a course folder: one integer, chmod 600

# What every exercise cell may rely on; ``mnistloc check`` and the grader run it before each exercise's cell.
PRELUDE = "import numpy as np\nfrom mnistloc.checks import keras  # the real keras, imported on first use\n"

_TOPICS = (canvas, labels, metrics, heads, classic, target_parts, decoder_parts, losses, crowds, assembly)

ALL_EXERCISES: dict[str, Exercise] = dict(sorted(((ex.name, ex) for topic in _TOPICS for ex in topic.EXERCISES),
                                                 key=lambda kv: LESSONS.index(kv[1].lesson)))
"""Every exercise, released in a lesson or pending, by name, in lesson order."""

PENDING: frozenset = frozenset()  # every exercise's cells are in its lesson now
"""Exercises whose checks are written and tested but whose cells are not yet in a released lesson.
``check`` and ``check_exercise`` take them; lessons, ``mnistloc check NOTEBOOK`` and the graders
count only ``EXERCISES``. Whoever adds an exercise's cells to its lesson removes its name here."""

EXERCISES: dict[str, Exercise] = {name: ex for name, ex in ALL_EXERCISES.items() if name not in PENDING}
"""Every exercise of every released lesson, by name, in lesson order."""

RETIRED: dict[str, str] = {
    "build_box_head": "build_head", "build_presence_head": "build_head", "build_class_head": "build_head",
    "build_count_head": "build_head", "scale_sigmas": "bump_sigmas",
}
"""Exercises of notebooks released before, no longer in their lesson, and the exercise that replaced each. A
retired exercise is graded in a notebook that holds its answer cell (``exercises_of(lesson, held=...)``), with
its old check; the current lessons never list it."""

REFERENCES: dict[str, Callable] = {name: ex.reference for name, ex in EXERCISES.items()}
"""The ``mnistloc`` reference implementation of each exercise."""


QUESTIONS: dict[str, Question] = {q.name: q for q in sorted(_QUESTIONS, key=lambda q: LESSONS.index(q.lesson))}
"""Every written question (graded by hand in formgrader), by name, in lesson order."""


def questions_of(lesson: str | None) -> list[str]:
    """The names of ``lesson``'s written questions, in lesson order (empty for an unknown lesson or None)."""
    return [name for name, q in QUESTIONS.items() if q.lesson == lesson]


def exercises_of(lesson: str | None, held=None) -> list[str]:
    """The names of ``lesson``'s exercises, in lesson order (empty for an unknown lesson or None).

    Args:
        lesson: a lesson id.
        held: the grade ids a notebook's cells carry, or None (the lesson as released now). A notebook released
            before that holds the cell of a retired exercise is graded on it instead of what replaced it.
    """
    mine = [name for name, ex in EXERCISES.items() if ex.lesson == lesson]
    old = {name for name in mine if name in RETIRED and held is not None and name in held}
    replaced = {RETIRED[name] for name in old}
    return [name for name in mine if name in old or (name not in RETIRED and name not in replaced)]


def exercise(name: str) -> Exercise:
    """The exercise called ``name``, released or pending.

    Raises:
        ValueError: no exercise has that name.
    """
    if name not in ALL_EXERCISES:
        raise ValueError(f"`name` should be one of {sorted(ALL_EXERCISES)}. Got name={name!r}.")
    return ALL_EXERCISES[name]


def secret_seed(course_dir=None) -> int:
    """The grader's secret seed: ``$MNISTLOC_SECRET_SEED``, else ``COURSE_DIR/secret_seed``.

    Args:
        course_dir: a course folder (the hardened grader), or None (a notebook's hidden-tests cell).

    Returns:
        int: the seed. With ``course_dir=None`` and no ``$MNISTLOC_SECRET_SEED``, a fresh random one.

    Raises:
        ValueError: the value is not an integer, or ``course_dir`` is given and neither is set.
    """
    text, where = os.environ.get(SECRET_SEED_ENV, "").strip(), f"${SECRET_SEED_ENV}"
    if not text and course_dir is None:
        return secrets.randbits(63)
    if not text and (Path(course_dir) / SEED_FILE).exists():
        text, where = (Path(course_dir) / SEED_FILE).read_text().strip(), str(Path(course_dir) / SEED_FILE)
    if not text:
        raise ValueError(f"no secret seed: set ${SECRET_SEED_ENV} or write one integer to "
                         f"{Path(course_dir) / SEED_FILE} (e.g. `python -c 'import secrets; "
                         f"print(secrets.randbits(63))' > {SEED_FILE} && chmod 600 {SEED_FILE}`)")
    try:
        return int(text)
    except ValueError:
        if course_dir is None:
            raise ValueError(f"${SECRET_SEED_ENV} should be an integer. Got {text!r}.") from None
        raise ValueError(f"the secret seed in {where} should be an integer. Got {text[:20]!r}.") from None


def hidden_seed(seed: int, student: str) -> int:
    """The seed of one student's hidden cases in ``mnistloc grade``: a keyed hash (HMAC-SHA256) of the student
    id under the secret seed, so that one student's hidden cases say nothing about another's.

    nbgrader's hidden tests do not know the student, and use ``seed`` itself: a right answer passes
    any cases and a wrong one fails them, so both graders agree on which answers are right.

    Returns:
        int: in ``[0, 2**63)``.
    """
    digest = hmac.new(str(int(seed)).encode(), str(student).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1
