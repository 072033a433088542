"""Reading a lesson notebook: which lesson it is and the code of each exercise's answer cell.

A lesson (``lessons/<lesson>/<lesson>.ipynb``, or a student's copy) marks each
exercise's answer cell with nbgrader metadata ``grade_id == <exercise name>``
and its graded test cell with ``grade_id == "test_<exercise name>"``
(``solutions/build.py``). ``read_lesson`` finds those cells, never runs
anything, and lists what is structurally wrong (a deleted, duplicated or
retyped answer or test cell) so that tools can say so instead of crashing.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mnistloc.checking import LESSONS


class NotALessonError(ValueError):
    """The file is not JSON, not a Jupyter notebook, or not an mnistloc lesson."""


@dataclasses.dataclass(frozen=True)
class Lesson:
    """What a lesson notebook holds.

    Attributes:
        path: the file read.
        lesson: the lesson id, e.g. ``"01-single-digit"``.
        sources: exercise name -> the code of its answer cell (the first one, if duplicated).
        problems: what is structurally wrong, one sentence each; empty for an intact lesson.
    """

    path: Path
    lesson: str
    sources: dict
    problems: list

    @property
    def exercises(self) -> list:
        """The names of the lesson's exercises, in lesson order."""
        from mnistloc.checks import EXERCISES

        return [name for name, ex in EXERCISES.items() if ex.lesson == self.lesson]


def _cells(path: Path) -> list:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotALessonError(f"{path}: no such file.") from None
    except (UnicodeDecodeError, IsADirectoryError) as err:
        raise NotALessonError(f"{path} is not a notebook: {err}.") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotALessonError(f"{path} is not a notebook: it is not valid JSON ({err}).") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise NotALessonError(f"{path} is not a Jupyter notebook (nbformat 4): it has no list of cells "
                              f"(nbformat={nb.get('nbformat') if isinstance(nb, dict) else None!r}).")
    return [c for c in nb["cells"] if isinstance(c, dict)]


def _grade_id(cell: dict):
    meta = cell.get("metadata")
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg.get("grade_id") if isinstance(nbg, dict) else None


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def read_lesson(path) -> Lesson:
    """Reads a lesson notebook without running it.

    Args:
        path: a ``.ipynb`` file.

    Returns:
        Lesson.

    Raises:
        NotALessonError: the file is missing, not JSON, not a notebook, or holds no exercise of any lesson
            (and is not named after one).
    """
    from mnistloc.checks import EXERCISES

    path = Path(path)
    cells = _cells(path)
    found: dict[str, list] = {}
    for cell in cells:
        gid = _grade_id(cell)
        name = gid[5:] if isinstance(gid, str) and gid.startswith("test_") else gid
        if name in EXERCISES:
            found.setdefault(gid, []).append(cell)
    lessons = [EXERCISES[gid.removeprefix("test_")].lesson for gid in found]
    if lessons:
        lesson = max(set(lessons), key=lambda lid: (lessons.count(lid), lid == path.stem))
    elif path.stem in LESSONS:
        lesson = path.stem
    else:
        raise NotALessonError(f"{path} is a notebook but not an mnistloc lesson: none of its cells is an "
                              f"exercise (nbgrader grade_id such as 'iou'). The lessons are {', '.join(LESSONS)}.")
    sources, problems = {}, []
    for name in (n for n, ex in EXERCISES.items() if ex.lesson == lesson):
        answer, test = found.get(name, []), found.get(f"test_{name}", [])
        for what, group in (("answer cell", answer), ("test cell", test)):
            if not group:
                problems.append(f"{name}: its {what} is missing (deleted, or its nbgrader metadata removed).")
            elif len(group) > 1:
                problems.append(f"{name}: its {what} appears {len(group)} times (duplicated); "
                                f"only the first is checked here, but `mnistloc grade` and nbgrader score it 0: "
                                f"delete the copies.")
            if group and group[0].get("cell_type") != "code":
                problems.append(f"{name}: its {what} was changed into a {group[0].get('cell_type')} cell; "
                                f"it must be a code cell.")
        if answer and answer[0].get("cell_type") == "code":
            sources[name] = _source(answer[0])
    return Lesson(path=path, lesson=lesson, sources=sources, problems=problems)
