"""`mnistloc grade --student S --force`: one student regraded, everything of theirs updated (CSV, JSON, feedback
page, dashboard, nbgrader's gradebook, LMS exports), nobody else's result touched (bytes and mtimes)."""
from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

import classroom
from classroom import HOSTILE, LESSON
from mnistloc.grading import dashboard
from mnistloc.grading.registry import EXERCISES, exercises_of
from mnistloc.grading.results import _gradebook_url, read_results

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("classroom")]

EXPORTS = ("--export", "canvas", "canvas.csv", "--export", "moodle", "moodle.csv")


def _state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and mtime in ns."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _gradebook(course: Path) -> dict[tuple[str, str], tuple]:
    """(student, grade cell) -> (auto score, manual score) in nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    url, course_id = _gradebook_url(course)
    with Gradebook(url, course_id=course_id) as gb:
        return {(sub.student.id, g.name): (g.auto_score, g.manual_score)
                for sub in gb.assignment_submissions(LESSON) for nb in sub.notebooks for g in nb.grades}


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def regraded(tmp_path_factory):
    """The class graded with its gradebook and exports; then ben's iou fixed and ben alone regraded."""
    course = classroom.make_class(tmp_path_factory.mktemp("regrade"), gradebook=True)
    out = course / "mnistloc_grades"
    exports = [a if not a.endswith(".csv") else str(out / a) for a in EXPORTS]
    classroom.grade(course, *exports, gradebook=True)
    before = {"files": _state(out), "gradebook": _gradebook(course), "rows": read_results(out)[0],
              "canvas": _csv_rows(out / "canvas.csv")}
    classroom.submit(course, "ben", {})  # ben fixes iou
    refused = subprocess.run([sys.executable, "-m", "mnistloc", "grade", str(course), "--lesson", LESSON,
                              "--student", "ben", "--out", str(out), "--no-gradebook"], capture_output=True, text=True)
    unchanged = _state(out) == before["files"]
    classroom.grade(course, "--student", "ben", "--force", *exports, gradebook=True)
    return course, out, before, refused, unchanged


def test_without_force_a_regrade_is_refused_and_changes_nothing(regraded):
    _, _, _, refused, unchanged = regraded
    assert refused.returncode == 2 and "pass --force" in refused.stderr and unchanged


def test_other_students_feedback_pages_keep_their_bytes_and_mtimes(regraded):
    _, out, before, _, _ = regraded
    after = _state(out)
    others = {k for k in before["files"] if k.startswith("feedback/") and not k.startswith("feedback/ben/")}
    assert len(others) == 6 and all(after[k] == before["files"][k] for k in others)
    assert after[f"feedback/ben/{LESSON}.html"][0] != before["files"][f"feedback/ben/{LESSON}.html"][0]


def test_the_csv_and_json_change_only_bens_rows(regraded):
    _, out, before, _, _ = regraded
    rows = read_results(out)[0]
    assert [r for r in rows if r.student != "ben"] == [r for r in before["rows"] if r.student != "ben"]
    iou = next(r for r in rows if r.student == "ben" and r.exercise == "iou")
    assert (iou.status, iou.points, iou.mistake) == ("passed", EXERCISES["iou"].points, "")
    with open(out / "grades.csv", newline="") as f:
        csv_rows = [r for r in csv.DictReader(f)]
    assert len(csv_rows) == len(rows) and next(r for r in csv_rows if r["student"] == "ben" and
                                               r["exercise"] == "iou")["status"] == "passed"


def test_the_dashboard_counts_the_regrade(regraded):
    _, out, _, _, _ = regraded
    (lesson,) = dashboard.class_summary(read_results(out)[0])
    iou = next(ex for ex in lesson.exercises if ex.name == "iou")
    assert iou.statuses["passed"] == 3 and iou.mistakes[0].students == tuple(sorted(["cy", HOSTILE]))
    assert ">ben</a>" not in (out / "class.html").read_text().split("iou:overlap")[1].split("</li>")[0]


def test_the_gradebook_changes_only_bens_iou(regraded):
    course, _, before, _, _ = regraded
    after = _gradebook(course)
    assert after.keys() == before["gradebook"].keys()
    changed = {k for k in after if after[k] != before["gradebook"][k]}
    assert changed == {("ben", "test_iou")} and after["ben", "test_iou"][0] == EXERCISES["iou"].points


def test_the_exports_change_only_bens_line(regraded):
    _, out, before, _, _ = regraded
    canvas = _csv_rows(out / "canvas.csv")
    ben = next(i for i, row in enumerate(canvas) if row[2] == "ben")
    assert [r for i, r in enumerate(canvas) if i != ben] == [r for i, r in enumerate(before["canvas"]) if i != ben]
    assert float(canvas[ben][5]) == float(before["canvas"][ben][5]) + EXERCISES["iou"].points
    moodle = _csv_rows(out / "moodle.csv")
    assert next(r for r in moodle if r[0] == "ben")[1] == canvas[ben][5]


def test_reports_only_exports_the_written_answers_once_formgrader_scored_them_all(regraded, tmp_path):
    """As formgrader does: a manual score on each submitted notebook's written answers; then `--reports-only`."""
    from nbgrader.api import Gradebook

    course, out, _, _, _ = regraded
    submitted = sorted(s for s in classroom.CLASS if classroom.CLASS[s] is not None)  # eve has no notebook
    url, course_id = _gradebook_url(course)
    with Gradebook(url, course_id=course_id) as gb:
        for student in submitted:
            gb.find_grade("q_classic_plateau", LESSON, LESSON, student).manual_score = 1 if student == "cy" else 2
            if student != "cy":  # cy's second answer is not scored yet
                gb.find_grade("q_tight_or_frame", LESSON, LESSON, student).manual_score = 1
        gb.db.commit()
    auto = {row[2]: float(row[5]) for row in _csv_rows(out / "canvas.csv")[2:]}
    before = _state(out)
    cmd = [sys.executable, "-m", "mnistloc", "grade", str(course), "--out", str(out), "--reports-only", "--export",
           "canvas", str(tmp_path / "canvas.csv")]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**classroom.os.environ,
                                                                   "MNISTLOC_COURSE_ROOT": str(course)})
    assert done.returncode == 0, done.stderr
    assert "not yet graded in formgrader, so not exported: q_tight_or_frame" in done.stdout
    table = _csv_rows(tmp_path / "canvas.csv")
    # Every automatic point of lesson 1, + q_classic_plateau's 2; q_tight_or_frame waits for cy.
    assert table[1][5] == str(sum(EXERCISES[n].points for n in exercises_of(LESSON)) + 2)
    assert {row[2]: float(row[5]) for row in table[2:]} == {s: auto[s] + {"cy": 1, "eve": 0}.get(s, 2) for s in auto}
    after = _state(out)
    assert {k for k in after if after[k] != before.get(k)} <= {"class.html", "class/scores-0.png"}  # grades untouched
