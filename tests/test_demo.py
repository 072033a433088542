"""The demo (``mnistloc demo``), its report page, and quiet output from every ``mnistloc`` process.

The subprocess tests run with ``TF_CPP_MIN_LOG_LEVEL`` removed from the environment, as a
user's shell has it, so they show what ``import mnistloc`` itself does about TensorFlow's logs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from pages import parse_page
import sample_class

from mnistloc import _quiet, cases, demo, demo_page
from mnistloc.grading import grade
from mnistloc.evaluation import TARGETS

REPO = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((REPO / "tests" / "corpus" / "expected.json").read_text())
NOISE = ("oneDNN custom operations are on", "Could not find cuda drivers", "absl::InitializeLog",
         "tf.function retracing", "MISSED")  # the lines a user must not see (MISSED: the old demo's verdict)


def _env() -> dict:
    """This environment without TensorFlow's log level, and without pytest's mark (with it, ipykernel does not
    capture a kernel's file descriptors, so a notebook would not show the C++ lines a student sees)."""
    drop = ("TF_CPP_MIN_LOG_LEVEL", "MNISTLOC_MNIST", "PYTEST_CURRENT_TEST")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _run(tmp_path, *args, timeout=900) -> subprocess.CompletedProcess:
    """``python -m mnistloc ARGS`` in ``tmp_path``: the bundled digits, TensorFlow's log level unset."""
    env = _env()
    env["KERAS_HOME"] = str(tmp_path / "keras-home")  # no cached full MNIST: the bundled digits
    return subprocess.run([sys.executable, "-m", "mnistloc", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in NOISE)]


def _assert_links_resolve(page: Path) -> list[Path]:
    """Every src/href of ``page`` is relative, stays in its folder and names a file that exists."""
    targets = []
    for link in parse_page(page).links:
        url = urlparse(link)
        assert not url.scheme and not url.netloc and not link.startswith("/"), link  # opens from disk, anywhere
        target = (page.parent / unquote(url.path)).resolve()
        assert target.is_relative_to(page.parent.resolve()) and target.is_file(), link
        targets.append(target)
    return targets


# ---- verdicts: met or below, never MISSED ----------------------------------------------------------------

def test_compare_marks_each_target_met_or_below():
    case = 4
    goals = TARGETS[case]
    first, *rest = goals
    result = {k: goal for k, goal in goals.items()}  # exactly at every target: met (>=)
    result[first] = goals[first] - 0.001  # one just below
    checks = demo.compare(case, result)
    assert [c["metric"] for c in checks] == list(goals)
    assert [c["met"] for c in checks] == [False] + [True] * len(rest)
    assert demo.verdict(checks) == f"below target: {first} {goals[first] - 0.001:.3f} < {goals[first]}"
    assert demo.verdict(demo.compare(case, {k: 1.0 for k in goals})) == "meets every target"


def test_metrics_table_says_met_or_below_with_the_numbers():
    rows = [{"case": 1, "how": "shipped weights", "checks": demo.compare(1, {"mean_iou": 0.86, "iou50": 0.98})}]
    text = demo.format_metrics_table(rows)
    goal_iou, goal_50 = TARGETS[1]["mean_iou"], TARGETS[1]["iou50"]
    assert f"mean_iou 0.860 (>= {goal_iou} {'met' if 0.86 >= goal_iou else 'below'})" in text
    assert f"iou50 0.980 (>= {goal_50} {'met' if 0.98 >= goal_50 else 'below'})" in text
    assert "shipped weights" in text and "MISSED" not in text


def test_live_sentence_says_what_ran():
    live = {"case": 1, "seconds": 30.0, "wall_seconds": 41.2, "cpu_seconds": 60.5, "steps": 1234,
            "checks": demo.compare(1, {"mean_iou": 0.9, "iou50": 0.5})}
    text = demo.format_live(live)
    assert text.startswith("case 1 single class, 30 s of both cores (1,234 steps, 41 s of wall time)")
    assert "iou50 0.500 (target >= " in text and ": below)" in text


# ---- the sample class -------------------------------------------------------------------------------------

def test_make_course_writes_the_sample_class_and_hides_the_seed(tmp_path):
    course = demo.make_course(tmp_path / "course")
    for student, folder in demo.SAMPLE_CLASS.items():  # the package's lesson 1 with the corpus student's answers
        copy = json.loads((course / "submitted" / student / demo.LESSON / f"{demo.LESSON}.ipynb").read_text())
        corpus = json.loads((REPO / "tests" / "corpus" / folder / f"{demo.LESSON}.ipynb").read_text())
        assert sample_class.answers(copy) == sample_class.answers(corpus)
    assert (course / grade.SEED_FILE).stat().st_mode & 0o777 == 0o600
    assert isinstance(grade.secret_seed(course), int)
    assert {"correct", "partial"} <= set(demo.SAMPLE_CLASS.values())  # and hostile ones:
    assert any("forbidden" in EXPECTED[f]["expect"].values() for f in demo.SAMPLE_CLASS.values())


def test_make_course_names_a_student_not_in_the_sample_class(tmp_path):
    with pytest.raises(ValueError, match="`student` should be one of .*ada-correct.*Got student='no_such_student'"):
        demo.make_course(tmp_path / "course", students=["no_such_student"])


# ---- the report page --------------------------------------------------------------------------------------

def test_report_escapes_text_and_links_only_existing_files(tmp_path):
    out = tmp_path / "demo output"  # a space: links must be percent-encoded
    (out / "data").mkdir(parents=True)
    (out / "data" / "case1.png").write_bytes(b"\x89PNG")
    feedback = out / "grading" / "feedback" / "<b>eve</b>" / "01-single-digit.html"
    feedback.parent.mkdir(parents=True)
    feedback.write_text("<html></html>")
    hostile = "<script>alert(1)</script>"
    row = grade.Row("<b>eve</b>", "01-single-digit", "iou", 0, 3, "failed", hostile)
    page = {"data": {"rows": [demo.summary(demo.make_datasets(5)[1])], "grids": {1: out / "data" / "case1.png",
                                                                                 2: out / "data" / "case2.png"}},
            "models": [{"case": 1, "how": "shipped weights", "metrics": {"test_canvases": 5},
                        "checks": demo.compare(1, {"mean_iou": 0.9, "iou50": 1.0})}],
            "grading": {"rows": [row], "summary": hostile, "students": {"<b>eve</b>": "partial"},
                        "why": {"partial": EXPECTED["partial"]["why"]}, "seconds": 1.0}}
    path = demo_page.write_index(page, out)
    text = path.read_text()
    assert hostile not in text and "&lt;script&gt;" in text and "<b>eve</b>" not in text
    targets = _assert_links_resolve(path)
    assert out / "data" / "case1.png" in targets and feedback.resolve() in targets
    assert "case2.png" not in text  # a picture that was not written is not linked


# ---- quiet TensorFlow -------------------------------------------------------------------------------------

def test_startup_lines_are_recognised():
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1795942851.350320    9061 port.cc:153] oneDNN custom operations are on. You may see",
             "I0000 00:00:1795942851.381719    9061 cudart_stub.cc:31] Could not find cuda drivers on your machine"]
    assert all(_quiet.is_startup_line(line) for line in lines)
    assert not _quiet.is_startup_line("Traceback (most recent call last):")


def test_quiet_stderr_drops_startup_lines_and_keeps_the_rest():
    code = ("import os\nfrom mnistloc import _quiet\nwith _quiet.quiet_stderr():\n"
            "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\nreal problem\\n')\n"
            "os.write(2, b'after\\n')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert r.stderr == "real problem\nafter\n"


@pytest.mark.slow
def test_importing_tensorflow_after_mnistloc_is_quiet():
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=_env())
    assert _noise(plain.stderr), "TensorFlow no longer prints start-up lines: this test proves nothing"
    quiet = subprocess.run([sys.executable, "-c", "import mnistloc, keras, tensorflow as tf; print(tf.add(1, 2))"],
                           capture_output=True, text=True, env=_env())
    assert quiet.returncode == 0 and quiet.stderr == "" and "tf.Tensor(3" in quiet.stdout


@pytest.mark.slow
def test_the_retracing_warning_is_dropped_once_whichever_came_first():
    # TensorFlow imported before mnistloc (the import hook never runs): training still adds the filter, once.
    code = ("import tensorflow as tf, logging\nimport mnistloc.training\nfrom mnistloc import _quiet\n"
            "_quiet.silence_retracing()\nlog = tf.get_logger()\n"
            "print(sum(isinstance(f, _quiet._NoRetracingWarning) for f in log.filters))\n"
            "log.warning('5 out of the last 5 calls to <f> triggered tf.function retracing.')\n"
            "log.warning('a real warning')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr
    assert "a real warning" in r.stderr and "retracing" not in r.stderr


@pytest.mark.slow
def test_train_is_quiet(tmp_path):
    r = _run(tmp_path, "train", "--case", 1, "--seconds", 3, "--out", "m")
    assert r.returncode == 0, r.stderr
    assert _noise(r.stdout + r.stderr) == []
    assert "mean_iou" in r.stdout and (tmp_path / "m" / "model.keras").is_file()


@pytest.mark.slow
def test_lesson_setup_cell_is_quiet():
    import nbclient
    import nbformat

    lesson = nbformat.read(REPO / "lessons" / "01-single-digit" / "01-single-digit.ipynb", as_version=4)
    setup = next(c for c in lesson.cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup.source)])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300).execute(env=_env())
    shown = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream")
    assert "mnistloc" in shown and _noise(shown) == []
    assert not [o for o in nb.cells[0].outputs if o.get("name") == "stderr"], nb.cells[0].outputs


# ---- the demo itself --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_quick_demo_is_quiet_and_writes_a_linked_page(tmp_path):
    r = _run(tmp_path, "demo", "--quick", "--out", "out")
    assert r.returncode == 0, r.stderr
    assert _noise(r.stdout + r.stderr) == []
    rows = [line for line in r.stdout.splitlines() if line[:2] in {f"{c} " for c in cases.ALL_CASES}]
    data_rows = [line for line in rows if f"{demo.QUICK['n']:>8,}" in line]
    assert len(data_rows) == len(demo.make_datasets(1))  # one data row per case
    scored = [c for c in TARGETS if c in cases.BRIEF_CASES or c in demo.shipped_cases()]  # case 5 when it ships
    assert len([line for line in rows if "(>= " in line]) == len(scored)  # one verdict row per model
    page = tmp_path / "out" / "index.html"
    targets = {p.relative_to(page.parent.resolve()).as_posix() for p in _assert_links_resolve(page)}
    assert {f"data/case{c}.png" for c in cases.ALL_CASES} <= targets
    assert {f"models/case{c}/predictions.png" for c in scored} <= targets and "live/history.png" in targets
    assert {f"grading/feedback/{s}/{demo.LESSON}.html" for s in demo.SAMPLE_CLASS} <= targets
    rows = json.loads((tmp_path / "out" / "grading" / "grades.json").read_text())["rows"]
    for student, folder in demo.SAMPLE_CLASS.items():  # the grader's verdicts are the corpus's expected ones
        mine = {row["exercise"]: row["status"] for row in rows if row["student"] == student}
        expect = EXPECTED[folder]["expect"]
        assert {name: mine.get(name) for name in expect} == expect, student
