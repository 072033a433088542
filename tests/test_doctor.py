"""`mnistloc doctor` names each structural problem of a lesson notebook and how to fix it."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import compute_checksum

from mnistloc import cli
from mnistloc.grading import doctor

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
LESSON = "01-single-digit"
RELEASE = REPO / "lessons" / LESSON / f"{LESSON}.ipynb"

# What each broken corpus file is; every other corpus notebook is structurally fine (its code is the problem).
BROKEN = {"not_json": ["not-json"], "nbformat3": ["nbformat"], "renamed": ["renamed"], "deleted_answer": ["deleted"],
          "deleted_test": ["deleted"], "duplicated": ["duplicated"], "markdown": ["retyped"]}
CASES = {n: e for n, e in json.loads((CORPUS / "expected.json").read_text()).items() if e["file"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_notebooks_get_the_right_findings(case):
    diagnosis = doctor.diagnose(CORPUS / CASES[case]["file"])
    assert [f.kind for f in diagnosis.findings] == BROKEN.get(case, [])
    assert diagnosis.readable == (case != "not_json")  # nbformat 3 is converted, as nbgrader does
    assert all(f.fix for f in diagnosis.findings)


def test_the_release_is_fine_and_named_after_its_lesson():
    diagnosis = doctor.diagnose(RELEASE)
    assert diagnosis.ok and diagnosis.lesson == LESSON


def _edited(tmp_path: Path, change) -> Path:
    nb = json.loads(RELEASE.read_text())
    change(nb["cells"])
    path = tmp_path / f"{LESSON}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _cell(cells, gid):
    return next(c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == gid)


def test_an_edited_read_only_cell_is_found_by_its_checksum(tmp_path):
    def weaken(cells):
        _cell(cells, "test_iou")["source"] = ["pass  # no more checks\n"]
    (finding,) = doctor.diagnose(_edited(tmp_path, weaken)).findings
    assert (finding.kind, finding.where) == ("edited", "test_iou")


def test_an_answer_edited_is_fine(tmp_path):
    def answer(cells):
        _cell(cells, "iou")["source"] = ["def iou(a, b):\n", "    return a\n"]
    assert doctor.diagnose(_edited(tmp_path, answer)).ok


def test_an_answer_pasted_into_a_new_cell_is_pointed_at(tmp_path):
    def paste(cells):
        cell = _cell(cells, "iou")
        cells.insert(cells.index(cell) + 1, {**copy.deepcopy(cell), "id": "pasted", "metadata": {}})
        cells.remove(cell)
    (finding,) = doctor.diagnose(_edited(tmp_path, paste)).findings
    assert finding.kind == "deleted" and "`def iou(` is in cell" in finding.problem


def test_a_missing_file_is_reported(tmp_path):
    diagnosis = doctor.diagnose(tmp_path / f"{LESSON}.ipynb")
    assert [f.kind for f in diagnosis.findings] == ["missing"] and not diagnosis.readable


def test_checksums_agree_with_nbgrader():
    count = 0
    for path in sorted((REPO / "lessons").glob("*/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if "nbgrader" in cell["metadata"]:
                node = nbformat.from_dict({**cell, "source": "".join(cell["source"])})
                assert doctor.checksum(cell) == compute_checksum(node) == cell["metadata"]["nbgrader"]["checksum"]
                count += 1
    assert count >= 4 * 3  # every lesson has at least a setup cell and an answer and a test cell


def test_the_cli_exit_code_and_json(capsys):
    broken = CORPUS / CASES["duplicated"]["file"]
    before = hashlib.sha256(broken.read_bytes()).hexdigest()
    assert cli.main(["doctor", str(RELEASE)]) == 0
    assert "no structural problem" in capsys.readouterr().out
    assert cli.main(["doctor", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["lesson"] == LESSON and [f["kind"] for f in report["findings"]] == ["duplicated"]
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == before  # only read
