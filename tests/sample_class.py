"""Writes ``mnistloc/course_files/sample_class.json``, the demo's sample class, from ``tests/corpus/``.

The demo grades five students of lesson 1 (``mnistloc.demo``). The package cannot read ``tests/`` (a wheel
has no such folder), so it ships only each student's answer cells: the answer cells of a corpus notebook
that are no longer nbgrader's stub. ``mnistloc.course.sample_notebook`` puts them into the package's lesson
1 (the current release, whatever the corpus was built from; ``tests/test_course.py`` checks both). Rebuild
after ``tests/corpus/build.py``:

    .venv/bin/python tests/sample_class.py
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
TARGET = REPO / "mnistloc" / "course_files" / "sample_class.json"
LESSON = "01-single-digit"
STUDENTS = {  # student -> case of tests/corpus/: a correct and a partial notebook, and three that cheat
    "ada-correct": "correct",
    "bo-partial": "partial",
    "cy-hardcoded": "hardcoded_public",
    "di-patches-checks": "monkeypatch_checks",
    "ed-smuggles-reference": "reference_smuggled",
}


STUBS = ("# YOUR CODE HERE", "YOUR ANSWER HERE")  # what nbgrader leaves in an answer cell of the release


def answers(notebook: dict) -> dict[str, str]:
    """The answer cells a student wrote (grade id -> code): every answer cell that is no longer the stub."""
    return {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in notebook["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")
            and not any(stub in "".join(c["source"]) for stub in STUBS)}


def build() -> dict:
    """The sample class: ``lesson`` and ``students`` (student -> ``case``, ``why``, ``answers``)."""
    expected = json.loads((CORPUS / "expected.json").read_text())
    students = {student: {"case": case, "why": expected[case]["why"],
                          "answers": answers(json.loads((CORPUS / case / f"{LESSON}.ipynb").read_text()))}
                for student, case in STUDENTS.items()}
    return {"lesson": LESSON, "students": students}


def main() -> int:
    TARGET.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {TARGET.relative_to(REPO)}: {len(STUDENTS)} students of lesson {LESSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
