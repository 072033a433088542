"""Writes ``mnistloc/course_files/sample_class.json``, the demo's sample class, from ``tests/corpus/``.

The demo grades five students of lesson 1 (``mnistloc.demo``). The package cannot read ``tests/`` (a wheel
has no such folder), so it ships only each student's answer cells: the cells of a corpus notebook that
differ from the released lesson 1. ``mnistloc.course.sample_notebook`` puts them back into the package's
lesson 1, which gives the corpus notebook again (``tests/test_course.py`` checks both). Rebuild after
``tests/corpus/build.py``:

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


def _answers(notebook: dict) -> dict[str, str]:
    return {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in notebook["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def build() -> dict:
    """The sample class: ``lesson`` and ``students`` (student -> ``case``, ``why``, ``answers``)."""
    release = _answers(json.loads((REPO / "lessons" / LESSON / f"{LESSON}.ipynb").read_text()))
    expected = json.loads((CORPUS / "expected.json").read_text())
    students = {}
    for student, case in STUDENTS.items():
        mine = _answers(json.loads((CORPUS / case / f"{LESSON}.ipynb").read_text()))
        students[student] = {"case": case, "why": expected[case]["why"],
                             "answers": {k: v for k, v in mine.items() if v != release.get(k)}}
    return {"lesson": LESSON, "students": students}


def main() -> int:
    TARGET.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {TARGET.relative_to(REPO)}: {len(STUDENTS)} students of lesson {LESSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
