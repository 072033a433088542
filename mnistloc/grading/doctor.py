"""What is structurally wrong with a lesson notebook, and how to fix it, before it is submitted.

nbgrader grades a notebook by its graded cells (``metadata.nbgrader.grade_id``):
an exercise's answer cell ``<name>`` and its locked test cell ``test_<name>``.
A notebook breaks when a graded cell is deleted, duplicated, or turned into
markdown, when a locked cell is edited (nbgrader stores a checksum of each in
its metadata), when the file is not JSON, is another nbformat version, or was
renamed. ``diagnose(path)`` finds each of these and says how to repair it; the
grader (``mnistloc grade``) reports the same findings as reasons.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from mnistloc.grading.notebook import FRESH_COPY, Finding, cells_by_id, grade_id, lesson_of, load, source
from mnistloc.grading.registry import exercises_of


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Everything ``diagnose`` found.

    Attributes:
        path: the notebook.
        lesson: the lesson id it belongs to, or None when it cannot tell.
        findings: list[Finding], empty when the notebook is fine.
        readable: False when there is no notebook to grade at all (missing file, not JSON,
            another nbformat major version, not a notebook).
        notebook: the parsed notebook (nbformat 4 dict), or None when not readable.
    """

    path: Path
    lesson: str | None
    findings: tuple
    readable: bool
    notebook: dict | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"path": str(self.path), "lesson": self.lesson, "ok": self.ok, "readable": self.readable,
                "findings": [f.to_dict() for f in self.findings]}


def diagnose(path, *, lesson: str | None = None, data: bytes | None = None) -> Diagnosis:
    """Finds what is structurally wrong with the notebook at ``path``.

    Args:
        path: a ``.ipynb`` file (only read, never written).
        lesson: the lesson it should be (default: from the file name, else from its cells).
        data: the file's bytes, when already read (then ``path`` is not read again).

    Returns:
        Diagnosis.
    """
    path = Path(path)
    nb, found = load(path, data)
    if nb is None:
        return Diagnosis(path, lesson or lesson_of(path, None), tuple(found), False)
    lesson = lesson or lesson_of(path, nb)
    found += _renamed(path, lesson)
    found += _graded_cells(nb, lesson)
    found += _edited_locked_cells(nb, lesson)
    return Diagnosis(path, lesson, tuple(found), True, nb)


def _renamed(path: Path, lesson: str | None) -> list[Finding]:
    if lesson is None:
        return [Finding("unknown-lesson", path.name, "no graded cell of any lesson is left, so this is not a lesson "
                        "notebook (or every graded cell was deleted).", FRESH_COPY.format(lesson="<lesson>") + ".")]
    if path.stem != lesson:
        return [Finding("renamed", path.name, f"this is lesson {lesson}, but nbgrader collects only {lesson}.ipynb; "
                        "a renamed file is not graded.", f"rename the file back to {lesson}.ipynb.")]
    return []


def _graded_cells(nb: dict, lesson: str | None) -> list[Finding]:
    """Deleted, duplicated and retyped answer and test cells; answers pasted into new cells."""
    by_id = cells_by_id(nb)
    fresh = FRESH_COPY.format(lesson=lesson)
    found = []
    for gid, cells in by_id.items():
        if len(cells) > 1:
            where = ", ".join(f"cell {i + 1}" for i, _ in cells)
            found.append(Finding("duplicated", gid, f"the graded cell {gid!r} appears {len(cells)} times ({where}); "
                                 "nbgrader refuses the notebook.",
                                 "delete the copies you made (keep the original one, in its place), or " + fresh + "."))
    for name in exercises_of(lesson, held=by_id):
        for gid, role in ((name, "answer"), (f"test_{name}", "test")):
            cells = by_id.get(gid, [])
            if not cells:
                pasted = role == "answer" and _defines_without_metadata(nb, name)
                found.append(Finding("deleted", gid, f"the {role} cell of `{name}` (grade id {gid!r}) is gone" +
                                     (f"; `def {name}(` is in cell {pasted}, a new cell nbgrader does not grade"
                                      if pasted else "") + ".",
                                     "undo the deletion (Edit > Undo Delete Cells), or " + fresh + "."))
            elif any(c.get("cell_type") != "code" for _, c in cells):
                i, cell = next((i, c) for i, c in cells if c.get("cell_type") != "code")
                found.append(Finding("retyped", gid, f"the {role} cell of `{name}` (cell {i + 1}) is now "
                                     f"{cell.get('cell_type')}, so its code never runs in your notebook "
                                     "(nbgrader turns it back into code when grading).",
                                     "select the cell and change its type back to Code (press Y in command mode)."))
    return found


def _defines_without_metadata(nb: dict, name: str) -> int | None:
    pattern = re.compile(rf"^def {re.escape(name)}\(", re.M)
    for i, cell in enumerate(nb["cells"]):
        if grade_id(cell) is None and cell.get("cell_type") == "code" and pattern.search(source(cell)):
            return i + 1
    return None


def checksum(cell: dict) -> str:
    """nbgrader's checksum of a graded or locked cell (``nbgrader.utils.compute_checksum``, without
    importing nbgrader, which takes 3 s): md5 of source, type, grade/solution/locked flags, id and points."""
    meta = cell["metadata"]["nbgrader"]
    grade, solution = meta.get("grade", False), meta.get("solution", False)
    locked = False if solution else (True if grade else meta.get("locked", False))
    parts = [source(cell), cell.get("cell_type", ""), str(grade), str(solution), str(locked), meta["grade_id"]]
    if grade:
        parts.append(str(float(meta["points"])))
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest()


def _edited_locked_cells(nb: dict, lesson: str | None) -> list[Finding]:
    """Locked cells whose checksum (stored by nbgrader in their metadata) no longer matches."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict) or "checksum" not in meta or "grade_id" not in meta:
            continue
        if meta.get("solution", False) or not (meta.get("locked", False) or meta.get("grade", False)):
            continue  # answers are meant to change
        try:
            same = checksum(cell) == meta["checksum"]
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            found.append(Finding("edited", meta["grade_id"], f"the read-only cell {meta['grade_id']!r} (cell {i + 1}) "
                                 "was changed; nbgrader puts the original back when grading, so the change is lost.",
                                 "copy the original cell back from a fresh copy of the lesson "
                                 f"(lessons/{lesson}/{lesson}.ipynb); write only in the answer cells."))
    return found


def format_report(diagnosis: Diagnosis) -> str:
    """A human report: one block per finding, or a line saying all is well."""
    if diagnosis.ok:
        return f"{diagnosis.path}: lesson {diagnosis.lesson}: no structural problem found."
    head = f"{diagnosis.path}: {len(diagnosis.findings)} problem(s)" + (
        f" (lesson {diagnosis.lesson})" if diagnosis.lesson else "")
    return "\n".join([head, *(str(f) for f in diagnosis.findings)])
