"""grader/README.md runs as written: its ``bash`` blocks, in order, in one shell started at the repository root,
on a fresh course root (``~/mnistloc-2026`` with ``HOME`` a temporary folder). Two submissions are put where
step 2 says, right after the release block: ``alice`` typed in the solutions, ``bob`` left ``iou``'s overlap
unclamped. Then nbgrader's scores and feedback and ``mnistloc grade``'s CSV and pages must say so.
(The Slurm and Kubernetes examples are ``sh`` and ``yaml`` blocks: they need a cluster.)"""
from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from course import REPO, grade_id, release, solution

from mnistloc.checks import EXERCISES
from mnistloc.grading.registry import QUESTIONS, exercises_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("nbgrader")]

LESSON = "01-single-digit"
FULL = sum(EXERCISES[name].points for name in exercises_of(LESSON))  # autograded points
WRITTEN = sum(q.points for q in QUESTIONS.values() if q.lesson == LESSON)  # graded by hand, still ungraded here
SUBMIT = 'cp -R "$SUBMISSIONS"/. "$MNISTLOC_COURSE_ROOT/submitted/"   # step 2, done by the test'


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def _submission(unclamped: bool) -> nbformat.NotebookNode:
    answers = {grade_id(c): c.source for c in nbformat.read(str(solution(LESSON)), as_version=4).cells}
    nb = nbformat.read(str(release(LESSON)), as_version=4)
    for c in nb.cells:
        if grade_id(c) in EXERCISES:
            c.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", answers[grade_id(c)])
            if unclamped and grade_id(c) == "iou":
                c.source = c.source.replace("np.clip(", "(").replace(", 0, None)", ")")
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    staged = tmp_path_factory.mktemp("submissions")
    for student, unclamped in (("alice", False), ("bob", True)):
        (staged / student / LESSON).mkdir(parents=True)
        nbformat.write(_submission(unclamped), str(staged / student / LESSON / f"{LESSON}.ipynb"))
    blocks = bash_blocks((REPO / "grader" / "README.md").read_text())
    release_at = next(i for i, b in enumerate(blocks) if "generate_assignment" in b)
    script = "\n".join(["set -euo pipefail", *blocks[:release_at + 1], SUBMIT, *blocks[release_at + 1:]])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNISTLOC_", "NBGRADER_"))}
    env.update(HOME=str(home), SUBMISSIONS=str(staged), TF_CPP_MIN_LOG_LEVEL="3",
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")))
    done = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return home / "mnistloc-2026"


def test_the_workflow_has_the_steps_it_promises():
    text = "\n".join(bash_blocks((REPO / "grader" / "README.md").read_text()))
    for command in ("generate_assignment", "autograde", "generate_feedback", "export", "mnistloc grade",
                    "mnistloc doctor"):
        assert command in text


def test_nbgrader_gives_the_solved_submission_full_marks_and_the_unclamped_iou_3_less(course):
    rows = {r["student_id"]: r for r in csv.DictReader(open(course / "grades.csv")) if r["assignment"] == LESSON}
    assert {s: float(r["score"]) for s, r in rows.items()} == {"alice": FULL, "bob": FULL - 3}  # iou: 3 points
    assert float(rows["bob"]["max_score"]) == FULL + WRITTEN  # nbgrader's maximum counts the written questions


def test_nbgrader_feedback_shows_the_hint(course):
    page = (course / "feedback" / "bob" / LESSON / f"{LESSON}.html").read_text()
    assert "overlap not clamped at zero" in page
    assert "not clamped" not in (course / "feedback" / "alice" / LESSON / f"{LESSON}.html").read_text()


def test_mnistloc_grade_agrees_and_writes_the_same_hint(course):
    rows = list(csv.DictReader(open(course / "mnistloc_grades" / "grades.csv")))
    lesson1 = {(r["student"], r["exercise"]): r for r in rows if r["lesson"] == LESSON}
    assert sum(int(r["points"]) for (s, _), r in lesson1.items() if s == "alice") == FULL
    assert sum(int(r["points"]) for (s, _), r in lesson1.items() if s == "bob") == FULL - 3
    assert lesson1[("bob", "iou")]["status"] == "failed"
    assert lesson1[("bob", "iou")]["reason"].startswith("iou: overlap not clamped at zero")
    assert {r["status"] for r in rows if r["lesson"] != LESSON} == {"not-submitted"}
    page = (course / "mnistloc_grades" / "feedback" / "bob" / f"{LESSON}.html").read_text()
    assert "overlap not clamped at zero" in page and f"{FULL - 3}/{FULL}" in page
