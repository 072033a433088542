"""The lessons: lessons/ is exactly nbgrader's generation from solutions/, holds no solution or hidden test,
follows the cell conventions, and every solution cell passes its check on its own."""
from __future__ import annotations

import importlib.util
import json
import re
import sys

import nbformat
import numpy as np
import pytest
from course import LESSON_IDS, REPO, cells, grade_id, nbgrader, release, solution

from mnistloc import checks
from mnistloc.grading import judge, notebook
from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import QUESTIONS, RETIRED, exercises_of, questions_of


def test_there_are_five_lessons_and_every_exercise_is_in_one():
    assert LESSON_IDS == list(checks.LESSONS)
    assert sorted(p.name for p in (REPO / "lessons").iterdir()) == LESSON_IDS
    in_notebooks = {grade_id(c) for lesson in LESSON_IDS for c in cells(solution(lesson))}
    assert set(EXERCISES) - set(RETIRED) <= in_notebooks
    assert not set(RETIRED) & in_notebooks  # a retired exercise grades only in notebooks released before
    assert set(RETIRED.values()) <= in_notebooks  # what replaced it is in a lesson


@pytest.mark.slow
@pytest.mark.xdist_group("generate")
def test_lessons_are_exactly_what_nbgrader_generates_from_solutions(tmp_path):
    for lesson in LESSON_IDS:
        nbgrader("generate_assignment", lesson, "--no-db", course=tmp_path, release_dir=tmp_path / "release")
        fresh = tmp_path / "release" / lesson
        assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in release(lesson).parent.iterdir())
        assert (fresh / f"{lesson}.ipynb").read_bytes() == release(lesson).read_bytes(), (
            f"lessons/{lesson} differs from what nbgrader generates: run `make lessons`")


def _solution_lines(lesson: str) -> list[str]:
    """The non-trivial lines inside BEGIN/END SOLUTION and the hidden tests of a source notebook."""
    lines = []
    for c in cells(solution(lesson)):
        for block in re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", c.source, re.S):
            lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12]
    return lines


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_lessons_hold_no_solution_code_hidden_tests_or_outputs(lesson):
    text = release(lesson).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "secret=True"):
        assert marker not in text
    hidden = _solution_lines(lesson)
    assert len(hidden) >= 4
    code = "\n".join(c.source for c in cells(release(lesson)) if c.cell_type == "code")
    assert not [ln for ln in hidden if ln in code]
    assert all(not c.get("outputs") for c in cells(release(lesson)))


def _build_module():
    spec = importlib.util.spec_from_file_location("solutions_build", REPO / "solutions" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_solution_notebooks_are_what_build_py_writes(lesson):
    build = _build_module()
    made = nbformat.writes(build.build(lesson, build.LESSONS[lesson]))
    assert json.loads(made) == json.loads(solution(lesson).read_text()), (
        "solutions/ and solutions/lessons_src disagree: run `python solutions/build.py`")


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_cell_conventions(lesson):
    nb_cells = cells(solution(lesson))
    assert nb_cells[0].cell_type == "markdown" and nb_cells[0].source.startswith("# Lesson")
    setup = nb_cells[1]
    assert grade_id(setup) == "setup" and setup.metadata.nbgrader.locked
    assert "%pip install mnistloc-0.1.0-py3-none-any.whl" in setup.source
    code = [c for c in nb_cells if c.cell_type == "code"]
    for name in exercises_of(lesson):
        ex = EXERCISES[name]
        i = next(k for k, c in enumerate(code) if grade_id(c) == name)
        answer, test = code[i], code[i + 1]
        assert answer.metadata.nbgrader.solution and not answer.metadata.nbgrader.grade
        assert f"def {name}(" in answer.source and '"""' in answer.source and "### BEGIN SOLUTION" in answer.source
        assert grade_id(test) == f"test_{name}"
        meta = test.metadata.nbgrader
        assert meta.grade and meta.locked and meta.points == ex.points
        assert test.source.startswith(f'check_exercise("{name}", {name})')
    assert sum("train" in c.metadata.get("tags", []) for c in code) == 1


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_each_solution_cell_passes_its_check_given_only_the_prelude(lesson):
    read = judge.read_answers(solution(lesson))
    assert read.lesson == lesson and read.findings == () and read.blocked == {}
    assert list(read.sources) == read.exercises
    for name, source in read.sources.items():
        namespace: dict = {}
        exec(checks.PRELUDE, namespace)
        exec(source, namespace)
        result = checks.check(name, namespace[name], seed=2024)
        assert result.passed, result.hint


def test_the_setup_cell_says_how_to_install_mnistloc_when_it_is_missing(monkeypatch):
    setup = cells(release(LESSON_IDS[0]))[1].source
    monkeypatch.setitem(sys.modules, "mnistloc", None)  # `import mnistloc` now fails as if not installed
    with pytest.raises(ModuleNotFoundError) as info:
        exec(setup, {})
    assert "%pip install mnistloc-0.1.0-py3-none-any.whl" in str(info.value) and "restart the kernel" in str(info.value)


# ---- reading a lesson's answers (the one rule of every front end) -----------------------------------

def test_read_answers_finds_every_exercise_of_a_release_and_knows_the_stubs():
    read = judge.read_answers(release("02-presence"))
    assert read.lesson == "02-presence" and read.sources == {}
    assert read.exercises == exercises_of("02-presence")
    assert read.exercises[0] == "union_box" and "box_targets" in read.exercises  # two digits: their ownership
    assert "build_presence_head" not in read.exercises  # retired: only notebooks released before hold it
    assert read.blocked["union_box"] == ("failed", "union_box: not done yet: replace `raise NotImplementedError()` "
                                                   "with your code.")
    assert set(read.blocked) == set(read.exercises)  # each a stub, or missing from the release


def _edited(tmp_path, edit, name="01-single-digit.ipynb"):
    nb = nbformat.read(str(solution("01-single-digit")), as_version=4)
    edit(nb.cells)
    path = tmp_path / name
    nbformat.write(nb, str(path))
    return judge.read_answers(path)


def test_read_answers_blocks_deleted_and_duplicated_answers_and_grades_a_markdown_one_as_code(tmp_path):
    def delete(cs):
        cs[:] = [c for c in cs if grade_id(c) != "iou"]
    read = _edited(tmp_path, delete)
    assert read.blocked["iou"][0] == "missing" and "iou" not in read.sources and "tight_box" in read.sources

    def duplicate(cs):
        copy = nbformat.from_dict(dict(next(c for c in cs if grade_id(c) == "iou")))
        copy.id = "a-copy"
        cs.append(copy)
    status, reason = _edited(tmp_path, duplicate).blocked["iou"]
    assert status == "duplicated" and "appears 2 times" in reason  # nbgrader's rule: 0 points, never the first

    def retype(cs):
        i = next(k for k, c in enumerate(cs) if grade_id(c) == "tight_box")
        cs[i] = nbformat.v4.new_markdown_cell(cs[i].source, metadata=cs[i].metadata, id=cs[i].id)
    read = _edited(tmp_path, retype)
    assert "def tight_box(" in read.sources["tight_box"] and "tight_box" not in read.blocked
    assert [f.kind for f in read.findings if f.where == "tight_box"] == ["retyped"]


def test_read_answers_judges_the_bytes_it_is_given_and_never_reads_the_file_again(tmp_path):
    # The grader reads a submission once (regular file, size cap, timeout) and hands over those bytes: the
    # answers come from them even when the file on disk has changed since, or is gone.
    path = tmp_path / "01-single-digit.ipynb"
    data = solution("01-single-digit").read_bytes()
    path.write_text("{not json")
    read = judge.read_answers(path, data=data)
    assert read.findings == () and read.blocked == {} and list(read.sources) == read.exercises
    assert set(questions_of("01-single-digit")) <= read.grade_ids  # the written answers' cells, for `manual` rows
    path.unlink()
    assert judge.read_answers(path, lesson="01-single-digit", data=data).sources == read.sources


def test_read_answers_guesses_the_lesson_of_a_renamed_copy(tmp_path):
    assert _edited(tmp_path, lambda cs: None, name="my-copy.ipynb").lesson == "01-single-digit"


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"cells": 3}', "not a notebook"),
    (json.dumps(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])), "not an mnistloc lesson"),
])
def test_read_answers_refuses_what_is_not_a_lesson(tmp_path, content, message):
    path = tmp_path / "homework.ipynb"
    path.write_text(content)
    with pytest.raises(notebook.NotALessonError, match=message):
        judge.read_answers(path)
    with pytest.raises(notebook.NotALessonError, match="no file"):
        judge.read_answers(tmp_path / "absent.ipynb")


def test_a_broken_file_named_after_its_lesson_is_unreadable_not_refused(tmp_path):
    path = tmp_path / "01-single-digit.ipynb"
    path.write_text("{not json")
    read = judge.read_answers(path)
    assert read.sources == {} and {s for s, _ in read.blocked.values()} == {"unreadable"}
    assert list(read.blocked) == read.exercises


# ---- written questions -----------------------------------------------------------------------------

@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_each_lesson_asks_one_to_three_written_questions_graded_by_hand(lesson):
    asked = [c for c in cells(solution(lesson)) if grade_id(c) in QUESTIONS]
    assert 1 <= len(asked) <= 3 and [grade_id(c) for c in asked] == questions_of(lesson)
    for c in asked:
        meta = c.metadata.nbgrader
        assert c.cell_type == "markdown" and meta.solution and meta.grade and not meta.task
        assert meta.points == QUESTIONS[grade_id(c)].points > 0
        assert len(c.source) > 80  # a model answer for the instructor
    released = {grade_id(c): c for c in cells(release(lesson))}
    for c in asked:  # the release asks for the student's answer, never shows the model answer
        assert released[grade_id(c)].source == "YOUR ANSWER HERE"


def test_mnistloc_grade_lists_written_questions_as_manual_with_no_automatic_points(tmp_path):
    from mnistloc.grading import grade

    lesson = "04-multiple-digits"
    rows = grade.grade_notebook(grade.Task("alice", lesson, release(lesson)), seed=7)
    manual = [r for r in rows if r.status == "manual"]
    assert [r.exercise for r in manual] == questions_of(lesson)
    for r in manual:
        assert (r.points, r.max_points) == (0, 0) and f"{QUESTIONS[r.exercise].points} points" in r.reason
        assert "formgrader" in r.reason
    graded = [r for r in rows if r.status != "manual"]
    assert [r.exercise for r in graded] == judge.read_answers(release(lesson)).exercises
    assert all(r.status == "failed" and "not done yet" in r.reason for r in graded)


def test_a_notebook_without_the_question_cells_gets_no_manual_row():
    from mnistloc.grading import grade

    lesson = "02-presence"
    rows = grade.grade_notebook(grade.Task("bob", lesson, RELEASED_BEFORE / f"{lesson}.ipynb"), seed=7)
    assert rows and not [r for r in rows if r.status == "manual"]


# ---- notebooks released before: students who started them keep their points -------------------------

RELEASED_BEFORE = REPO / "tests" / "fixtures" / "released-2026-11"
"""The lessons as first released (before the written questions and the detector's parts), and the answers a
student typed into them (``answers.json``: exercise -> answer cell)."""


def _old_lesson_typed_in(tmp_path, lesson: str) -> object:
    answers = json.loads((RELEASED_BEFORE / "answers.json").read_text())
    nb = nbformat.read(str(RELEASED_BEFORE / f"{lesson}.ipynb"), as_version=4)
    for c in nb.cells:
        if grade_id(c) in answers:
            c.source = answers[grade_id(c)]
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("lesson", [lesson for lesson in LESSON_IDS if (RELEASED_BEFORE / f"{lesson}.ipynb").exists()])
def test_a_notebook_released_before_still_grades_its_exercises_with_mnistloc_check(tmp_path, lesson):
    old = RELEASED_BEFORE / f"{lesson}.ipynb"
    held = [grade_id(c) for c in cells(old) if grade_id(c) in EXERCISES]
    assert held  # every exercise it holds is still registered, under the same name and lesson
    assert {EXERCISES[name].lesson for name in held} == {lesson}
    untouched = checks.check_notebook(old)
    by_name = {r["name"]: r for r in untouched["exercises"]}
    for name in held:
        assert by_name[name]["points"] == 0 and "not done yet" in by_name[name]["hint"]
    done = checks.check_notebook(_old_lesson_typed_in(tmp_path, lesson))
    by_name = {r["name"]: r for r in done["exercises"]}
    for name in held:
        assert by_name[name]["passed"] and by_name[name]["points"] == EXERCISES[name].points, by_name[name]["hint"]


# ---- lesson 5 uses the student's own functions from the notebooks of lessons 1-4, checked first -----------

BROKEN = {  # a plausible bug in each, as a student would write it: (grade id, solution text, broken text)
    "focal_loss": ("02-presence", "return ops.sum(pos_loss + neg_loss)", "return -ops.sum(pos_loss + neg_loss)"),
    "boxes_from_cells": ("01-single-digit", "((np.arange(h) + 0.5) * stride)", "(np.arange(h) * stride)"),
    "nms": ("03-multi-class", "for i in np.argsort(-s, kind=\"stable\"):", "for i in np.argsort(s, kind=\"stable\"):"),
    "match_detections": ("04-multiple-digits", "free = np.where(taken, -1.0, ious[d])", "free = ious[d]"),
}
LOADED_AS = {"focal_loss": "focal", "boxes_from_cells": "cells_fn", "nms": "nms_fn", "match_detections": "match_fn"}


def _earlier_lessons(tmp_path, broken=()):
    """The solution notebooks of lessons 1-4 as a student's folders beside ``tmp_path/05-many-digits``, with the
    answers named in ``broken`` replaced by their bug (``BROKEN``)."""
    for lesson in LESSON_IDS[:4]:
        nb = nbformat.read(str(solution(lesson)), as_version=4)
        for c in nb.cells:
            if grade_id(c) in broken:
                _, right, wrong = BROKEN[grade_id(c)]
                assert right in c.source  # the bug is made from the solution as it is now
                c.source = c.source.replace(right, wrong)
        (tmp_path / lesson).mkdir()
        nbformat.write(nb, str(tmp_path / lesson / f"{lesson}.ipynb"))


def _load_in_lesson_5(tmp_path, monkeypatch, use_my_own=None) -> dict:
    """Runs lesson 5's setup cell and its ``from_lesson`` cell (not the rest of the lesson) in
    ``tmp_path/05-many-digits``, as a student's kernel would; returns the kernel's namespace."""
    lesson5 = cells(solution("05-many-digits"))
    loader = next(c.source for c in lesson5 if "def from_lesson(" in c.source)
    if use_my_own is not None:
        assert "USE_MY_OWN = set()" in loader
        loader = loader.replace("USE_MY_OWN = set()", f"USE_MY_OWN = {set(use_my_own)!r}")
    here = tmp_path / "05-many-digits"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    space: dict = {}
    exec(lesson5[1].source, space)  # the setup cell
    exec(loader, space)
    return space


def _is_reference(func) -> bool:
    return (getattr(func, "__module__", None) or "").startswith("mnistloc.")


@pytest.mark.slow
def test_lesson_5_refuses_each_broken_earlier_function_names_its_hint_and_uses_the_reference(tmp_path, monkeypatch,
                                                                                            capsys):
    _earlier_lessons(tmp_path, broken=BROKEN)
    space = _load_in_lesson_5(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    for name, variable in LOADED_AS.items():
        assert _is_reference(space[variable]), name
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{name}: "))
        assert line.startswith(f"{name}: mnistloc's reference (yours fails its check: {name}: "), line
    # the parts that pass their checks are the student's own
    for name in ("heatmap_targets", "box_targets", "find_peaks", "iou_loss", "average_precision"):
        assert f"{name}: yours, from ../" in out, name
    assert not _is_reference(space["heat_fn"]) and not _is_reference(space["peaks_fn"])


@pytest.mark.slow
def test_use_my_own_keeps_a_failing_function_and_says_that_its_check_fails(tmp_path, monkeypatch, capsys):
    _earlier_lessons(tmp_path, broken={"nms"})
    space = _load_in_lesson_5(tmp_path, monkeypatch, use_my_own={"nms"})
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("nms: "))
    assert line.startswith("nms: yours, from ../03-multi-class/03-multi-class.ipynb, in USE_MY_OWN though its check "
                           "fails: nms: ")
    assert not _is_reference(space["nms_fn"])
    assert list(space["nms_fn"]([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.1], 0.5)) == [1]  # the bug, as asked


@pytest.mark.slow
def test_lesson_5_falls_back_to_the_reference_when_an_earlier_notebook_is_missing_or_not_done(tmp_path, monkeypatch,
                                                                                            capsys):
    _earlier_lessons(tmp_path)
    (tmp_path / "04-multiple-digits" / "04-multiple-digits.ipynb").unlink()
    nb = nbformat.read(str(release("03-multi-class")), as_version=4)  # the stubs, as released
    nbformat.write(nb, str(tmp_path / "03-multi-class" / "03-multi-class.ipynb"))
    space = _load_in_lesson_5(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "match_detections: mnistloc's reference (../04-multiple-digits/04-multiple-digits.ipynb is not there)" in out
    assert "nms: mnistloc's reference (yours fails its check: nms: not done yet" in out
    assert _is_reference(space["nms_fn"]) and _is_reference(space["match_fn"])


def test_lesson_5_uses_the_reference_under_the_autograder(tmp_path, monkeypatch, capsys):
    _earlier_lessons(tmp_path)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    lesson5 = cells(solution("05-many-digits"))
    here = tmp_path / "05-many-digits"
    here.mkdir()
    monkeypatch.chdir(here)
    space: dict = {}
    exec(lesson5[1].source, space)
    exec(next(c.source for c in lesson5 if "def from_lesson(" in c.source), space)
    out = capsys.readouterr().out
    assert out.count("mnistloc's reference (the autograder grades this notebook alone)") == len(LOADED_AS) + 5
    assert _is_reference(space["nms_fn"])


# ---- lesson 3's NMS instruction can be followed as written ------------------------------------------------

NMS_AS_TOLD = '''
def nms(boxes, scores, iou_threshold=0.5):
    from mnistloc.boxes import pairwise_iou

    ious = pairwise_iou(boxes, boxes)  # (M, M)
    dropped, keep = np.zeros(len(boxes), bool), []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)
'''


def test_an_nms_that_uses_pairwise_iou_as_lesson_3_says_passes_and_is_not_taken_for_the_reference():
    text = next(c.source for c in cells(release("03-multi-class")) if "**Exercise: `nms`**" in c.source)
    assert "from mnistloc.boxes import pairwise_iou" in text and "pairwise_iou(boxes, boxes)" in text
    from mnistloc.grading import sandbox

    assert sandbox.calls_reference(NMS_AS_TOLD, checks.REFERENCES["nms"]) is None
    space: dict = {}
    exec(checks.PRELUDE + NMS_AS_TOLD, space)
    result = checks.check("nms", space["nms"], seed=3)
    assert result.passed, result.hint
    assert not checks.check("nms", lambda b, s, t=0.5: space["nms"](b, -np.asarray(s), t)).passed  # it can fail
