"""The course files that ship inside the package, and fetching the lessons into a student's folder.

Everything here is package data under ``mnistloc/course_files/``, read with ``importlib.resources``,
so it works the same from a wheel (pip, Colab, a JupyterHub image) and from a clone:

- ``lessons/``: the released lessons, one folder each (``01-single-digit/01-single-digit.ipynb``);
- ``nbgrader_config.py``: the course's nbgrader configuration;
- ``sample_class.json``: the demo's sample class: for each student, the answer cells that turn the
  released lesson 1 into their submission.

In a clone, ``lessons`` and ``nbgrader_config.py`` are symbolic links to the repository's ``lessons/``
(generated from ``solutions/`` by ``make lessons``) and ``grader/nbgrader_config.py``: one copy of the
bytes in git, and building the wheel copies what they point at into it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from importlib import resources
from pathlib import Path

FILES = resources.files("mnistloc") / "course_files"
NEW = ".new"  # the release's copy of a lesson kept beside the student's: 01-single-digit.new.ipynb


def lesson_ids() -> list[str]:
    """The released lessons, in order: ``["01-single-digit", "02-presence", ...]``.

    Raises:
        FileNotFoundError: the package was installed without its lessons.
    """
    folder = FILES / "lessons"
    if not folder.is_dir():
        raise FileNotFoundError(f"This installation of mnistloc has no lessons (no folder {folder}): reinstall the "
                                "package; in a clone, lessons/ must exist (`make lessons` makes it)")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[:2].isdigit())


def lesson_bytes(lesson: str) -> bytes:
    """The released notebook of ``lesson`` (``"01-single-digit"``), as shipped.

    Raises:
        ValueError: ``lesson`` is not a released lesson.
    """
    if lesson not in lesson_ids():
        raise ValueError(f"`lesson` should be one of {lesson_ids()}. Got lesson={lesson!r}")
    return (FILES / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()


@contextlib.contextmanager
def nbgrader_config():
    """The course's nbgrader configuration as a file on disk (for traitlets' loader), for a ``with`` block.

    Yields:
        Path: ``.../nbgrader_config.py``.
    """
    with resources.as_file(FILES / "nbgrader_config.py") as path:
        yield Path(path)


# ---- the lessons in a student's folder ------------------------------------------------------------------

@dataclasses.dataclass
class Fetched:
    """What ``fetch_lessons`` did, each file as a path relative to ``folder``.

    Attributes:
        folder: where the lessons are.
        copied: notebooks written (they were missing).
        current: notebooks already there, identical to this release.
        kept: (the student's notebook, the release's copy beside it) for a notebook that differs from this
            release (the student's work, or an older release): it is left alone and the release's copy goes
            beside it, ``NAME.new.ipynb``.
        blocked: notebooks that differ from this release and whose ``NAME.new.ipynb`` also exists and differs:
            nothing was written for them.
    """

    folder: Path
    copied: list[str] = dataclasses.field(default_factory=list)
    current: list[str] = dataclasses.field(default_factory=list)
    kept: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    blocked: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def fetch_lessons(folder) -> Fetched:
    """Copies the released lessons into ``folder`` (``folder/01-single-digit/01-single-digit.ipynb``, ...),
    never overwriting a file.

    A notebook that exists and differs from the release is the student's: it stays, and the release's copy
    is written beside it as ``NAME.new.ipynb`` (unless that name is taken by other bytes too).

    Args:
        folder: a folder (created if missing).

    Returns:
        Fetched: what was copied, already current, kept or blocked.

    Raises:
        FileExistsError: ``folder`` (or a lesson's folder in it) exists and is not a folder.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"`folder` should be a folder for the lessons. Got {folder}, which is a file")
    done = Fetched(folder)
    for lesson in lesson_ids():
        release, name = lesson_bytes(lesson), f"{lesson}/{lesson}.ipynb"
        target = folder / name
        if target.parent.exists() and not target.parent.is_dir():
            raise FileExistsError(f"{target.parent} should be the folder of lesson {lesson}, but it is a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if _write_new(target, release):
            done.copied.append(name)
        elif target.read_bytes() == release:
            done.current.append(name)
        else:
            beside = f"{lesson}/{lesson}{NEW}.ipynb"
            if _write_new(folder / beside, release) or (folder / beside).read_bytes() == release:
                done.kept.append((name, beside))
            else:
                done.blocked.append((name, beside))
    return done


def _write_new(path: Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` if no file is there (atomically: never over one); whether it wrote."""
    try:
        with open(path, "xb") as f:
            f.write(data)
    except FileExistsError:
        return False
    return True


def format_fetched(done: Fetched) -> str:
    """What ``fetch_lessons`` did and how to open the lessons, for a person."""
    folder, first = done.folder, f"{lesson_ids()[0]}/{lesson_ids()[0]}.ipynb"
    lines = [f"The {len(lesson_ids())} lessons of mnistloc {_version()} in {folder}/:"]
    lines += [f"  copied      {name}" for name in done.copied]
    lines += [f"  up to date  {name}" for name in done.current]
    for name, beside in done.kept:
        lines.append(f"  kept yours  {name}: it differs from this release, so it was not touched; "
                     f"the release's copy is {beside}")
    for name, beside in done.blocked:
        lines.append(f"  kept yours  {name}: it differs from this release, and so does {beside}, so nothing was "
                     f"written; rename {beside} and run this again for the release's copy")
    if done.kept or done.blocked:
        lines.append("Your work is never overwritten: compare the .new copy with yours and move over what you need.")
    lines += ["Open them in JupyterLab:", f"  jupyter lab {folder}",
              f"then {first} (run its cells from the top). Check a lesson without Jupyter:",
              f"  mnistloc check {folder / first}"]
    return "\n".join(lines)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mnistloc")
    except metadata.PackageNotFoundError:  # run from a clone without installing it
        return "(not installed)"


# ---- the demo's sample class --------------------------------------------------------------------------------

def sample_class() -> dict:
    """The demo's sample class of lesson 1 (``sample_class.json``).

    Returns:
        dict: ``lesson`` (``"01-single-digit"``) and ``students``: student -> ``{"case", "why", "answers"}``,
        ``answers`` mapping an answer cell's grade id to the code the student wrote there.
    """
    return json.loads((FILES / "sample_class.json").read_text())


def sample_notebook(student: str) -> dict:
    """A student's notebook of the sample class: the released lesson with that student's answer cells.

    Returns:
        dict: the notebook (nbformat 4 JSON).

    Raises:
        ValueError: ``student`` is not in the sample class, or an answer names a cell the lesson lacks.
    """
    sample = sample_class()
    if student not in sample["students"]:
        raise ValueError(f"`student` should be one of {sorted(sample['students'])}. Got student={student!r}")
    notebook = json.loads(lesson_bytes(sample["lesson"]))
    answers = dict(sample["students"][student]["answers"])
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell["source"] = answers.pop(grade_id).splitlines(keepends=True)
    if answers:
        raise ValueError(f"the sample answers of {student} name cells that lesson {sample['lesson']} does not have: "
                         f"{sorted(answers)}")
    return notebook


def write_sample_notebook(student: str, path) -> Path:
    """Writes ``sample_notebook(student)`` to ``path`` (as ``json.dumps(indent=1)``, nbformat's layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sample_notebook(student), indent=1) + "\n")
    return path
