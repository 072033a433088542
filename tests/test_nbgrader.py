"""A real nbgrader round trip in a temporary course folder, with grader/nbgrader_config.py:
generate_assignment -> two submissions per lesson (alice: the release untouched; bob: the solutions typed in)
-> autograde (grading mode, secret seed) -> generate_feedback -> export CSV."""
from __future__ import annotations

import csv
import re
import shutil
import time

import nbformat
import pytest
from course import LESSON_IDS, cells, grade_id, nbgrader, solution

from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import QUESTIONS, exercises_of, questions_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("nbgrader")]


def _typed_in(release_nb: nbformat.NotebookNode, lesson: str) -> nbformat.NotebookNode:
    """The release with each answer cell holding the solution, markers removed: what a good student submits."""
    answers = {grade_id(c): c.source for c in cells(solution(lesson)) if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(release_nb)
    for c in nb.cells:
        if grade_id(c) in answers:
            c.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", answers[grade_id(c)])
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    env = {"MNISTLOC_SECRET_SEED": "4242"}
    seconds = {}
    for lesson in LESSON_IDS:
        nbgrader("generate_assignment", lesson, course=root, **env)
        released = root / "release" / lesson / f"{lesson}.ipynb"
        for student in ("alice", "bob"):
            folder = root / "submitted" / student / lesson
            folder.mkdir(parents=True)
            (folder / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")
            if student == "alice":
                shutil.copy(released, folder / released.name)
            else:
                nbformat.write(_typed_in(nbformat.read(str(released), as_version=4), lesson), str(folder / released.name))
        start = time.perf_counter()
        nbgrader("autograde", lesson, course=root, **env)
        seconds[lesson] = time.perf_counter() - start
        nbgrader("generate_feedback", lesson, course=root, **env)
    nbgrader("export", "--to", str(root / "grades.csv"), course=root, **env)
    print("autograde seconds (2 students):", {k: round(v, 1) for k, v in seconds.items()})
    return root


def _grades(root) -> dict:
    with open(root / "grades.csv", newline="") as f:
        return {(row["student_id"], row["assignment"]): row for row in csv.DictReader(f)}


def test_export_writes_every_submission_unmodified_lessons_score_zero_solutions_full_marks(course):
    grades = _grades(course)
    assert len(grades) == 2 * len(LESSON_IDS)
    for lesson in LESSON_IDS:
        full = sum(EXERCISES[name].points for name in exercises_of(lesson))  # retired exercises are not in it
        by_hand = sum(QUESTIONS[name].points for name in questions_of(lesson))
        assert by_hand > 0
        assert float(grades["alice", lesson]["max_score"]) == full + by_hand  # the written answers count too
        assert float(grades["alice", lesson]["score"]) == 0
        assert float(grades["bob", lesson]["score"]) == full  # until the instructor scores the written answers


def test_written_answers_wait_for_the_instructor_in_the_gradebook(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for lesson in LESSON_IDS:
            for name in questions_of(lesson):
                grade = gb.find_grade(name, lesson, lesson, "bob")
                assert grade.needs_manual_grade and grade.auto_score is None
                assert grade.max_score == QUESTIONS[name].points


def _autograded(course, student, lesson):
    return cells(course / "autograded" / student / lesson / f"{lesson}.ipynb")


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_solution_notebooks_execute_without_any_error_in_grading_mode(course, lesson):
    for c in _autograded(course, "bob", lesson):
        errors = [o for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{lesson} cell {c.id}: {errors[0].ename}: {errors[0].evalue}"
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"):
            assert not [o for o in c.outputs if o.get("name") == "stderr"]
            assert "hidden tests passed" in "".join(o.get("text", "") for o in c.outputs)


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_unmodified_lessons_fail_each_test_cell_with_a_hint_and_nothing_else_crashes(course, lesson):
    for c in _autograded(course, "alice", lesson):
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"):
            (error,) = [o for o in c.outputs if o.output_type == "error"]
            assert error.ename == "CheckFailure" and "not done yet" in error.evalue
    feedback = course / "feedback" / "alice" / lesson / f"{lesson}.html"
    assert "not done yet" in feedback.read_text()
    assert (course / "feedback" / "bob" / lesson / f"{lesson}.html").is_file()


def test_lesson_5s_save_cell_writes_a_model_the_leaderboard_scores(course, tmp_path):
    # bob's lesson 5 ran top to bottom under the autograder; its last cell saved model.keras beside the notebook
    from mnistloc.grading import leaderboard as lb

    saved = course / "autograded" / "bob" / lb.LESSON / lb.MODEL_FILE
    assert saved.is_file(), "the save cell of lesson 5 wrote no model.keras beside the notebook"
    folder = tmp_path / "submitted" / "bob" / lb.LESSON
    folder.mkdir(parents=True)
    shutil.copy(saved, folder / lb.MODEL_FILE)
    (tmp_path / "secret_seed").write_text("4242")
    (row,) = lb.leaderboard(tmp_path, canvases=8)
    assert (row.student, row.status) == ("bob", "ok"), row.message
    assert 0 <= row.map <= 1 and 0 <= row.count_accuracy <= 1 and row.parameters > 0
    assert (tmp_path / "mnistloc_leaderboard" / "leaderboard.csv").is_file()
