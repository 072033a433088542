"""A small class of lesson 1 with known mistakes, for the dashboard, export, regrade and browser tests.

Each student's notebook is the released lesson with the numpy answers
(``place_digit``, ``tight_box``, ``iou``) filled in from the solutions, then
changed as ``CLASS`` says: a catalogued mistake pasted in, a crash, answers
hard-coded for the public cases (which fail a hidden case). The Keras
exercises stay stubs (``failed``, "not done yet", no child runs them), so the
class grades without TensorFlow in a few seconds.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from course import REPO, nbgrader

LESSON = "01-single-digit"
SEED = 424242
# HTML, CSV and URL metacharacters and a leading formula sign, all legal in a folder name.
HOSTILE = "=cmd|'x'!A1<b>\"q\"&amp;,;%20#?<img src=x onerror=alert(1)>"  # no '/': it is one folder

IOU_UNCLAMPED = '''def iou(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    area = lambda box: np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
'''
TIGHT_INCLUSIVE = '''def tight_box(image):
    cols = np.flatnonzero((image > 0).any(axis=0))
    rows = np.flatnonzero((image > 0).any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)
'''
PLACE_CRASH = '''def place_digit(canvas, digit, x, y):
    import os
    os._exit(3)
'''

# student -> answers that replace the solution's (None: no submission). Worked out per exercise:
#   iou:        passed by ada, dee; unclamped (catalogued) by ben, cy, HOSTILE; public answers only: hal
#   tight_box:  inclusive max (catalogued) by cy, dee; passed by ada, ben, HOSTILE, hal
#   place_digit: crash for HOSTILE; passed by ada, ben, cy, dee, hal
#   eve submitted nothing.
CLASS = {
    "ada": {},
    "ben": {"iou": IOU_UNCLAMPED},
    "cy": {"iou": IOU_UNCLAMPED, "tight_box": TIGHT_INCLUSIVE},
    "dee": {"tight_box": TIGHT_INCLUSIVE},
    HOSTILE: {"iou": IOU_UNCLAMPED, "place_digit": PLACE_CRASH},
    "hal": "hardcoded_public",  # the corpus case: iou hard-coded for the public cases
    "eve": None,
}
NUMPY = ("place_digit", "tight_box", "iou")


def _gid(cell: dict):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solutions() -> dict[str, str]:
    nb = json.loads((REPO / "solutions" / LESSON / f"{LESSON}.ipynb").read_text())
    return {_gid(c): re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", "".join(c["source"]))
            for c in nb["cells"] if _gid(c) in NUMPY}


def notebook(changes: dict) -> dict:
    """The released lesson 1 with the numpy answers from the solutions, then ``changes`` pasted in."""
    nb = copy.deepcopy(json.loads((REPO / "lessons" / LESSON / f"{LESSON}.ipynb").read_text()))
    answers = {**_solutions(), **changes}
    for cell in nb["cells"]:
        if _gid(cell) in answers:
            cell["source"] = answers[_gid(cell)].splitlines(keepends=True)
    return nb


def submit(course: Path, student: str, how) -> None:
    """Writes ``student``'s notebook into ``course/submitted`` (``how`` as in ``CLASS``)."""
    folder = course / "submitted" / student / LESSON
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{LESSON}.ipynb"
    if isinstance(how, str):
        target.write_bytes((REPO / "tests" / "corpus" / how / f"{LESSON}.ipynb").read_bytes())
    else:
        target.write_text(json.dumps(notebook(how), indent=1))


def make_class(root: Path, *, gradebook: bool = False) -> Path:
    """A course folder holding ``CLASS`` (and lesson 1 in nbgrader's database when ``gradebook``)."""
    course = root / "course"
    course.mkdir(parents=True)
    (course / "secret_seed").write_text(f"{SEED}\n")
    (course / "secret_seed").chmod(0o600)
    if gradebook:
        nbgrader("generate_assignment", LESSON, "--force", course=course)
    for student, how in CLASS.items():
        if how is None:
            (course / "submitted" / student).mkdir(parents=True)
        else:
            submit(course, student, how)
    return course


def grade(course: Path, *args: str, out: Path | None = None, gradebook: bool = False) -> subprocess.CompletedProcess:
    """``mnistloc grade COURSE --lesson 01-single-digit ARGS`` in a fresh process (as instructors run it)."""
    cmd = [sys.executable, "-m", "mnistloc", "grade", str(course), "--lesson", LESSON, "--jobs", "2",
           "--timeout", "30", "--out", str(out or course / "mnistloc_grades"), *args]
    if not gradebook:
        cmd.append("--no-gradebook")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                               "MNISTLOC_COURSE_ROOT": str(course)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done
