"""``mnistloc check NOTEBOOK --reveal NAME``: one exercise's answer for a self-learner, after an attempt.

A self-learner stuck on one exercise can see it solved without opening
``solutions/``, which spoils every exercise at once. The answer comes as a
ladder, each rung more than the one before, so that one can stop as soon as
it is enough:

1. the hint of the student's own attempt (what ``mnistloc check`` says);
2. a worked public case: its inputs with the arithmetic, what the reference
   returns, and what the student's function returned;
3. that one exercise's reference: the source of its ``mnistloc`` function
   (and of the private helpers it calls).

For a written question the ladder is its prompt, then its model answer
(``mnistloc.grading.questions``), once the student's answer cell holds an
answer of their own.

Never while grading: ``reveal`` refuses under nbgrader (``NBGRADER_EXECUTION``),
when a grader's secret seed is set, and inside the sandbox's child (where
submitted code runs), and nothing here is ever part of grade feedback.
Before the student has tried (the released stub, untouched) it refuses too.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
import textwrap

import numpy as np

from mnistloc.grading import judge, notebook, sandbox
from mnistloc.grading.exercises.outputs import compare
from mnistloc.grading.registry import EXERCISES, QUESTIONS, SECRET_SEED_ENV, exercises_of, questions_of

_UNANSWERED = "YOUR ANSWER HERE"  # what nbgrader's release puts in a written answer cell
_HOMES = ("mnistloc.losses", "mnistloc.models")  # where a Keras exercise's reference lives (checks wrap it)


class RevealRefused(ValueError):
    """``reveal`` will not show this answer now: grading is on, nothing was tried yet, or the name is unknown."""


@dataclasses.dataclass(frozen=True)
class Rung:
    """One step of the ladder: a ``title`` and its ``text``."""

    title: str
    text: str


def grading_now() -> str | None:
    """Why this process is grading (and must not reveal anything), or None."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return "nbgrader is grading (NBGRADER_EXECUTION is set)"
    if os.environ.get(SECRET_SEED_ENV, "").strip():
        return f"a grader's secret seed is set (${SECRET_SEED_ENV})"
    if "mnistloc.grading.child" in sys.modules:
        return "this is the grading sandbox, where submitted code runs"
    return None


def reveal(path, name: str, *, timeout: float = 60) -> list[Rung]:
    """The ladder of exercise or written question ``name`` of the lesson notebook at ``path``.

    Args:
        path: a lesson notebook (``.ipynb``): the student's attempt is checked first.
        name: an exercise (e.g. ``"iou"``) or a written question (e.g. ``"q_score_order"``) of its lesson.
        timeout: seconds the exercise may take.

    Returns:
        list[Rung]: hint, worked public case, reference (an exercise); prompt, model answer (a question).

    Raises:
        RevealRefused: grading is on (``grading_now``), ``name`` is not an exercise or question of the
            notebook's lesson, the answer is still the released stub, or its cell is missing or duplicated.
        mnistloc.grading.notebook.NotALessonError: the file is not a lesson notebook.
    """
    why = grading_now()
    if why is not None:
        raise RevealRefused(f"--reveal is for self-learners and is off while grading: {why}.")
    answers = judge.read_answers(path)
    own = exercises_of(answers.lesson) + questions_of(answers.lesson)
    if name not in own:
        raise RevealRefused(f"`--reveal` should name an exercise or written question of {answers.lesson}: "
                            f"{', '.join(own)}. Got {name!r}.")
    if name in QUESTIONS:
        return _question(path, name)
    if name in answers.blocked:
        status, reason = answers.blocked[name]
        if status == "failed":  # the stub, untouched
            raise RevealRefused(f"{name}: try it first: the answer cell is still the released stub. --reveal shows "
                                "the answer after an attempt of your own.")
        raise RevealRefused(f"{name}: {reason}")
    return _exercise(answers, name, timeout)


def _exercise(answers, name: str, timeout: float) -> list[Rung]:
    ex = EXERCISES[name]
    work = judge.plan(answers, None, only=[name])
    outcomes = sandbox.run_exercises(work.sources, work.calls, timeout=timeout, secret=work.secret)
    (result,) = work.finish(outcomes)
    hint = result.hint.removeprefix(f"{name}: ") if not result.passed else "it passes every public case."
    return [Rung("1. hint", hint),
            Rung("2. a worked public case", _worked_case(ex, [c for _, c in work.calls], outcomes)),
            Rung(f"3. the reference: {_reference_name(ex)}", reference_source(ex))]


def _worked_case(ex, cases: list, outcomes: list) -> str:
    """The first public case the attempt got wrong (else the first fixed case): inputs, expected, got."""
    fixed = len(ex.fixed())
    wrong = [i for i, (case, out) in enumerate(zip(cases, outcomes))
             if out.status != "ok" or compare(out.value, ex.expected(case)) is not None]
    i = wrong[0] if wrong and wrong[0] < fixed else 0
    case, out = cases[i], outcomes[i]
    got = format_output(out.value) if out.status == "ok" else f"{out.status}: {out.value}"
    return (f"for {ex.describe(case)}:\n  expected: {_indent(format_output(ex.expected(case)))}\n"
            f"  yours:    {_indent(got)}")


def _indent(text: str) -> str:
    return text.replace("\n", "\n            ")


def format_output(out: dict) -> str:
    """A reduced output (``Exercise.call``) as text: arrays in full when small, dicts one key a line."""
    kind = out.get("type")
    if kind == "error":
        return f"raises {out['error']}: {out['message']}"
    if kind == "dict":
        return "\n".join(f"{k}: {format_output(v)}" for k, v in out["items"].items())
    if kind in ("tuple", "list"):
        return "(" + ", ".join(format_output(v) for v in out["items"]) + ")"
    if kind == "str":
        return repr(out["text"])
    if "value" in out:
        a = np.asarray(out["value"])
        if a.size > 64:
            return f"an array of shape {a.shape}, dtype {a.dtype}"
        text = np.array2string(a, precision=4, separator=", ", suppress_small=True, max_line_width=100)
        return text + (f" ({a.dtype})" if a.ndim else "")
    return kind or "?"


def _reference_function(ex):
    """The ``mnistloc`` function behind ``ex.reference`` (a Keras exercise's check wraps it by name)."""
    func = ex.reference
    if not func.__module__.startswith("mnistloc.grading"):
        return func
    for home in _HOMES:
        found = getattr(importlib.import_module(home), ex.name, None)
        if callable(found):
            return found
    return func


def _reference_name(ex) -> str:
    func = _reference_function(ex)
    return f"{func.__module__}.{func.__name__}"


def reference_source(ex) -> str:
    """The source of exercise ``ex``'s reference, then of the private helpers of its module that it calls."""
    func = _reference_function(ex)
    module = sys.modules[func.__module__]
    parts, seen, queue = [], set(), [func]
    while queue:
        f = queue.pop(0)
        if f in seen:
            continue
        seen.add(f)
        parts.append(textwrap.dedent(inspect.getsource(f)).rstrip())
        code = getattr(f, "__code__", None)
        for called in (code.co_names if code else ()):
            helper = getattr(module, called, None)
            if called.startswith("_") and inspect.isfunction(helper) and helper.__module__ == module.__name__:
                queue.append(helper)
    return "\n\n".join(parts)


def _question(path, name: str) -> list[Rung]:
    nb, _ = notebook.load(path)
    cells = notebook.cells_by_id(nb or {"cells": []}).get(name, [])
    text = notebook.source(cells[0][1]).strip() if len(cells) == 1 else ""
    if not text or text == _UNANSWERED:
        raise RevealRefused(f"{name}: write your own answer in its cell first; --reveal then shows the model answer.")
    q = QUESTIONS[name]
    return [Rung("1. the question", q.prompt.strip()),
            Rung("2. the model answer (your instructor grades yours by hand)", q.model_answer.strip())]


def format_ladder(name: str, rungs: list[Rung]) -> list[str]:
    """The ladder as blocks of text, one per rung, for the terminal."""
    return [f"{name}, {rung.title}\n{textwrap.indent(rung.text, '  ')}" for rung in rungs]
