"""Notebooks released before keep working: every lesson of the releases 2026-11 and 2026-12, with the model
answers typed in, runs to its end in grading mode; every ``mnistloc`` name they use resolves; and the stand-ins of
the retired modules (``mnistloc.retired``) give what the old modules gave, checked against the old code itself
(``tests/fixtures/released-2026-12/old_modules/``: ``decoding``, ``dense``, ``peaks`` and ``crowds`` as they were at
``BEFORE_SPLIT``, kept as files so that a shallow clone checks them too)."""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
from course import BIN, REPO, cells, grade_id

import mnistloc
from mnistloc import retired

pytestmark = pytest.mark.slow

FIXTURES = REPO / "tests" / "fixtures"
RELEASES = {"2026-11": FIXTURES / "released-2026-11", "2026-12": FIXTURES / "released-2026-12"}
"""Each release's lessons as students got them, and ``answers.json``: grade id -> the model answer of each cell
a student fills in (the solution without its ``### BEGIN/END SOLUTION`` lines)."""
BEFORE_SPLIT = "4aaaf06^"  # the release 2026-12: the tree before decoding, dense and peaks were split up
NOTEBOOKS = [(release, p.stem) for release, folder in RELEASES.items() for p in sorted(folder.glob("*.ipynb"))]
SHORT_MODE = 'GRADING = "NBGRADER_EXECUTION" in os.environ'


# ---- the lessons run, start to end ---------------------------------------------------------------------------

def _answers(release: str) -> dict[str, str]:
    return json.loads((RELEASES[release] / "answers.json").read_text())


def _typed_in(release: str, folder: Path) -> None:
    """Every notebook of ``release`` with its answers typed in, each in its lesson's folder under ``folder`` (as
    a student has them: lesson 5 looks for the earlier lessons' notebooks beside its own)."""
    answers, typed = _answers(release), set()
    for source in sorted(RELEASES[release].glob("*.ipynb")):
        nb = nbformat.read(str(source), as_version=4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution") and grade_id(cell) in answers:
                cell.source = answers[grade_id(cell)]
                typed.add(grade_id(cell))
        (folder / source.stem).mkdir(parents=True)
        nbformat.write(nb, str(folder / source.stem / source.name))
    assert typed == set(answers), f"answers with no cell to type them in: {sorted(set(answers) - typed)}"


def _problems(nb) -> list[str]:
    """The cells that failed, and the graded cells that nbgrader would give 0 (an error, or anything on stderr)."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        graded = cell.metadata.get("nbgrader", {}).get("grade", False)
        for o in cell.outputs:
            if o.output_type == "error":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(o.traceback))
                out.append(f"cell {i} ({grade_id(cell) or cell.source[:60]!r}) raised {o.ename}: {o.evalue}\n{trace}")
            elif graded and o.output_type == "stream" and o.name == "stderr":
                out.append(f"graded cell {i} ({grade_id(cell)}) wrote to stderr, which nbgrader scores 0: {o.text}")
    return out


@pytest.mark.parametrize(("release", "lesson"), NOTEBOOKS)
def test_a_released_lesson_runs_to_its_end_with_its_answers_typed_in(tmp_path, release, lesson):
    import nbclient

    _typed_in(release, tmp_path)
    path = tmp_path / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert SHORT_MODE in nb.cells[setup].source, "the setup cell does not read the autograder's variable: a long run"
    env = {**os.environ, "NBGRADER_EXECUTION": "autograde", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    assert _problems(nb) == []


# ---- every name they use resolves ------------------------------------------------------------------------------

def _stored(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _own_names(func) -> set[str]:
    """A function's arguments and variables: inside it, they hide a module of the same name."""
    a = func.args
    return {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x} | _stored(func)


def uses(path: Path) -> set[tuple[str, str]]:
    """``(module, name)`` for each ``module.name`` of a ``mnistloc`` module in a notebook's code cells (module ""
    for ``mnistloc.name``), and for each ``from mnistloc.module import name``. Cells are read in order: a name
    rebound at the top level (``boxes = ...``) is no module from there on, nor one a function's own variable hides."""
    bound: dict[str, str] = {}  # name in the notebook -> the mnistloc module it is
    found = set()
    for cell in cells(path):
        if cell.cell_type != "code":
            continue
        for stmt in ast.parse(cell.source).body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                hidden, rebound = (_own_names(stmt) if not isinstance(stmt, ast.ClassDef) else set()), {stmt.name}
            else:
                hidden, rebound = set(), _stored(stmt)
                for node in ast.walk(stmt):  # imports, also inside a try: or an if:
                    if isinstance(node, ast.Import):
                        bound.update({a.asname or a.name: "" for a in node.names if a.name == "mnistloc"})
                        rebound |= {a.asname or a.name.split(".")[0] for a in node.names if a.name != "mnistloc"}
                    elif isinstance(node, ast.ImportFrom) and node.module == "mnistloc":
                        bound.update({a.asname or a.name: a.name for a in node.names})
                    elif isinstance(node, ast.ImportFrom):
                        if (node.module or "").startswith("mnistloc."):
                            found |= {(node.module[len("mnistloc."):], a.name) for a in node.names}
                        rebound |= {a.asname or a.name for a in node.names}
            found |= {(bound[n.value.id], n.attr) for n in ast.walk(stmt) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Name) and n.value.id in bound and n.value.id not in hidden}
            for name in rebound:
                bound.pop(name, None)
    return found


def _resolve(module: str, name: str):
    if "." in module:
        return getattr(importlib.import_module(f"mnistloc.{module}"), name)
    space: dict = {}
    exec(f"from mnistloc import {module}" if module else "import mnistloc", space)  # as the notebook does
    return getattr(space[module or "mnistloc"], name)


def test_the_name_finder_reads_modules_not_variables_of_the_same_name():
    found = uses(RELEASES["2026-12"] / "05-many-digits.ipynb")
    assert {("dense", "sigmas"), ("crowds", "nms_keeps"), ("peaks", "nms"), ("decoding", "heatmap_targets"),
            ("models", "build_case5_model"), ("grading.model_child", "CONTRACT"), ("", "__version__"),
            ("metrics", "match_detections")} <= found
    assert ("boxes", "shape") not in found  # candidates()'s own `boxes`, an array


@pytest.mark.parametrize("release", list(RELEASES))
def test_every_mnistloc_name_a_released_notebook_uses_resolves(release):
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for path in sorted(RELEASES[release].glob("*.ipynb")):
            for module, name in sorted(uses(path)):
                try:
                    _resolve(module, name)
                except (AttributeError, ImportError) as exc:
                    missing.append(f"{path.name}: mnistloc.{module}.{name}: {exc}")
    assert missing == []


# ---- the table and how it is served ----------------------------------------------------------------------------

def test_each_retired_module_is_served_with_its_names_where_they_live_now():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for old, entry in retired.MODULES.items():
            served = getattr(mnistloc, old)
            if entry.names is None:  # renamed: the module it became
                assert served is importlib.import_module(f"mnistloc.{entry.now[0]}")
                continue
            for name, target in entry.names.items():
                value = getattr(served, name)
                if isinstance(target, str):  # the current function (or constant) itself
                    home, _, attr = target.partition(".")
                    assert value is getattr(importlib.import_module(f"mnistloc.{home}"), attr), (old, name)
                    assert home in entry.now or not callable(value), (old, name)  # where the warning says
                else:  # an adapter: private to mnistloc.retired, so no public name has two homes
                    assert value.__module__ == "mnistloc.retired" and value.__name__.startswith("_"), (old, name)
            with pytest.raises(AttributeError, match=f"mnistloc.{old} is retired"):
                served.no_such_name  # noqa: B018
        from mnistloc import models

        assert models.build_case5_model is retired._build_case5_model


def test_a_retired_module_warns_once_where_the_student_imports_it(monkeypatch):
    monkeypatch.setattr(retired, "_served", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from mnistloc import decoding  # noqa: F401
        from mnistloc import decoding as again  # noqa: F401
        mnistloc.decoding  # noqa: B018
    assert [(w.category, str(w.message), Path(w.filename).name) for w in caught] == [
        (FutureWarning, "mnistloc.decoding is retired; its functions are in mnistloc.decoder and mnistloc.targets. "
                        "This notebook keeps working.", Path(__file__).name)]


def test_the_import_statement_form_gets_the_same_stand_in_and_warns_at_the_students_line():
    code = ("import warnings\nwarnings.simplefilter('always')\n"
            "import mnistloc.decoding as old\n"
            "from mnistloc import decoding\n"
            "import mnistloc.crowds, mnistloc.nms_sweep\n"
            "print(old is decoding, mnistloc.crowds is mnistloc.nms_sweep, old.find_peaks.__module__)\n"
            "try:\n    import mnistloc.no_such_module\nexcept ModuleNotFoundError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True True mnistloc.decoder", "No module named 'mnistloc.no_such_module'"]
    warned = [line for line in done.stderr.splitlines() if "FutureWarning" in line]
    assert [line.split(":")[:2] for line in warned] == [["<string>", "3"], ["<string>", "5"]], done.stderr


def test_anything_else_is_the_usual_attribute_error():
    with pytest.raises(AttributeError, match="module 'mnistloc' has no attribute 'no_such_module'"):
        mnistloc.no_such_module  # noqa: B018
    with pytest.raises(ImportError, match="no_such_module"):
        from mnistloc import no_such_module  # noqa: F401
    from mnistloc import models

    with pytest.raises(AttributeError, match="module 'mnistloc.models' has no attribute 'no_such_name'"):
        models.no_such_name  # noqa: B018


def test_serving_a_retired_module_imports_no_tensorflow():
    """Not even ``dense``, whose stand-in has the case 5 model's scores (``precision``, now ``dtype_policy``, is
    about Keras's dtype policies: it imports Keras, as it always did)."""
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from mnistloc import decoding, peaks, dense, crowds, scenes, report\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- the stand-ins give what the old modules gave ------------------------------------------------------------------

def _old_module(name: str, monkeypatch, **replace: str) -> types.ModuleType:
    """``mnistloc/<name>.py`` as it was at ``BEFORE_SPLIT``, as the module ``_old_<name>``; ``replace`` rewrites its
    imports of modules that are gone (each text must be there once)."""
    source = (RELEASES["2026-12"] / "old_modules" / f"{name}.py.txt").read_text()
    for old, new in replace.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    module = types.ModuleType(f"_old_{name}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, f"{BEFORE_SPLIT}:mnistloc/{name}.py", "exec"), module.__dict__)
    return module


@pytest.fixture
def old(monkeypatch) -> types.SimpleNamespace:
    """The old ``peaks``, ``decoding``, ``dense`` and ``crowds``, importing one another as they did."""
    peaks = _old_module("peaks", monkeypatch)
    gone = {"from mnistloc import metrics, peaks": "from mnistloc import metrics\nimport _old_peaks as peaks"}
    return types.SimpleNamespace(
        peaks=peaks,
        decoding=_old_module("decoding", monkeypatch, **{
            "from mnistloc.canvas import NUM_CLASSES, SLOTS": "from mnistloc.canvas import NUM_CLASSES\n"
                                                             "from mnistloc.cases import SLOTS",
            "from mnistloc.peaks import": "from _old_peaks import"}),
        dense=_old_module("dense", monkeypatch, **gone),
        crowds=_old_module("crowds", monkeypatch, **gone))


_OUTPUTS: dict = {}


def shipped(case: int):
    """The shipped model of ``case`` (``mnistloc.pretrained``) on 200 of its test canvases: (ds, outputs)."""
    if case not in _OUTPUTS:
        from mnistloc import evaluation, pretrained

        ds = evaluation.test_dataset(case, 200)
        _OUTPUTS[case] = ds, evaluation.predict(pretrained.model(case), ds)
    return _OUTPUTS[case]


def _stand_in(old_name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(mnistloc, old_name)


def _agree(new, old, what: str, *, atol: float = 0.0, share: float = 1.0) -> None:
    """``new`` and ``old`` hold the same shape and dtype kind, and agree (within ``atol``) on ``share`` of the
    canvases (the first axis)."""
    new, old = np.asarray(new), np.asarray(old)
    assert new.shape == old.shape and new.dtype.kind == old.dtype.kind, (what, new.shape, old.shape, new.dtype,
                                                                         old.dtype)
    same = np.isclose(new, old, atol=atol, rtol=0).reshape(len(new), -1).all(axis=1)
    assert same.mean() >= share, f"{what}: the same on {same.mean():.1%} of the canvases"


@pytest.mark.parametrize("case", [2, 3, 4])
def test_decoding_decode_gives_the_old_keys_and_values_on_the_shipped_models(old, case):
    ds, outputs = shipped(case)
    was, now = old.decoding.decode(case, outputs), _stand_in("decoding").decode(case, outputs)
    assert set(was) == set(now)
    for key in was:  # today's refinement (neighbours that agree) may move a box a little, on a rare canvas
        _agree(now[key], was[key], key, atol=0.5, share=0.99)


@pytest.mark.parametrize("case", [3, 4])
@pytest.mark.parametrize("options", [{}, {"classes_per_peak": 1}, {"k": 5, "classes_per_peak": 3},
                                     {"iou_threshold": 0.5}])
def test_decoding_detections_give_the_old_average_precision(old, case, options):
    from mnistloc import metrics

    ds, outputs = shipped(case)
    was, now = old.decoding.detections(outputs, **options), _stand_in("decoding").detections(outputs, **options)
    assert [len(b) for b in now[0]] == [len(s) for s in now[2]] == [len(c) for c in now[1]]
    assert abs(sum(map(len, now[0])) - sum(map(len, was[0]))) <= 0.01 * sum(map(len, was[0]))
    for s in now[2]:
        assert (np.diff(s) <= 0).all()  # best first
    ap_was, ap_now = (metrics.mean_average_precision(*ds.box_lists(), *d) for d in (was, now))
    for key in ("map", "map50", "map75"):
        assert ap_now[key] == pytest.approx(ap_was[key], abs=0.005), key


@pytest.mark.parametrize("case", [2, 4])
def test_decoding_targets_and_parts_are_the_old_ones(old, case):
    from mnistloc import canvas

    ds = canvas.make_dataset(case, 64, seed=case)
    decoding, peaks = _stand_in("decoding"), _stand_in("peaks")
    was = old.decoding.encode_targets(ds.boxes, ds.classes, ds.mask, size=ds.size)
    now = decoding.encode_targets(ds.boxes, ds.classes, ds.mask, size=ds.size)
    assert set(now) == set(was) == {"presence", "box", "class", "count"}
    for key in was:
        np.testing.assert_allclose(now[key], was[key], atol=1e-6, err_msg=key)
    _, outputs = shipped(4)
    heat = outputs["presence"][..., 0]
    for got, want in zip(peaks.find_peaks(heat, k=5), old.peaks.find_peaks(heat, k=5)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(decoding.boxes_from_cells(outputs["box"]), old.decoding.boxes_from_cells(
        outputs["box"]))
    every = decoding.boxes_from_cells(outputs["box"][0]).reshape(-1, 4)
    np.testing.assert_array_equal(peaks.nms(every, heat[0].ravel(), 0.3), old.peaks.nms(every, heat[0].ravel(), 0.3))


def test_dense_gives_what_it_gave_on_the_shipped_case_5_model(old):
    dense = _stand_in("dense")
    ds, outputs = shipped(retired.DENSE_CASE)
    was, now = old.dense.detect(outputs), dense.detect(outputs)
    assert set(was) <= set(now)
    for key in ("scores", "kept", "mask", "count", "classes"):
        _agree(now[key], was[key], key, share=0.99)
    _agree(now["boxes"], was["boxes"], "boxes", atol=2.0, share=0.99)  # clipped after refining, not before
    score_was, score_now = old.dense.score(ds, outputs), dense.score(ds, outputs)
    assert set(score_now) == set(score_was)
    for key in score_was:
        assert score_now[key] == pytest.approx(score_was[key], abs=0.005), key
    _agree(dense.per_canvas_quality(ds, outputs), old.dense.per_canvas_quality(ds, outputs), "quality", atol=0.01,
           share=0.99)
    index = [0, 3, 7]
    pic_was, pic_now = old.dense.picture(outputs, index), dense.picture(outputs, index)
    assert set(pic_now) == set(pic_was) and [len(b) for b in pic_now["boxes"]] == [len(b) for b in pic_was["boxes"]]
    det_was, det_now = old.dense.detections(was), dense.detections(now)
    assert [len(s) for s in det_now[2]] == [len(s) for s in det_was[2]]


def test_dense_targets_keep_the_old_bump_width(old):
    from mnistloc import canvas

    dense = _stand_in("dense")
    ds = canvas.make_dataset(retired.DENSE_CASE, 64, seed=5)
    np.testing.assert_allclose(dense.sigmas(ds.boxes), old.dense.sigmas(ds.boxes), atol=1e-6)
    was = old.dense.encode_targets(ds.boxes, ds.classes, ds.mask)
    now = dense.encode_targets(ds.boxes, ds.classes, ds.mask)
    assert set(now) == set(was) == {"presence", "box", "class"}
    np.testing.assert_allclose(now["presence"], was["presence"], atol=1e-6)
    for key in ("box", "class"):
        np.testing.assert_allclose(now[key][..., 0], was[key][..., 0], atol=1e-6, err_msg=key)  # the weights
        learns = now[key][..., 0] > 0  # where two digits' cells meet, today's one ownership rule may differ
        same = np.isclose(now[key][..., 1:], was[key][..., 1:], atol=1e-5).all(axis=-1)[learns]
        assert same.mean() >= 0.99, f"{key}: the same on {same.mean():.1%} of the cells that learn"


def test_crowds_is_nms_sweep_and_sweeps_as_before(old):
    crowds = _stand_in("crowds")
    _, outputs = shipped(retired.DENSE_CASE)
    found = _stand_in("dense").detect(outputs)
    boxes, scores = found["boxes"], np.where(found["kept"], found["scores"], 0)
    np.testing.assert_array_equal(crowds.nms_keeps(boxes, scores), old.crowds.nms_keeps(boxes, scores))
    keeps = crowds.nms_keeps(boxes, scores)
    counts = found["count"]
    best, accuracy = crowds.choose_nms_threshold(keeps, scores, counts, crowds.NMS_THRESHOLDS)
    best_was, accuracy_was = old.crowds.choose_nms_threshold(keeps, scores, counts, old.crowds.NMS_THRESHOLDS)
    assert best == best_was and accuracy.tolist() == accuracy_was.tolist()
    np.testing.assert_array_equal(crowds.size_groups(boxes), old.crowds.size_groups(boxes))
    assert crowds.SIZE_NAMES == old.crowds.SIZE_NAMES
