"""LMS exports (`mnistloc grade --export canvas|moodle FILE`): per-lesson points with their points possible, written
questions counted once formgrader has scored them all, the files the README documents, no formula cells."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
import warnings

import pytest

from course import REPO, nbgrader
from mnistloc import cli
from mnistloc.grading import lms_export
from mnistloc.grading.registry import EXERCISES, exercises_of
from mnistloc.grading.results import Row

L1, L2 = "01-single-digit", "02-presence"


def _rows(student: str, lesson: str, passed=(), submitted=True) -> list[Row]:
    """A student's rows of a lesson: ``passed`` exercises full points, the others failed (or not submitted)."""
    status = "failed" if submitted else "not-submitted"
    return [Row(student, lesson, name, EXERCISES[name].points if name in passed else 0, EXERCISES[name].points,
                "passed" if name in passed else status) for name in exercises_of(lesson)]


# The README's sample: ada passes lesson 1 (2+2+3+4+3+2 = 16 points) and union_box + heatmap_targets of lesson 2
# (2+3 = 5); ben passes place_digit, tight_box, iou (2+2+3 = 7) and submitted no lesson 2. Formgrader scored both
# written questions of lesson 1 for both (ada 2 and 1, ben 1 and 0): lesson 1 is out of 16 + 2 + 1 = 19, ada 19,
# ben 8. Lesson 2's question is not scored yet: its column is the autograded 2+3+3+3+3+3 = 17 points.
SAMPLE_ROWS = (_rows("ada", L1, exercises_of(L1)) + _rows("ada", L2, ("union_box", "heatmap_targets"))
               + _rows("ben", L1, ("place_digit", "tight_box", "iou")) + _rows("ben", L2, submitted=False))
SAMPLE_MANUAL = {("ada", L1, "q_classic_plateau"): 2.0, ("ada", L1, "q_tight_or_frame"): 1.0,
                 ("ben", L1, "q_classic_plateau"): 1.0, ("ben", L1, "q_tight_or_frame"): 0.0}
SAMPLE_NAMES = {"ada": "Lovelace, Ada"}


def test_points_possible_and_scores_per_lesson():
    assert sum(EXERCISES[n].points for n in exercises_of(L1)) == 16  # the sample's arithmetic holds today
    grades = lms_export.lesson_grades(SAMPLE_ROWS, SAMPLE_MANUAL, SAMPLE_NAMES)
    assert grades.lessons == (L1, L2) and grades.possible == {L1: 19, L2: 17}
    assert grades.scores == {"ada": {L1: 19, L2: 5}, "ben": {L1: 8, L2: 0}}
    assert grades.pending == {L2: ["q_mask_on_empty"]} and grades.names == {"ada": "Lovelace, Ada", "ben": "ben"}


def test_a_written_question_counts_only_once_every_submission_has_its_score():
    manual = {k: v for k, v in SAMPLE_MANUAL.items() if k != ("ben", L1, "q_tight_or_frame")}
    grades = lms_export.lesson_grades(SAMPLE_ROWS, manual)
    assert grades.possible[L1] == 16 + 2  # q_tight_or_frame (1 point) waits for ben's score
    assert grades.scores["ada"][L1] == 16 + 2 and grades.scores["ben"][L1] == 7 + 1
    assert grades.pending[L1] == ["q_tight_or_frame"]


def _readme_sample(fmt: str) -> str:
    text = (REPO / "grader" / "README.md").read_text()
    found = re.search(rf"<!-- export-sample {fmt} -->\n```csv\n(.*?)```", text, re.S)
    assert found, f"grader/README.md has no `{fmt}` export sample"
    return found.group(1)


@pytest.mark.parametrize("fmt", lms_export.FORMATS)
def test_the_readme_samples_are_what_the_export_writes(tmp_path, fmt):
    grades = lms_export.lesson_grades(SAMPLE_ROWS, SAMPLE_MANUAL, SAMPLE_NAMES)
    path = lms_export.write_export(fmt, tmp_path / f"{fmt}.csv", grades)
    assert path.read_text().replace("\r\n", "\n") == _readme_sample(fmt)


def test_canvas_layout_names_each_column_and_the_points_possible_row(tmp_path):
    grades = lms_export.lesson_grades(SAMPLE_ROWS, SAMPLE_MANUAL, SAMPLE_NAMES)
    with open(lms_export.write_export("canvas", tmp_path / "c.csv", grades), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", L1, L2]
    assert table[1] == ["Points Possible", "", "", "", "", "19", "17"]
    assert table[2] == ["Lovelace, Ada", "", "ada", "ada", "", "19", "5"]


def test_ids_that_would_be_formulas_are_quoted_and_csv_metacharacters_survive(tmp_path):
    hostile = '=HYPERLINK("x"),;<b>'
    grades = lms_export.lesson_grades(_rows(hostile, L1, ("iou",)))
    with open(lms_export.write_export("moodle", tmp_path / "m.csv", grades), newline="") as f:
        table = list(csv.reader(f))
    assert table[1] == ["'" + hostile, "3"]  # one cell, read back whole, and not a formula


def test_an_unknown_lms_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["grade", str(tmp_path), "--export", "blackboard", str(tmp_path / "x.csv")])
    assert code == 2 and "--export should name canvas or moodle" in capsys.readouterr().err
    with pytest.raises(ValueError, match="`--export` format should be one of"):
        lms_export.write_export("blackboard", tmp_path / "x.csv", lms_export.lesson_grades(SAMPLE_ROWS))


@pytest.mark.slow
def test_manual_scores_come_from_formgraders_gradebook(tmp_path, monkeypatch):
    """A real gradebook (``nbgrader generate_assignment``), scored as formgrader does: ``manual_score`` set."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    course.mkdir()
    monkeypatch.setenv("MNISTLOC_COURSE_ROOT", str(course))
    assert lms_export.manual_scores(course) == ({}, {})  # no gradebook yet: none, and none is created
    assert not (course / "gradebook.db").exists()
    nbgrader("generate_assignment", L1, "--force", course=course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarning from inside nbgrader's add_submission
        gb.update_or_create_student("ada", first_name="Ada", last_name="Lovelace")
        gb.update_or_create_student("ben")
        for student, scores in (("ada", {"q_classic_plateau": 2, "q_tight_or_frame": 1}), ("ben", {"q_classic_plateau": 1})):
            gb.update_or_create_submission(L1, student)
            for name, score in scores.items():
                gb.find_grade(name, L1, L1, student).manual_score = score
        gb.db.commit()
    manual, names = lms_export.manual_scores(course)
    assert manual == {("ada", L1, "q_classic_plateau"): 2.0, ("ada", L1, "q_tight_or_frame"): 1.0,
                      ("ben", L1, "q_classic_plateau"): 1.0}
    assert names == {"ada": "Lovelace, Ada", "ben": "ben"}
    grades = lms_export.lesson_grades(SAMPLE_ROWS, manual, names)
    assert grades.possible[L1] == 16 + 2 and grades.scores["ben"][L1] == 7 + 1  # ben's second answer: not yet


def test_a_shard_run_refuses_an_export(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mnistloc", "grade", str(tmp_path), "--shard", "0/2", "--export",
                           "canvas", str(tmp_path / "c.csv")], capture_output=True, text=True)
    assert done.returncode == 2 and "--merge run" in done.stderr
