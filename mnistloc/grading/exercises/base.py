"""The machinery of the checks: ``Exercise``, ``Property`` and ``CheckFailure`` (reducing and comparing outputs
is ``mnistloc.grading.exercises.outputs``).

An exercise's check runs the student's function and the ``mnistloc``
reference on the same cases and compares them type -> shape/dtype -> values.
When they differ, it also runs known wrong implementations (``Exercise.mistakes``)
on the failing case; when the student's output equals one of them, the hint
names that mistake. Hints never show expected values of secret cases.

The work is split so that a grader can run untrusted code in a child process:
``Exercise.call(func, case)`` runs one function on one case and reduces the
output to plain picklable data (it runs in the child); ``Exercise.judge(got,
case, secret=...)`` compares in the trusted parent. The exercises themselves
are in the sibling topic modules of this package, one per group of exercises,
gathered by ``mnistloc.grading.registry`` (its ``_TOPICS`` lists them).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import importlib
import io
import os
import pickle
import re
import sys
import tempfile
import types
import warnings
from typing import Any, Callable

import numpy as np

from mnistloc.grading.exercises.outputs import _first_difference, compare, dtype_difference, error, reduce, same_output

PUBLIC_SEED = 20240611  # random public cases: the same for everyone, every time
RANDOM_CASES = 6  # random cases per seed
LESSONS = ("01-single-digit", "02-presence", "03-multi-class", "04-multiple-digits", "05-many-digits")


class _LazyModule(types.ModuleType):
    """A module imported on first attribute access (so numpy-only exercises never pay for TensorFlow)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_module"] = None

    def __getattr__(self, attr: str):
        if self.__dict__["_module"] is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            with quiet():
                self.__dict__["_module"] = importlib.import_module(self.__name__)
        return getattr(self.__dict__["_module"], attr)


keras = _LazyModule("keras")


def not_done(name: str) -> str:
    """The hint for a function still raising ``NotImplementedError`` (the released stub)."""
    return f"{name}: not done yet: replace `raise NotImplementedError()` with your code."


class CheckFailure(AssertionError):
    """An exercise failed its check; ``hint`` names the likely mistake, ``mistake`` is its id (``mistake_id``)
    when it is one of the exercise's catalogued mistakes, else ``""``."""

    def __init__(self, hint: str, mistake: str = ""):
        super().__init__(hint)
        self.hint = hint
        self.mistake = mistake


def mistake_id(exercise: str, hint: str) -> str:
    """The stable id of a catalogued mistake: ``exercise:slug-hash``, from the exercise and the mistake's hint.

    The same on every machine, run, shard and regrade (no position in a list, no memory address), so a
    class's rows can be counted by mistake; a reworded hint is a new mistake. E.g.
    ``iou:overlap-not-clamped-at-zero-1f0c2a``.
    """
    words = re.findall(r"[a-z0-9]+", hint.split(":")[0].lower())[:6]
    digest = hashlib.sha256(f"{exercise}\n{hint}".encode()).hexdigest()[:6]
    return f"{exercise}:{'-'.join(words + [digest])}"


class BrokenCheck(CheckFailure):
    """The reference itself failed on a case that documents no error: the check, not the student, is wrong
    (it fails every answer, saying so, rather than agreeing with one that fails the same way)."""


@contextlib.contextmanager
def quiet():
    """Silences stdout/stderr, Python warnings and C-level writes to fd 2 (TensorFlow's logs).

    nbgrader scores a test cell 0 when it writes anything to stderr, and Keras
    or TensorFlow may print there while building a model.
    """
    sys.stderr.flush()
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        fd = saved = None
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if saved is not None:
            os.dup2(sink.fileno(), fd)
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            if saved is not None:
                os.dup2(saved, fd)
                os.close(saved)


def float64_mistake(reference: Callable, what: str, contract: str) -> tuple[str, Callable]:
    """The catalogued mistake of an ``exact_dtype`` exercise that returns float64 where its docstring promises
    float32: ``(hint, wrong)``, where ``wrong`` is ``reference`` with its result widened; ``what`` names the
    result (``"the boxes"``), ``contract`` is the docstring's type (``"float32[N, 4]"``)."""
    def wrong(*args, **kwargs):
        return np.asarray(reference(*args, **kwargs)).astype(np.float64)
    wrong.__name__ = f"{getattr(reference, '__name__', 'answer')}_float64"
    return (f"{what} should be float32, as the docstring says ({contract}), not float64: convert the result "
            "before returning it.", wrong)


@dataclasses.dataclass(frozen=True)
class Property:
    """A property every right answer has, named in a hint when no catalogued mistake matches.

    Attributes:
        text: the property as a rule, e.g. ``"an IoU lies within [0, 1]"``.
        holds: ``holds(case, got) -> bool`` on a case and the student's reduced output (``reduce``); a
            property that cannot be judged on that output (it raises) is passed over.
    """

    text: str
    holds: Callable[[dict, dict], bool]


EXPECTED_MEMO = 4096  # reference outputs kept per process: every public case, and a class's worth of hidden ones
_EXPECTED: collections.OrderedDict = collections.OrderedDict()  # (name, reference, run, case digest) -> its output


def _digest(case: dict) -> bytes:
    """A digest of a case's content (its pickle: arrays by their bytes, dtypes and shapes)."""
    return hashlib.blake2b(pickle.dumps(case, protocol=5), digest_size=20).digest()


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One graded exercise.

    Attributes:
        name: the function the student defines, e.g. ``"iou"``.
        lesson: the lesson id, e.g. ``"01-single-digit"``.
        points: points for passing every case.
        reference: the ``mnistloc`` implementation.
        fixed: makes the fixed public cases (a list of case dicts). A case where the reference raises on
            purpose names the error in ``case["raises"]`` (e.g. ``"ValueError"``); anywhere else the
            reference raising is a broken check (``BrokenCheck``), never agreement with a student who raises.
        random: makes random cases from a ``numpy.random.Generator``.
        run: ``run(func, case)`` calls ``func`` on one case and returns its raw output.
        describe: a short description of a public case's input for hints.
        mistakes: ``(hint, wrong implementation)`` pairs: typical mistakes, named.
        properties: ``Property`` list: what every right answer has, named when no mistake matches.
        keras: whether calling needs Keras (TensorFlow is imported on the first call).
        exact_dtype: whether a float array must have the reference's own width (float32, as the stub's contract
            says), not only be a float: float64 where float32 is promised fails (``dtype_difference``).
    """

    name: str
    lesson: str
    points: int
    reference: Callable
    fixed: Callable[[], list]
    random: Callable[[np.random.Generator], list]
    run: Callable[[Callable, dict], Any]
    describe: Callable[[dict], str]
    mistakes: tuple = ()
    properties: tuple = ()
    keras: bool = False
    exact_dtype: bool = False

    def cases(self, seed: int | None) -> list:
        """Fixed public cases, random public cases, and random cases from ``seed`` (None: public only)."""
        out = self.fixed() + self.random(np.random.default_rng([PUBLIC_SEED, len(self.name)]))
        if seed is not None:
            out += self.random(np.random.default_rng(seed))
        return out

    def call(self, func, case) -> dict:
        """Runs ``func`` on one case; returns the reduced output or the exception. Runs untrusted code."""
        try:
            with quiet(), np.errstate(all="ignore"):  # a warning on stderr would zero an nbgrader test cell
                return reduce(self.run(func, case))
        except Exception as exc:  # the student's exception is data here
            return error(exc)

    def expected(self, case: dict) -> dict:
        """The reference's reduced output on ``case``; an error it raises on purpose is marked ``documented``.
        Remembered per process by the case's content (the reference is deterministic, and every student has
        the same public cases), so it is shared: read it, never change it.

        Raises:
            BrokenCheck: the reference raised where the case documents no error (or another one).
        """
        key = (self.name, self.reference, self.run, _digest(case))  # a model judged by properties has a run of its own
        if key in _EXPECTED:
            _EXPECTED.move_to_end(key)
            return _EXPECTED[key]
        out = self._expected(case)
        _EXPECTED[key] = out
        if len(_EXPECTED) > EXPECTED_MEMO:
            _EXPECTED.popitem(last=False)
        return out

    def _expected(self, case: dict) -> dict:
        out = self.call(self.reference, case)
        if out["type"] == "error":
            if case.get("raises") != out["error"]:
                raise BrokenCheck(f"the reference of {self.name} raised {out['error']} ({out['message']}) on "
                                  f"{self.describe(case)}, where the case documents "
                                  f"{case.get('raises') or 'no error'}: the check is broken")
            out = {**out, "documented": True}
        return out

    def difference(self, got: dict, expected: dict) -> tuple[str, str] | None:
        """``compare``'s first difference, and for an ``exact_dtype`` exercise a float of another width too."""
        problem = compare(got, expected)
        if problem is None and self.exact_dtype:
            problem = dtype_difference(got, expected)
        return problem

    def gives(self, got: dict, out: dict, expected: dict) -> bool:
        """Whether the student's ``got`` is a catalogued mistake's output ``out`` on a case whose reference
        output is ``expected``: the same output, and, where ``got`` differs from ``expected`` by its dtype
        alone, the same dtype (a mistake that agrees with the reference there is not the one made)."""
        if not same_output(got, out):
            return False
        return compare(got, expected) is not None or dtype_difference(got, out) is None

    def mistake_hint(self, got: dict, case: dict, expected: dict) -> str | None:
        """The hint of the catalogued mistake that gives ``got`` on ``case``, or None."""
        wrongs = [(hint, self.call(wrong, case)) for hint, wrong in self.mistakes]
        for hint, out in wrongs:
            if self.gives(got, out, expected):
                return hint
        key = _first_difference(got, expected)
        for hint, out in wrongs:  # properties (model heads): a mistake that explains the first difference
            if key is not None and key in out.get("items", {}) and \
                    compare(got["items"][key], out["items"][key]) is None:
                return hint
        return None

    def broken_property(self, got: dict, case: dict) -> str | None:
        """The text of the first ``Property`` that ``got`` violates on ``case``, or None."""
        for prop in self.properties:
            try:
                with np.errstate(all="ignore"):
                    ok = bool(prop.holds(case, got))
            except Exception:  # noqa: BLE001 - a property that does not apply to this output
                continue
            if not ok:
                return prop.text
        return None

    def judge(self, got: dict, case: dict, *, secret: bool) -> None:
        """Raises ``CheckFailure`` naming the mistake when ``got`` differs from the reference on ``case``.

        In order: the stub; a catalogued mistake that gives the same output; a violated ``Property``
        (named first, then the public case with what was expected and what came); the first difference.
        """
        expected = self.expected(case)
        problem = self.difference(got, expected)
        if problem is None:
            return
        if got.get("error") == "NotImplementedError":
            raise CheckFailure(not_done(self.name))
        hint = self.mistake_hint(got, case, expected)
        if hint is not None:
            raise CheckFailure(f"{self.name}: {hint}", mistake_id(self.name, hint))
        where = "on a hidden test case" if secret else f"for {self.describe(case)}"
        rule = self.broken_property(got, case) if got.get("type") != "error" else None
        if rule is not None:
            shown = "" if secret else f" There, {problem[0]}."
            raise CheckFailure(f"{self.name}: {rule}, but not in your answer {where}.{shown}")
        raise CheckFailure(f"{self.name}: {problem[1] if secret else problem[0]} {where}.")


def call_args(func, case: dict):
    """Calls ``func(*case["args"])``: the runner of most exercises."""
    return func(*case["args"])


def call_kwargs(func, case: dict):
    """Calls ``func(*case["args"], **case["kwargs"])``: the runner of exercises whose cases set keywords too."""
    return func(*case["args"], **case["kwargs"])


def numpy_exercise(name, lesson, points, reference, fixed, random, mistakes, run=call_args, properties=(),
                   exact_dtype=False) -> Exercise:
    """An ``Exercise`` whose cases carry ``args`` and a ``note`` that describes them."""
    return Exercise(name=name, lesson=lesson, points=points, reference=reference, fixed=fixed, random=random,
                    run=run, describe=lambda case: case["note"], mistakes=tuple(mistakes), properties=tuple(properties),
                    exact_dtype=exact_dtype)
