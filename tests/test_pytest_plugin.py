"""The pytest front end (``pytest LESSON.ipynb``), run as a student or an autograder runs it: pytest in a fresh
process, in a temporary folder, with the plugin loaded from the installed package's entry point."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import nbformat
import pytest
from course import REPO, grade_id, release, solution

from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import exercises_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pytest-plugin")]

LESSON = "01-single-digit"
NAMES = exercises_of(LESSON)  # place_digit, tight_box, iou, ...
FULL = sum(EXERCISES[name].points for name in NAMES)


def run_pytest(*args, cwd) -> tuple[subprocess.CompletedProcess, dict]:
    """pytest ARGS in ``cwd``; returns the run and, per test name, its JUnit outcome and properties."""
    env = {k: v for k, v in os.environ.items() if k != "MNISTLOC_SECRET_SEED"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml=report.xml",
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    cases = {}
    if (cwd / "report.xml").exists():
        for case in ET.parse(cwd / "report.xml").iter("testcase"):
            failure = case.find("failure")
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            cases[case.get("name")] = {"failed": failure is not None, "message": failure.get("message") if
                                       failure is not None else None, **props}
    return done, cases


def _typed_in(tmp_path, edit=None):
    """The release with the solutions typed into its answer cells (markers removed), optionally edited."""
    answers = {grade_id(c): c.source for c in nbformat.read(str(solution(LESSON)), as_version=4).cells}
    nb = nbformat.read(str(release(LESSON)), as_version=4)
    for c in nb.cells:
        if grade_id(c) in NAMES:
            c.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", answers[grade_id(c)])
            if edit:
                c.source = edit(grade_id(c), c.source)
    path = tmp_path / f"{LESSON}.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_a_solved_notebook_passes_every_exercise_with_its_points(tmp_path):
    done, cases = run_pytest(_typed_in(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert list(cases) == NAMES and not any(c["failed"] for c in cases.values())
    assert {n: (c["points"], c["max_points"], c["status"]) for n, c in cases.items()} == {
        n: (str(EXERCISES[n].points),) * 2 + ("passed",) for n in NAMES}
    assert f"{LESSON}.ipynb: {FULL}/{FULL} points" in done.stdout


def test_the_release_fails_every_exercise_with_the_not_done_hint(tmp_path):
    done, cases = run_pytest(release(LESSON), cwd=tmp_path)
    assert done.returncode == 1  # pytest's: tests failed
    assert list(cases) == NAMES
    for name, case in cases.items():
        assert case["failed"] and case["points"] == "0"
        assert case["message"].startswith(f"{name}: not done yet: replace `raise NotImplementedError()`")
    assert f"{LESSON}.ipynb: 0/{FULL} points" in done.stdout


def test_one_wrong_exercise_fails_alone_with_the_hint_naming_its_mistake(tmp_path):
    unclamped = lambda name, src: src.replace("np.clip(", "(").replace(", 0, None)", ")") if name == "iou" else src  # noqa: E731
    done, cases = run_pytest(_typed_in(tmp_path, unclamped), cwd=tmp_path)
    assert done.returncode == 1
    assert [n for n, c in cases.items() if c["failed"]] == ["iou"]
    assert cases["iou"]["message"].startswith("iou: overlap not clamped at zero")
    assert f"{LESSON}.ipynb: {FULL - 3}/{FULL} points" in done.stdout  # iou's 3 points lost


def test_k_selects_one_exercise_and_runs_only_it(tmp_path):
    done, cases = run_pytest(release(LESSON), "-k", "iou", cwd=tmp_path)
    assert done.returncode == 1 and list(cases) == ["iou"]
    assert f"{len(NAMES) - 1} deselected" in done.stdout


def test_notebooks_not_named_on_the_command_line_are_never_collected():
    """The project's own tests: nothing from tests/corpus/ (24 lesson notebooks) is collected by accident."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                           "tests/corpus", "tests/test_boxes.py"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert ".ipynb" not in done.stdout and "test_boxes.py::" in done.stdout


def test_a_notebook_that_is_not_a_lesson_is_left_alone(tmp_path):
    other = tmp_path / "scratch.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), str(other))
    done, cases = run_pytest(other, cwd=tmp_path)
    assert done.returncode == 4 and cases == {}  # pytest: "not found" (a named file that collects nothing)
    assert "no match" in done.stdout + done.stderr


def test_with_a_secret_seed_hidden_inputs_never_reach_the_report(tmp_path):
    # The plugin ran the hidden cases unmasked: with $MNISTLOC_SECRET_SEED set (a GitHub Classroom run),
    # `pytest LESSON.ipynb -k iou` printed a hidden input (finding 10). It now runs the one plan
    # (judge.grade_answers) that check and grade run. This iou is right on the public cases and, on a hidden
    # one, ends the call with the input in its words (SystemExit is no exception the check can catch).
    sys.path.insert(0, str(REPO / "tests" / "corpus"))
    import build

    def exfiltrate(name, source):
        if name != "iou":
            return source
        return build.LEAK + build._first(source, "if _hidden('iou', (a, b)):\n"
                                                 "        raise SystemExit('EXFIL ' + _digest((a, b)))")
    path = _typed_in(tmp_path, exfiltrate)
    env = {**os.environ, "MNISTLOC_SECRET_SEED": "918273645"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path), "-k", "iou"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "iou: 0/3 (error)" in done.stdout, done.stdout[-3000:]  # the hidden cases ran
    assert "EXFIL" not in done.stdout and "raised SystemExit (on a hidden test case)" in done.stdout, \
        done.stdout[-3000:]


def test_a_failure_says_how_to_reveal_and_the_option_prints_the_ladder(tmp_path):
    unclamped = lambda name, src: src.replace("np.clip(", "(").replace(", 0, None)", ")") if name == "iou" else src  # noqa: E731
    path = _typed_in(tmp_path, unclamped)
    done, cases = run_pytest(path, "-k", "iou", "--mnistloc-reveal", "iou", cwd=tmp_path)
    assert cases["iou"]["failed"] and cases["iou"]["message"].startswith("iou: overlap not clamped at zero")
    assert "Stuck? `pytest 01-single-digit.ipynb --mnistloc-reveal iou`" in done.stdout
    section = done.stdout.split("mnistloc reveal iou", 1)[1]
    # the ladder of `mnistloc check --reveal`: the hint, a worked public case, the reference's source
    assert "iou: overlap not clamped at zero" in section
    assert "def iou(" in section and "worked" in section.lower(), section[:3000]


def test_no_reveal_pointer_for_a_stub_and_no_ladder_under_a_secret_seed(tmp_path):
    done, cases = run_pytest(release(LESSON), "-k", "iou", cwd=tmp_path)
    assert "Stuck?" not in done.stdout  # nothing tried yet
    path = _typed_in(tmp_path, lambda name, src: src.replace("np.clip(", "(").replace(", 0, None)", ")"))
    env = {**os.environ, "MNISTLOC_SECRET_SEED": "918273645"}
    graded = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path), "-k", "iou",
                             "--mnistloc-reveal", "iou"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert "Stuck?" not in graded.stdout and "def iou(" not in graded.stdout
    assert "secret seed" in graded.stdout.split("mnistloc reveal iou", 1)[1], graded.stdout[-2000:]
