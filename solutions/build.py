"""Writes the nbgrader source notebooks ``solutions/<lesson>/<lesson>.ipynb`` from ``lessons_src/``.

The notebooks are the source of truth that ``nbgrader generate_assignment``
turns into ``lessons/`` (``make lessons``); this script only saves typing the
nbgrader cell metadata by hand. Run it after editing a lesson's text:

    .venv/bin/python solutions/build.py          # rewrites solutions/*/*.ipynb
    make lessons                                 # regenerates lessons/ from them

Cell conventions (the contract between the lessons and ``mnistloc.checks``):
- an exercise's solution cell is an autograded answer with ``grade_id`` = the
  function's name, self-contained given ``mnistloc.checks.PRELUDE``;
- its test cell right after it has ``grade_id`` = ``test_<name>``, the
  exercise's points, is locked, and runs the public check, plus hidden
  secret-seed checks that the release does not contain;
- a written question's answer cell (``question:NAME``) is a markdown cell graded by hand: nbgrader's
  manually graded answer, ``grade_id`` = the question's name, its points from
  ``mnistloc.grading.registry.QUESTIONS``; it holds a model answer, which the release replaces with
  "YOUR ANSWER HERE"; the question itself is in the markdown cell before it;
- cells that train are tagged ``train``; the setup cell is locked.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.dont_write_bytecode = True  # no __pycache__ in the nbgrader source folder
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from lessons_src import LESSONS  # noqa: E402

from mnistloc.checks import EXERCISES  # noqa: E402
from mnistloc.grading.registry import QUESTIONS, exercises_of, questions_of  # noqa: E402

KERNEL = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
          "language_info": {"name": "python", "pygments_lexer": "ipython3"}}


def _nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _cell(kind: str, text: str, lesson: str, i: int):
    """One cell from the lesson source: ``md``, ``code``, ``setup``, ``train``, ``solution:NAME``, ``test:NAME``,
    ``question:NAME``."""
    cid = f"{lesson[:2]}-{i:02d}"
    text = text.strip("\n")
    if kind == "md":
        return nbformat.v4.new_markdown_cell(text, id=cid)
    if kind.startswith("question:"):
        name = kind.split(":")[1]
        cell = nbformat.v4.new_markdown_cell(text, id=cid)
        cell.metadata.update(_nbgrader(name, solution=True, grade=True, points=QUESTIONS[name].points))
        return cell
    cell = nbformat.v4.new_code_cell(text, id=cid)
    if kind == "setup":
        cell.metadata.update(_nbgrader("setup", locked=True))
    elif kind == "train":
        cell.metadata["tags"] = ["train"]
    elif kind.startswith("solution:"):
        name = kind.split(":")[1]
        if f"def {name}(" not in text:
            raise ValueError(f"{lesson}: the solution cell of {name!r} does not define {name}()")
        cell.metadata.update(_nbgrader(name, solution=True))
    elif kind.startswith("test:"):
        name = kind.split(":")[1]
        cell.metadata.update(_nbgrader(f"test_{name}", grade=True, locked=True, points=EXERCISES[name].points))
    elif kind != "code":
        raise ValueError(f"{lesson}: unknown cell kind {kind!r}")
    return cell


def build(lesson: str, cells: list) -> nbformat.NotebookNode:
    """The notebook of one lesson from its ``(kind, text)`` cells."""
    nb = nbformat.v4.new_notebook(metadata=dict(KERNEL))
    nb.cells = [_cell(kind, text, lesson, i) for i, (kind, text) in enumerate(cells)]
    named = {k.split(":")[1] for k, _ in cells if k.startswith(("solution:", "test:"))}
    wanted = set(exercises_of(lesson))  # the lesson's exercises now (retired ones only in notebooks released before)
    if named != wanted:
        raise ValueError(f"{lesson}: exercises in the notebook {sorted(named)} != registry.exercises_of "
                         f"{sorted(wanted)}")
    asked = [k.split(":")[1] for k, _ in cells if k.startswith("question:")]
    if asked != questions_of(lesson):
        raise ValueError(f"{lesson}: questions in the notebook {asked} != registry.QUESTIONS {questions_of(lesson)}")
    nbformat.validate(nb)
    return nb


def main() -> int:
    for lesson, cells in LESSONS.items():
        path = HERE / lesson / f"{lesson}.ipynb"
        path.parent.mkdir(exist_ok=True)
        nbformat.write(build(lesson, cells), str(path))
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
