"""The numbers the READMEs give about the lessons follow from the registry and the solution notebooks: the
README's lesson table (exercises and their points, written questions' points, lines of student code) and
grader/README.md's lesson maxima. A failure prints the row or the line to paste."""
from __future__ import annotations

import re

import nbformat
import pytest
from course import LESSON_IDS, REPO, solution

from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import QUESTIONS, exercises_of, questions_of


def student_lines(lesson: str) -> int:
    """Lines of student code in a lesson: non-blank, non-comment lines between BEGIN and END SOLUTION of its
    answer cells (what the release asks the student to write)."""
    count = 0
    for cell in nbformat.read(str(solution(lesson)), as_version=4).cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
                count += sum(1 for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#"))
    return count


def _table_rows() -> dict[str, list[str]]:
    """The README's lesson table: lesson id -> its cells."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"\| `(\d\d-[a-z-]+)` \|(.*)\|$", line)
        if m and m.group(1) in LESSON_IDS:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_the_readme_table_has_a_header_that_says_what_it_counts():
    text = (REPO / "README.md").read_text()
    assert ("| lesson | case | exercises (points) | written questions (points) | lines of your code | pictures |"
            in text)


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_the_readme_lesson_table_lists_the_registry_s_exercises_questions_and_lines(lesson):
    row = _table_rows().get(lesson)
    assert row is not None, f"README.md has no row for `{lesson}`"
    exercises = ", ".join(f"`{name}` ({EXERCISES[name].points})" for name in exercises_of(lesson))
    assert row[1] == exercises, f"README.md, row `{lesson}`, exercises should read: {exercises}"
    asked = [int(p) for p in re.findall(r"\((\d+)\)", row[2])]
    assert asked == [QUESTIONS[q].points for q in questions_of(lesson)], (
        f"README.md, row `{lesson}`: the written questions' points should be "
        f"{[QUESTIONS[q].points for q in questions_of(lesson)]}")
    assert row[3] == str(student_lines(lesson)), f"README.md, row `{lesson}`: lines of your code = {student_lines(lesson)}"


def test_grader_readme_gives_each_lesson_s_maxima_from_the_registry():
    auto = [sum(EXERCISES[name].points for name in exercises_of(lesson)) for lesson in LESSON_IDS]
    written = [sum(QUESTIONS[q].points for q in questions_of(lesson)) for lesson in LESSON_IDS]
    line = ("Lesson maxima: " + ", ".join(f"{a} (+{w})" for a, w in zip(auto, written))
            + " points, for lessons 1 to 5: automatic points (+ written questions, graded by hand).")
    assert line in " ".join((REPO / "grader" / "README.md").read_text().split()), f"grader/README.md should say: {line}"


def test_student_lines_counts_only_the_solution_regions():
    # lesson 1's place_digit answer is 3 lines (copy, write, return): the count includes them and no docstring
    nb = nbformat.read(str(solution(LESSON_IDS[0])), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "place_digit")
    block = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S).group(1)
    assert [ln.strip() for ln in block.splitlines() if ln.strip()] == [
        "out = canvas.copy()", "out[y:y + digit.shape[0], x:x + digit.shape[1]] = digit", "return out"]
    assert student_lines(LESSON_IDS[0]) >= 3
