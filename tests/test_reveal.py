"""`mnistloc check NOTEBOOK --reveal NAME`: a self-learner's ladder (hint, worked case, reference; a written
question's model answer) after an attempt, never before one and never while grading."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from course import release

from mnistloc import cli
from mnistloc.grading import check as checking
from mnistloc.grading import reveal
from mnistloc.grading.registry import QUESTIONS

LESSON = "01-single-digit"
WRONG_IOU = '''def iou(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return w * h / (area(a) + area(b) - w * h)
'''


def _notebook(tmp_path, answers: dict) -> str:
    """The released lesson 1 with some answer cells replaced (by grade id)."""
    nb = json.loads(release(LESSON).read_text())
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    path = tmp_path / f"{LESSON}.ipynb"
    path.write_text(json.dumps(nb))
    return str(path)


def _check(capsys, *args) -> tuple[int, str]:
    code = cli.main(["check", *args])
    out = capsys.readouterr()
    assert out.err == ""
    return code, out.out


@pytest.fixture(autouse=True)
def _not_grading(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("MNISTLOC_SECRET_SEED", raising=False)


def test_after_a_failed_attempt_the_ladder_climbs_from_the_hint_to_the_reference(tmp_path, capsys):
    code, out = _check(capsys, _notebook(tmp_path, {"iou": WRONG_IOU}), "--reveal", "iou")
    assert code == 0
    hint, case, answer = out.split("\n\niou, ")[0], *out.split("\n\niou, ")[1:3]
    assert hint.startswith("iou, 1. hint\n  two empty boxes gave NaN (0 / 0)")  # the attempt's own hint
    assert case.startswith("2. a worked public case\n  for seven pairs of boxes")  # the case it got wrong
    assert "expected: [0.1429" in case and "yours:" in case and "nan" in case
    assert answer.startswith("3. the reference: mnistloc.boxes.iou\n  def iou(a, b)")
    assert "def _inter_union(" in answer  # the private helpers it calls come with it
    assert "def tight_box(" not in out and "def union_box(" not in out  # one exercise, not the lesson


def test_an_untouched_stub_is_refused(tmp_path, capsys):
    code, out = _check(capsys, _notebook(tmp_path, {}), "--reveal", "iou")
    assert code == 1 and "try it first" in out and "def iou" not in out


def test_a_name_outside_the_notebooks_lesson_is_refused_naming_the_choices(tmp_path, capsys):
    code, out = _check(capsys, _notebook(tmp_path, {}), "--reveal", "nms")
    assert code == 1 and "Got 'nms'" in out and "q_tight_or_frame" in out and "iou" in out


@pytest.mark.parametrize("variable", ["NBGRADER_EXECUTION", "MNISTLOC_SECRET_SEED"])
def test_never_while_grading(tmp_path, capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "autograde" if variable.startswith("NB") else "7")
    code, out = _check(capsys, _notebook(tmp_path, {"iou": WRONG_IOU}), "--reveal", "iou")
    assert code == 1 and "off while grading" in out and "def iou" not in out


def test_never_inside_the_grading_sandbox_where_submitted_code_runs(tmp_path):
    """An answer cell asking for the reveal gets a refusal: the child, where `mnistloc grade` runs it too."""
    sneaky = ("def iou(a, b):\n    from mnistloc.grading import reveal\n"
              "    raise RuntimeError(str(reveal.grading_now()))\n")
    report = checking.check_notebook(_notebook(tmp_path, {"iou": sneaky}))
    (entry,) = [e for e in report["exercises"] if e["name"] == "iou"]
    assert "grading sandbox" in entry["hint"]


def test_a_written_question_shows_its_model_answer_once_the_student_has_written_one(tmp_path, capsys):
    code, out = _check(capsys, _notebook(tmp_path, {}), "--reveal", "q_tight_or_frame")
    assert code == 1 and "write your own answer" in out
    code, out = _check(capsys, _notebook(tmp_path, {"q_tight_or_frame": "The frame is always 28 wide."}),
                       "--reveal", "q_tight_or_frame")
    assert code == 0
    assert QUESTIONS["q_tight_or_frame"].model_answer.strip().splitlines()[0] in out
    assert "graded by hand" in out


def test_check_lists_the_written_questions_as_graded_by_the_instructor(tmp_path, capsys):
    code, out = _check(capsys, _notebook(tmp_path, {}))
    lines = [line for line in out.splitlines() if "graded by your instructor" in line]
    assert [line.split()[0] for line in lines] == ["q_classic_plateau", "q_tight_or_frame"]


def test_every_question_has_its_prompt_and_model_answer_as_data():
    assert all(q.prompt.startswith("**Question**") and len(q.model_answer) > 100 for q in QUESTIONS.values())


def test_the_ladder_is_in_the_cli_help_and_reveal_stays_out_of_grading():
    done = subprocess.run([sys.executable, "-m", "mnistloc", "check", "--help"], capture_output=True, text=True)
    assert "--reveal NAME" in done.stdout and "never while grading" in done.stdout
    import mnistloc.grading.grade as grade
    assert "reveal" not in vars(grade)  # the grader never imports the ladder: nothing of it reaches feedback
    assert reveal.grading_now() is None


def test_the_solution_notebooks_hold_the_questions_data():
    """solutions/build.py writes each question's prompt and model answer from QUESTIONS (one home): the solution
    notebooks' question cells, and the markdown cell before each, are those texts."""
    import nbformat
    from pathlib import Path

    found = {}
    for path in sorted((Path(__file__).parents[1] / "solutions").glob("0*/*.ipynb")):
        cells = nbformat.read(str(path), as_version=4).cells
        for before, cell in zip(cells, cells[1:]):
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
            if gid in QUESTIONS:
                found[gid] = (before.source.strip(), cell.source.strip())
    assert found == {q.name: (q.prompt.strip(), q.model_answer.strip()) for q in QUESTIONS.values()}
