"""The package's layout, read from its source: one detector, one home per public name, a data layer that knows
no model, case numbers interpreted in one module, and module maps that list every module there is."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mnistloc"
README = PACKAGE.parent / "README.md"
LIBRARY = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ("__main__.py",))
CASE_SPEC, CLI = "cases.py", "cli.py"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_case(node) -> bool:
    return (isinstance(node, ast.Name) and node.id == "case") or (isinstance(node, ast.Attribute) and node.attr == "case")


def _has_number(node) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_has_number(e) for e in node.elts)


def case_branches(path: Path) -> list[int]:
    """Lines that compare a case with a number: ``case == 5``, ``ds.case in (2, 4)``, ``case != 1``."""
    return [n.lineno for n in ast.walk(_tree(path)) if isinstance(n, ast.Compare)
            and (_is_case(n.left) or any(_is_case(c) for c in n.comparators))
            and any(_has_number(c) for c in [n.left, *n.comparators])]


def test_case_numbers_are_interpreted_in_the_case_spec_only():
    found = {p.name: case_branches(p) for p in LIBRARY + sorted((PACKAGE / "grading").rglob("*.py"))}
    assert {name: lines for name, lines in found.items() if lines and name not in (CASE_SPEC, CLI)} == {}


def test_the_branch_finder_finds_branches(tmp_path):
    """The test above can fail: each way of branching on a case number is caught."""
    source = tmp_path / "m.py"
    source.write_text("if case == 5: pass\nif ds.case in (2, 4): pass\nx = 1 if 3 != case else 0\n"
                      "if case in CASES: pass\nif ds.count == 2: pass\n")
    assert case_branches(source) == [1, 2, 3]


def public_functions(path: Path) -> set[str]:
    return {n.name for n in _tree(path).body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


def test_no_public_function_is_defined_twice_in_the_library():
    homes: dict[str, list[str]] = {}
    for path in LIBRARY:
        for name in public_functions(path):
            homes.setdefault(name, []).append(path.name)
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}


def test_each_detector_part_has_one_home():
    homes = {name: [p.stem for p in LIBRARY if name in public_functions(p)]
             for name in ("heatmap_targets", "box_targets", "encode_targets", "size_sigmas", "find_peaks", "nms",
                          "boxes_from_cells", "refine", "detect", "detections", "decode", "union_box",
                          "order_left_to_right", "left_to_right_order")}
    assert homes == {"heatmap_targets": ["targets"], "box_targets": ["targets"], "encode_targets": ["targets"],
                     "size_sigmas": ["targets"], "find_peaks": ["decoder"], "nms": ["decoder"],
                     "boxes_from_cells": ["decoder"], "refine": ["decoder"], "detect": ["decoder"],
                     "detections": ["decoder"], "decode": ["decoder"], "union_box": ["boxes"],
                     "order_left_to_right": ["canvas"], "left_to_right_order": ["canvas"]}


def imported_modules(path: Path) -> set[str]:
    """The ``mnistloc`` modules a file imports (``from mnistloc import x``, ``from mnistloc.x import y``)."""
    out = set()
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.ImportFrom) and n.module == "mnistloc":
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mnistloc."):
            out.add(n.module.split(".")[1])
        elif isinstance(n, ast.Import):
            out |= {a.name.split(".")[1] for a in n.names if a.name.startswith("mnistloc.")}
    return out


@pytest.mark.parametrize("module", ["data.py", "canvas.py", "scaled_canvas.py", "cases.py", "boxes.py"])
def test_the_data_layer_imports_no_model_or_target_code(module):
    assert imported_modules(PACKAGE / module) & {"targets", "decoder", "models", "losses", "training",
                                                  "evaluation", "nms_sweep"} == set()


def test_the_case_spec_is_data_importing_nothing_of_the_package():
    assert imported_modules(PACKAGE / CASE_SPEC) == set()


def test_no_module_re_exports_another_modules_names():
    """A ``# noqa: F401`` import with "re-export" beside it is a shim left by a split: none is left."""
    shims = [f"{p.name}:{i}" for p in LIBRARY + sorted((PACKAGE / "grading").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if "import" in line and "F401" in line and re.search(r"re-?export|part of this module's API", line)]
    assert shims == []


def _aliases(path: Path) -> list[str]:
    """Top-level ``name = module.name`` (or ``a, b = m.a, m.b``) assignments: another module's name published
    again under its own name."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple)
                     and isinstance(node.value, ast.Tuple) else [(target, node.value)])
            found += [f"{path.name}:{node.lineno} {t.id}" for t, v in pairs
                      if isinstance(t, ast.Name) and isinstance(v, ast.Attribute) and v.attr == t.id
                      and isinstance(v.value, ast.Name)]
    return found


def test_no_module_publishes_another_modules_function_under_its_name():
    # training.py had `model_case, check_case = models.model_case, models.check_case`: a shim by assignment
    assert [a for p in LIBRARY + sorted((PACKAGE / "grading").rglob("*.py")) for a in _aliases(p)] == []


def test_the_alias_finder_finds_aliases(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import models\nmodel_case, check_case = models.model_case, models.check_case\n"
                     "nms = decoder.nms\nother = decoder.nms\n")
    assert _aliases(probe) == ["probe.py:2 model_case", "probe.py:2 check_case", "probe.py:3 nms"]


def _module_names() -> set[str]:
    return {p.stem for p in LIBRARY if p.stem != "__init__"}


def test_the_package_docstring_maps_every_module():
    import mnistloc

    listed = set(re.findall(r"``(\w+)``", mnistloc.__doc__))
    assert _module_names() - listed == set()


def test_the_grading_docstring_maps_every_grading_module():
    import mnistloc.grading

    listed = set(re.findall(r"``(\w+)``", mnistloc.grading.__doc__))
    modules = {p.stem for p in (PACKAGE / "grading").rglob("*.py") if p.stem != "__init__"}
    assert modules - listed == set()


def test_the_readme_layout_table_names_every_module_and_grading():
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `mnistloc/` |"))
    listed = set(re.findall(r"`(\w+)`", row))
    assert _module_names() - {"_quiet"} - listed == set() and "grading" in listed


def test_the_grader_readme_lists_every_status_the_grader_gives():
    from mnistloc.grading.judge import STATUSES

    text = (PACKAGE.parent / "grader" / "README.md").read_text()
    table = text[text.index("**Statuses**"):]
    table = table[:table.index("\n\n", table.index("| status |"))]
    listed = re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.M)
    assert sorted(listed) == sorted(STATUSES)
