"""The pytest front end: ``pytest 01-single-digit.ipynb`` grades a lesson notebook, one test per exercise.

Registered through the package's ``pytest11`` entry point, so it is active
wherever ``mnistloc`` is installed. It collects a ``.ipynb`` file only when
the file is named on the command line (``pytest path/to/lesson.ipynb``), or
when the ini option ``mnistloc_notebooks = true`` asks for every lesson
notebook under the collected folders; any other notebook, and any notebook
that is not an mnistloc lesson, is left alone. So a project's own ``tests/``
are collected exactly as without the plugin.

Each exercise is one item, named after it (``-k iou`` selects one). The
file's selected exercises run together in one sandbox child
(``mnistloc.grading.sandbox``) and are judged by ``mnistloc.grading.judge``,
exactly as ``mnistloc check`` and ``mnistloc grade`` do. A failure's message
is the hint (hidden cases masked, as in ``mnistloc grade``); every item records ``points``, ``max_points`` and ``status`` in
its ``user_properties`` (JUnit XML ``<property>``), and the terminal summary
gives the points per notebook. Hidden cases run only when
``$MNISTLOC_SECRET_SEED`` is set (an autograder's secret).

For a self-learner, a failure's message ends with how to see that exercise's
answer step by step, and ``--mnistloc-reveal NAME`` prints the ladder of
``mnistloc check --reveal`` (``mnistloc.grading.reveal``: the hint, a worked
public case, the reference) at the end of the run. Neither happens while
grading (``reveal.grading_now``: nbgrader, a secret seed, the sandbox).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnistloc.grading import judge, reveal
from mnistloc.grading.exercises.base import not_done
from mnistloc.grading.notebook import NotALessonError
from mnistloc.grading.registry import SECRET_SEED_ENV, secret_seed

_RESULTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("mnistloc_notebooks", type="bool", default=False,
                  help="mnistloc: collect every lesson notebook (*.ipynb), not only those named on the command line")
    parser.getgroup("mnistloc").addoption("--mnistloc-timeout", type=float, default=60.0, metavar="SECONDS",
                                          help="mnistloc: seconds each exercise of a notebook may take (default 60)")
    parser.getgroup("mnistloc").addoption(
        "--mnistloc-reveal", action="append", default=[], metavar="NAME",
        help="mnistloc: after trying exercise NAME (or written question NAME), show its answer step by step at the "
             "end: your hint, a worked case, the reference (never while grading; repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix != ".ipynb" or not (_named(file_path, parent.config)
                                            or parent.config.getini("mnistloc_notebooks")):
        return None
    try:
        answers = judge.read_answers(file_path)
    except NotALessonError:
        return None
    return LessonFile.from_parent(parent, path=file_path, answers=answers)


def _named(path: Path, config: pytest.Config) -> bool:
    """Whether ``path`` itself was given on the command line."""
    here = config.invocation_params.dir
    return any((here / arg.split("::")[0]).resolve() == path.resolve() for arg in config.invocation_params.args
               if not arg.startswith("-"))


class LessonFile(pytest.File):
    """A lesson notebook: one ``ExerciseItem`` per exercise of its lesson, graded together on first use."""

    def __init__(self, *, answers: judge.Answers, **kwargs):
        super().__init__(**kwargs)
        self.answers = answers
        self._results: dict | None = None

    def collect(self):
        for name in self.answers.exercises:
            yield ExerciseItem.from_parent(self, name=name)

    def results(self) -> dict[str, judge.Result]:
        """Exercise name -> Result for the selected items of this file, run in one sandbox child."""
        if self._results is None:
            selected = [item.name for item in self.session.items if item.parent is self]
            seed = secret_seed() if os.environ.get(SECRET_SEED_ENV, "").strip() else None
            (results,) = judge.grade_answers([(self.answers, seed)], only=selected,
                                             timeout=self.config.getoption("mnistloc_timeout"))
            self._results = {r.name: r for r in results}
        return self._results


class ExerciseFailed(Exception):
    """An exercise did not pass; its ``result`` carries the hint."""

    def __init__(self, result: judge.Result):
        super().__init__(result.hint)
        self.result = result


class ExerciseItem(pytest.Item):
    """One exercise of a lesson notebook."""

    def runtest(self) -> None:
        result = self.parent.results()[self.name]
        self.user_properties += [("points", result.points), ("max_points", result.max_points),
                                 ("status", result.status)]
        self.config.stash[_RESULTS].append((self.parent.path, result))
        if not result.passed:
            raise ExerciseFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ExerciseFailed):
            r = excinfo.value.result
            text = f"{r.hint} ({r.status}: {r.points}/{r.max_points} points)"
            if r.hint != not_done(r.name) and reveal.grading_now() is None:  # a stub: nothing tried yet
                text += (f"\nStuck? `pytest {self.path.name} --mnistloc-reveal {r.name}` shows a worked case, then "
                         f"the answer (or `mnistloc check {self.path.name} --reveal {r.name}`, one step at a time).")
            return text
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    for name in config.getoption("mnistloc_reveal"):
        _reveal_section(terminalreporter, config, name, results)
    if not results:
        return
    terminalreporter.section("mnistloc points")
    for path in dict.fromkeys(p for p, _ in results):
        mine = [r for p, r in results if p == path]
        for r in mine:
            terminalreporter.write_line(f"{r.name}: {r.points}/{r.max_points} ({r.status})")
        terminalreporter.write_line(f"{path.name}: {sum(r.points for r in mine)}/"
                                    f"{sum(r.max_points for r in mine)} points")


def _reveal_section(terminalreporter, config: pytest.Config, name: str, results: list) -> None:
    """The ladder of exercise or question ``name`` for each collected notebook of its lesson, or why not."""
    terminalreporter.section(f"mnistloc reveal {name}")
    paths = list(dict.fromkeys(p for p, _ in results))
    if not paths:
        terminalreporter.write_line(f"no lesson notebook was graded: name it, e.g. `pytest LESSON.ipynb "
                                    f"--mnistloc-reveal {name}`")
        return
    for path in paths:
        try:
            blocks = reveal.format_ladder(name, reveal.reveal(path, name, timeout=config.getoption(
                "mnistloc_timeout")))
        except (reveal.RevealRefused, NotALessonError) as refused:
            terminalreporter.write_line(f"{path.name}: {refused}")
            continue
        for block in blocks:
            terminalreporter.write_line(block + "\n")
