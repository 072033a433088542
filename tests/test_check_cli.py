"""`mnistloc check NOTEBOOK [--json]`: a fresh process per run, in a temporary folder, as a self-learner uses it."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from course import LESSON_IDS, grade_id, release, solution

from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import exercises_of, questions_of

pytestmark = pytest.mark.slow


def mnistloc_check(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnistloc", "check", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _points(lesson: str) -> int:
    return sum(EXERCISES[name].points for name in exercises_of(lesson))


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_solutions_get_full_marks_and_exit_0(lesson, tmp_path):
    done = mnistloc_check(solution(lesson), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"score", "max_score", "exercises"}
    assert report["score"] == report["max_score"] == _points(lesson)
    names = exercises_of(lesson)
    assert [e["name"] for e in report["exercises"]] == names
    for entry in report["exercises"]:
        assert entry == {"name": entry["name"], "points": EXERCISES[entry["name"]].points,
                         "max_points": EXERCISES[entry["name"]].points, "passed": True, "status": "passed",
                         "hint": ""}


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_unmodified_lessons_get_zero_with_a_hint_each(lesson, tmp_path):
    done = mnistloc_check(release(lesson), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == f"score 0/{_points(lesson)}"
    written = [line for line in lines if "a written question: graded by your instructor" in line]
    assert len(written) == len(questions_of(lesson))
    assert sum("not done yet" in line for line in lines) == len(lines) - 2 - len(written)


def test_a_wrong_answer_gets_a_hint_naming_its_mistake_and_the_others_their_points(tmp_path):
    nb = nbformat.read(str(solution("01-single-digit")), as_version=4)
    for c in nb.cells:
        if grade_id(c) == "iou":  # the overlap is no longer clamped at zero
            c.source = c.source.replace("np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)",
                                        "np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])")
            c.source = c.source.replace("np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)",
                                        "np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])")
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, str(path))
    done = mnistloc_check(path, "--json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    by_name = {e["name"]: e for e in report["exercises"]}
    assert by_name["iou"]["points"] == 0 and "not clamped at zero" in by_name["iou"]["hint"]
    assert report["score"] == _points("01-single-digit") - EXERCISES["iou"].points


def test_a_deleted_answer_cell_and_a_broken_cell_are_explained(tmp_path):
    nb = nbformat.read(str(release("03-multi-class")), as_version=4)
    nb.cells = [c for c in nb.cells if grade_id(c) != "one_hot"]
    for c in nb.cells:
        if grade_id(c) == "nms":
            c.source = "def nms(boxes, scores, iou_threshold=0.5):\n    return (\n"
    path = tmp_path / "03-multi-class.ipynb"
    nbformat.write(nb, str(path))
    report = json.loads(mnistloc_check(path, "--json", cwd=tmp_path).stdout)
    by_name = {e["name"]: e for e in report["exercises"]}
    assert by_name["one_hot"]["status"] == "missing" and "answer cell of `one_hot`" in by_name["one_hot"]["hint"]
    assert by_name["nms"]["status"] == "error"
    assert "does not run" in by_name["nms"]["hint"] and "SyntaxError" in by_name["nms"]["hint"]


@pytest.mark.parametrize("content,message", [("not a notebook", "not valid JSON"),
                                             ('{"nbformat": 4, "cells": []}', "not an mnistloc lesson")])
def test_a_file_that_is_not_a_lesson_gets_a_clear_message_and_exit_2(tmp_path, content, message):
    path = tmp_path / "homework.ipynb"
    path.write_text(content)
    done = mnistloc_check(path, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("mnistloc check: error:") and message in done.stderr
    assert "Traceback" not in done.stderr
