"""The course files the package ships (``mnistloc.course``): the lessons, the nbgrader configuration, the demo's
sample class, and fetching the lessons into a student's folder without overwriting their work."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import sample_class
from mnistloc import course

REPO = Path(__file__).resolve().parents[1]


LESSON = "01-single-digit"


def _id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _release(lesson: str) -> bytes:
    return (REPO / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()


# ---- what ships -------------------------------------------------------------------------------------------

def test_the_package_ships_the_repository_lessons_byte_for_byte():
    assert course.lesson_ids() == sorted(p.name for p in (REPO / "lessons").iterdir() if p.is_dir())
    for lesson in course.lesson_ids():
        assert course.lesson_bytes(lesson) == _release(lesson)


def test_git_holds_links_not_second_copies_of_the_lessons_and_the_config():
    """One copy of the bytes in git: the package's lessons and nbgrader configuration are symbolic links (mode
    120000) to lessons/ and grader/, and the package's code never climbs out of the package to find them."""
    listed = subprocess.run(["git", "ls-files", "-s", "mnistloc/course_files"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    modes = {line.split("\t")[1]: line.split()[0] for line in listed}
    assert modes.get("mnistloc/course_files/lessons") == "120000", listed
    assert modes.get("mnistloc/course_files/nbgrader_config.py") == "120000", listed
    assert not any(name.endswith(".ipynb") for name in modes)
    for source in (REPO / "mnistloc").rglob("*.py"):
        text = source.read_text()
        assert "parents[2]" not in text or source.name in ("grade.py", "confine.py"), source  # see the note below
        assert '"tests"' not in text and "'tests'" not in text, f"{source} reaches into tests/"
    # grade.py's parents[2] walks up inside a course folder (submitted/<student>/<lesson>/...), and confine.py's is
    # the folder that imports the package (site-packages for a wheel), which the sandbox's child puts on sys.path.


def test_an_installation_without_its_lessons_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "FILES", tmp_path)
    with pytest.raises(FileNotFoundError, match="This installation of mnistloc has no lessons .*reinstall"):
        course.lesson_ids()


def test_lesson_bytes_names_an_unknown_lesson():
    with pytest.raises(ValueError, match=r"`lesson` should be one of \['01-single-digit'.*Got lesson='06-nope'"):
        course.lesson_bytes("06-nope")


def test_the_shipped_nbgrader_configuration_is_the_graders():
    with course.nbgrader_config() as path:
        assert path.read_bytes() == (REPO / "grader" / "nbgrader_config.py").read_bytes()


def test_the_gradebook_of_a_course_without_its_own_configuration_uses_the_shipped_one(tmp_path):
    from mnistloc.grading import results

    url, course_id = results._gradebook_url(tmp_path)
    assert course_id == "mnistloc"  # c.CourseDirectory.course_id of grader/nbgrader_config.py
    assert url == f"sqlite:///{tmp_path.resolve()}/gradebook.db"


# ---- the demo's sample class ------------------------------------------------------------------------------

def test_the_shipped_sample_class_is_current_with_the_corpus():
    assert course.sample_class() == sample_class.build(), (
        "mnistloc/course_files/sample_class.json is stale: run .venv/bin/python tests/sample_class.py")


@pytest.mark.parametrize("student", sorted(sample_class.STUDENTS))
def test_a_sample_notebook_is_the_release_with_the_corpus_students_answers(student):
    corpus = json.loads((REPO / "tests" / "corpus" / sample_class.STUDENTS[student] / f"{LESSON}.ipynb").read_text())
    mine, release = course.sample_notebook(student), json.loads(_release(LESSON))
    written = sample_class.answers(mine)
    assert written == sample_class.answers(corpus) and written  # the corpus's answers, every one
    assert [_id(c) for c in mine["cells"]] == [_id(c) for c in release["cells"]]
    for cell, released in zip(mine["cells"], release["cells"]):  # the rest is the current release
        assert cell == released or (_id(cell) in written and {**cell, "source": released["source"]} == released)


def test_the_sample_class_has_a_correct_a_partial_and_cheating_students():
    students = course.sample_class()["students"]
    answered = {name: set(s["answers"]) for name, s in students.items()}
    code_answers = {_id(c) for c in json.loads(_release(LESSON))["cells"]
                    if c["cell_type"] == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    assert answered["ada-correct"] == code_answers  # every exercise of the lesson
    assert answered["bo-partial"] == {"place_digit", "tight_box"}
    assert all(s["why"] for s in students.values())


def test_sample_notebook_names_an_unknown_student():
    with pytest.raises(ValueError, match="`student` should be one of .*Got student='zed'"):
        course.sample_notebook("zed")


# ---- fetching the lessons ---------------------------------------------------------------------------------

def test_fetch_into_a_new_folder_copies_every_lesson(tmp_path):
    done = course.fetch_lessons(tmp_path / "mine")
    names = [f"{lesson}/{lesson}.ipynb" for lesson in course.lesson_ids()]
    assert done.copied == names and not (done.current or done.kept or done.blocked)
    for lesson in course.lesson_ids():
        assert (tmp_path / "mine" / lesson / f"{lesson}.ipynb").read_bytes() == _release(lesson)


def test_fetch_again_keeps_a_students_work_and_puts_the_release_beside_it(tmp_path):
    course.fetch_lessons(tmp_path)
    first, second = course.lesson_ids()[:2]
    mine = tmp_path / first / f"{first}.ipynb"
    mine.write_text('{"my": "work"}')
    (tmp_path / second / f"{second}.ipynb").unlink()
    done = course.fetch_lessons(tmp_path)
    assert mine.read_text() == '{"my": "work"}'  # never overwritten
    assert done.kept == [(f"{first}/{first}.ipynb", f"{first}/{first}.new.ipynb")]
    assert (tmp_path / first / f"{first}.new.ipynb").read_bytes() == _release(first)
    assert done.copied == [f"{second}/{second}.ipynb"] and len(done.current) == len(course.lesson_ids()) - 2
    again = course.fetch_lessons(tmp_path)  # the .new copy is this release's: the same report, nothing written
    assert again.kept == done.kept and not again.copied


def test_fetch_writes_nothing_when_the_new_name_holds_other_bytes_too(tmp_path):
    course.fetch_lessons(tmp_path)
    first = course.lesson_ids()[0]
    (tmp_path / first / f"{first}.ipynb").write_text("mine")
    (tmp_path / first / f"{first}.new.ipynb").write_text("also mine")
    done = course.fetch_lessons(tmp_path)
    assert done.blocked == [(f"{first}/{first}.ipynb", f"{first}/{first}.new.ipynb")] and not done.kept
    assert (tmp_path / first / f"{first}.new.ipynb").read_text() == "also mine"
    text = course.format_fetched(done)
    assert f"rename {first}/{first}.new.ipynb and run this again" in text


def test_fetch_refuses_a_file_as_the_folder(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError, match="`folder` should be a folder for the lessons. Got .*f, which is a file"):
        course.fetch_lessons(tmp_path / "f")


def test_the_message_says_what_was_kept_and_how_to_open_the_lessons(tmp_path):
    course.fetch_lessons(tmp_path)
    first = course.lesson_ids()[0]
    (tmp_path / first / f"{first}.ipynb").write_text("mine")
    text = course.format_fetched(course.fetch_lessons(tmp_path))
    assert f"kept yours  {first}/{first}.ipynb: it differs from this release, so it was not touched; the " \
           f"release's copy is {first}/{first}.new.ipynb" in text
    assert "Your work is never overwritten" in text
    assert f"jupyter lab {tmp_path}\n" in text and f"mnistloc check {tmp_path / first / first}.ipynb" in text
