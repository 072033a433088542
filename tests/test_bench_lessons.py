"""bench/lessons.py: each lesson's one SEED line, the seed it sets, the probe it reads, the min/median summary."""
from __future__ import annotations

import importlib.util
import os
import re

import nbformat
import pytest
from course import LESSON_IDS, REPO, release, solution

SPEC = importlib.util.spec_from_file_location("bench_lessons", REPO / "bench" / "lessons.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


@pytest.mark.parametrize("lesson", LESSON_IDS)
@pytest.mark.parametrize("where", [solution, release])
def test_each_lesson_has_one_seed_line_that_the_model_and_the_training_use(lesson, where):
    nb = nbformat.read(str(where(lesson)), as_version=4)
    bench.set_seed(nb, 7)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "SEED = 7" in code and "SEED = 0" not in code
    assert "keras.utils.set_random_seed(SEED)" in code  # the model's starting weights
    train = [c.source for c in nb.cells if "train" in c.metadata.get("tags", [])]
    assert train and all(src.count("seed=SEED") == 2 for src in train)  # both budgets: a student's and grading's


@pytest.mark.parametrize("source, found", [("x = 1", 0), ("SEED = 0\nSEED = 1", 2)])
def test_set_seed_refuses_a_notebook_without_exactly_one_seed_line(source, found):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    with pytest.raises(ValueError, match=f"exactly one line.*found {found}"):
        bench.set_seed(nb, 3)


def test_find_lessons_picks_up_every_numbered_lesson_and_names_a_missing_one():
    found = bench.find_lessons()
    assert [p.parent.name for p in found.values()] == LESSON_IDS
    assert list(bench.find_lessons([2])) == [2]
    with pytest.raises(ValueError, match=r"--lessons.*\[9\]"):
        bench.find_lessons([2, 9])


def _run(lesson, seed, scores, train_cpu=100.0, kernel_cpu=160.0, wall=500.0):
    idle = train_cpu / (os.cpu_count() or 1) + kernel_cpu - train_cpu
    return {"lesson": lesson, "seed": seed, "scores": scores, "wall_seconds": wall, "kernel_cpu_seconds": kernel_cpu,
            "train_cpu_seconds": train_cpu, "idle_estimate_seconds": idle}


def test_summary_takes_the_minimum_over_seeds_against_ninety_percent_of_the_target():
    # case 1 targets: mean_iou 0.85 -> needs 0.765; iou50 0.99 -> needs 0.891
    runs = [_run(1, 0, {"mean_iou": 0.80, "iou50": 0.95, "iou75": 0.5}),
            _run(1, 1, {"mean_iou": 0.76, "iou50": 0.99, "iou75": 0.6}, wall=900.0),
            _run(1, 2, {"mean_iou": 0.90, "iou50": 0.90, "iou75": 0.7}),
            {"lesson": 1, "seed": 3, "error": "CellExecutionError"}]  # a failed run counts in no statistic
    lesson = bench.summarise(runs)["1"]
    assert lesson["seeds"] == [0, 1, 2]
    iou = lesson["metrics"]["mean_iou"]
    assert (iou["min"], iou["median"], iou["needed"], iou["met"]) == (0.76, 0.80, 0.765, False)  # 0.76 < 0.765
    iou50 = lesson["metrics"]["iou50"]
    assert (iou50["min"], iou50["median"], iou50["met"]) == (0.90, 0.95, True)  # 0.90 >= 0.891
    assert "target" not in lesson["metrics"]["iou75"]
    assert lesson["wall_seconds"] == {"median": 500.0, "max": 900.0}
    # idle estimate: 100 CPU-s of training over the cores, plus 60 CPU-s of the rest as if on one core
    assert lesson["idle_estimate_seconds"]["max"] == round(100 / (os.cpu_count() or 1) + 60, 1)
    assert "| 1 | mean_iou | 3 | 0.760 | 0.800 | 0.765 (0.85) | **no** |" in bench.table(bench.summarise(runs))


def test_runs_table_lists_each_scored_run_by_lesson_and_seed():
    runs = [{**_run(2, 1, {"mean_iou": 0.9}), "steps": 10, "load_before": 1.0, "load_after": 2.25},
            {**_run(1, 0, {"mean_iou": 0.8}, wall=499.6), "steps": 12, "load_before": 0.5, "load_after": 0.5},
            {"lesson": 1, "seed": 3, "error": "CellExecutionError"}]  # no scores: no row
    rows = bench.runs_table(runs).splitlines()[2:]
    idle = round(100 / (os.cpu_count() or 1) + 60)
    assert rows == [f"| 1 | 0 | 500 | 160 | 100 | {idle} | 12 | 0.5, 0.5 | mean_iou 0.800 |",
                    f"| 2 | 1 | 500 | 160 | 100 | {idle} | 10 | 1.0, 2.2 | mean_iou 0.900 |"]


@pytest.mark.slow
def test_run_lesson_executes_the_notebook_with_the_seed_and_reads_scores_in_the_kernel(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("SEED = 0  # the run's seed"),
        nbformat.v4.new_code_cell("import types\nscores = {'mean_iou': 0.5 + SEED / 10}\n"
                                  "history = types.SimpleNamespace(cpu_seconds=1.5, seconds=2.0, steps=3, "
                                  "stalled=False, config=types.SimpleNamespace(seconds=4))",
                                  metadata={"tags": ["train"]})])
    (tmp_path / "01-fake").mkdir()
    path = tmp_path / "01-fake" / "01-fake.ipynb"
    nbformat.write(nb, str(path))
    row = bench.run_lesson(1, str(path), 3, timeout=120)
    assert "error" not in row, row["error"]
    assert row["seed"] == 3 and row["scores"] == {"mean_iou": pytest.approx(0.8)}  # 0.5 + 3 / 10
    assert (row["train_cpu_seconds"], row["steps"], row["budget_seconds"]) == (1.5, 3, 4)
    assert row["kernel_cpu_seconds"] > 0 and row["wall_seconds"] > 0 and row["train_cell_seconds"] >= 0
    assert row["idle_estimate_seconds"] == round(1.5 / (os.cpu_count() or 1) + row["kernel_cpu_seconds"] - 1.5, 1)
    assert nbformat.read(str(path), as_version=4).cells[0].source.startswith("SEED = 0")  # the source is untouched


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_each_lesson_prints_the_package_targets_that_the_bench_compares_with(lesson):
    import ast

    from mnistloc.evaluation import TARGETS

    code = "\n".join(c.source for c in nbformat.read(str(solution(lesson)), as_version=4).cells)
    printed = re.search(r"^TARGETS = (\{.*?\}|evaluation\.TARGETS\[(\d)\])", code, re.MULTILINE)
    assert printed, "the evaluation cell should print the targets beside the scores"
    case = int(lesson[:2])  # lesson N trains case N
    if printed.group(2):  # the package's own dict, of the right case
        assert int(printed.group(2)) == case
    else:
        assert ast.literal_eval(printed.group(1)) == TARGETS[case]
