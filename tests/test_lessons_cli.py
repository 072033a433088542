"""``mnistloc lessons DIR``, run as a self-learner runs it: a fresh process in a temporary folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mnistloc import course

REPO = Path(__file__).resolve().parents[1]
FIRST = course.lesson_ids()[0]


def _lessons(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnistloc", "lessons", *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_fetches_every_lesson_and_says_how_to_open_them(tmp_path):
    done = _lessons(tmp_path, "my-lessons")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for lesson in course.lesson_ids():
        assert f"  copied      {lesson}/{lesson}.ipynb\n" in done.stdout
        assert (tmp_path / "my-lessons" / lesson / f"{lesson}.ipynb").read_bytes() == \
            (REPO / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()
    assert "jupyter lab my-lessons\n" in done.stdout
    assert f"mnistloc check my-lessons/{FIRST}/{FIRST}.ipynb" in done.stdout


def test_a_second_fetch_keeps_the_students_work_and_says_so(tmp_path):
    _lessons(tmp_path, "my-lessons")
    mine = tmp_path / "my-lessons" / FIRST / f"{FIRST}.ipynb"
    mine.write_text(mine.read_text().replace("raise NotImplementedError()", "return None  # my answer", 1))
    work = mine.read_bytes()
    done = _lessons(tmp_path, "my-lessons")
    assert done.returncode == 0 and done.stderr == ""
    assert mine.read_bytes() == work
    assert f"kept yours  {FIRST}/{FIRST}.ipynb: it differs from this release, so it was not touched; " \
           f"the release's copy is {FIRST}/{FIRST}.new.ipynb" in done.stdout
    assert (mine.parent / f"{FIRST}.new.ipynb").read_bytes() == course.lesson_bytes(FIRST)
    assert "up to date" in done.stdout and "copied" not in done.stdout


def test_a_file_as_the_folder_is_an_error_that_names_it(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    done = _lessons(tmp_path, "notes.txt")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("mnistloc lessons: error: `folder` should be a folder for the lessons. "
                                   "Got notes.txt, which is a file")


def test_the_command_is_listed_in_the_help(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mnistloc", "--help"], capture_output=True, text=True, timeout=60)
    assert "lessons" in done.stdout and "never overwriting your work" in done.stdout
