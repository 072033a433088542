"""Reading a lesson notebook, never running it: the one reader every grading tool uses.

A lesson (``lessons/<lesson>/<lesson>.ipynb``, or a student's copy) marks each
exercise's answer cell with nbgrader metadata ``grade_id == <exercise name>``
and its graded test cell with ``grade_id == "test_<exercise name>"``
(``solutions/build.py``).

- ``load(path, data=None) -> (notebook dict or None, findings)``: parses the file (or
  its bytes, already read) as nbgrader would (nbformat 3 converted), validates the
  schema, and says what is unreadable.
- ``grade_id(cell)``, ``source(cell)``, ``cells_by_id(nb)``: the graded cells.
- ``lesson_of(path, nb)``: which lesson a notebook is: its name's (file or folder), else
  its graded cells' (``lesson_from_name``, ``lesson_from_cells``).
- ``NotALessonError``: what front ends raise for a file that is no lesson.
- ``Finding``: one structural problem and its fix (``mnistloc.grading.doctor`` finds them all).

``mnistloc.grading.judge.read_answers`` builds on these: the code of each answer
cell, or why it cannot be graded, by the same rule for every front end.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mnistloc.grading.registry import LESSONS, exercises_of

FRESH_COPY = ("get a fresh copy of the lesson (lessons/{lesson}/{lesson}.ipynb, or `nbgrader fetch_assignment "
              "{lesson}` into another folder) and copy your code into its answer cells")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (a short key), ``where`` (cell or file), ``problem`` and ``fix`` (plain sentences)."""

    kind: str
    where: str
    problem: str
    fix: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}\n    fix: {self.fix}"


class NotALessonError(ValueError):
    """The file is not JSON, not a Jupyter notebook, or not an mnistloc lesson."""


def grade_id(cell) -> str | None:
    """The nbgrader ``grade_id`` of a cell, or None (also for malformed cells and metadata)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg.get("grade_id") if isinstance(nbg, dict) else None


def source(cell: dict) -> str:
    """A cell's code as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def cells_by_id(nb: dict) -> dict[str, list[tuple[int, dict]]]:
    """grade id -> the ``(index, cell)`` pairs that carry it, in notebook order."""
    found: dict[str, list] = {}
    for i, cell in enumerate(nb["cells"]):
        gid = grade_id(cell)
        if gid is not None:
            found.setdefault(gid, []).append((i, cell))
    return found


def load(path, data: bytes | None = None) -> tuple[dict | None, list[Finding]]:
    """The notebook as an nbformat 4 dict (nbformat 3 converted, as nbgrader does), or None; and findings.

    Args:
        path: the ``.ipynb`` file; only read, and not at all when ``data`` is given.
        data: its bytes, when the caller has read them already (the grader reads a submission once,
            under a size cap and a timeout: ``mnistloc.grading.grade.read_submission``).
    """
    path = Path(path)
    where = path.name
    if data is None and not path.exists():
        return None, [Finding("missing", where, f"there is no file {path}.",
                              "save the lesson notebook under its original name in the lesson's folder.")]
    try:
        text = (path.read_bytes() if data is None else data).decode("utf-8")
        nb = json.loads(text)
    except UnicodeDecodeError:
        return None, [Finding("not-json", where, "the file is not text (not UTF-8), so not a notebook.",
                              "restore it: in JupyterLab, File > Reload Notebook from Disk or a checkpoint "
                              "(.ipynb_checkpoints/), else " + FRESH_COPY.format(lesson="<lesson>") + ".")]
    except json.JSONDecodeError as err:
        return None, [Finding("not-json", where, f"the file is not valid JSON (line {err.lineno}, column "
                              f"{err.colno}: {err.msg}); it was cut short or edited as text.",
                              "restore the last good version from .ipynb_checkpoints/ (File > Revert Notebook to "
                              "Checkpoint in JupyterLab), or " + FRESH_COPY.format(lesson="<lesson>") + ".")]
    major = nb.get("nbformat") if isinstance(nb, dict) else None
    convert = (f"convert it: `jupyter nbconvert --to notebook --nbformat 4 --output {path.stem}.v4 {path.name}`, "
               f"check it, then rename it to {path.name}.")
    if major == 3:
        import nbformat

        try:
            nb = json.loads(json.dumps(nbformat.reads(text, as_version=4)))
        except Exception as err:  # noqa: BLE001 - any failure to convert means unreadable
            return None, [Finding("nbformat", where, f"the notebook is nbformat 3 and cannot be converted ({err}).",
                                  convert)]
        old = Finding("nbformat", where, "the notebook is nbformat 3; nbgrader converts it to 4 when grading, "
                      "and so does this grader, but other tools may not.", convert)
        return nb, [old] + ([f] if (f := _schema(nb, where)) else [])
    if major is not None and major != 4:
        return None, [Finding("nbformat", where, f"the notebook is nbformat {major}.{nb.get('nbformat_minor')}; "
                              "nbgrader reads nbformat 3 and 4 only.", convert)]
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, [Finding("not-notebook", where, "the file is JSON but not a notebook (no list of cells).",
                              FRESH_COPY.format(lesson="<lesson>") + ".")]
    return nb, [f] if (f := _schema(nb, where)) else []


def _schema(nb: dict, where: str) -> Finding | None:
    import warnings

    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate cell ids: "Corrected" in this copy only
            nbformat.validate(nbformat.from_dict(json.loads(json.dumps(nb))))
    except nbformat.ValidationError as err:
        return Finding("schema", where, f"the notebook breaks the nbformat 4 schema: {str(err).splitlines()[0]}",
                       "open it in JupyterLab and save it again; if that fails, " +
                       FRESH_COPY.format(lesson="<lesson>") + ".")
    return None


def lesson_of(path: Path, nb: dict | None) -> str | None:
    """The one rule for which lesson a notebook is: the lesson its file or folder is named after, else (a
    renamed copy) the lesson whose exercises its graded cells name most; None when neither says."""
    return lesson_from_name(path) or (lesson_from_cells(nb) if nb is not None else None)


def lesson_from_name(path: Path) -> str | None:
    """The lesson the file or its folder is named after, or None."""
    for name in (path.stem, path.parent.name):
        if name in LESSONS:
            return name
    return None


def lesson_from_cells(nb: dict) -> str | None:
    """The lesson whose exercises the notebook's graded cells name most often."""
    ids = {grade_id(c) for c in nb["cells"]}
    best = max(LESSONS, key=lambda lesson: len(ids & set(exercises_of(lesson, held=ids))), default=None)
    return best if best is not None and ids & set(exercises_of(best, held=ids)) else None
