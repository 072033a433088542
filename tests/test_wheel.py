"""The package as a self-learner gets it: a wheel, installed into a fresh virtual environment outside the
repository, and the README's commands run there in an empty folder.

The wheel is built by ``pip wheel --no-deps`` from a copy of the repository's files (what ``git ls-files``
lists, symbolic links kept: what a fresh clone holds, with this checkout's changes), so the build leaves no
``build/`` folder in the repository. The fresh environment (``python -m venv``) gets the wheel with
``pip install --no-deps``; its dependencies (TensorFlow and the rest, about 3 GB and 3 minutes from pip's
cache) come from this test run's environment through a ``.pth`` line naming its site-packages folder.
Python adds that folder to ``sys.path`` *after* the new environment's own, and does not read the ``.pth``
files inside it, so the repository's editable install of ``mnistloc`` (a ``.pth`` file there) cannot leak
in: ``test_the_package_is_the_wheels`` checks that ``mnistloc`` and its files come from the new
environment, and ``pip check`` that the wheel's declared dependencies are all met.
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mnistloc import course
from mnistloc.checks import EXERCISES

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]

REPO = Path(__file__).resolve().parents[1]
LESSON = course.lesson_ids()[0]
CELLS = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
         for c in json.loads(course.lesson_bytes(LESSON))["cells"]}
NAMES = [name for name, ex in EXERCISES.items() if ex.lesson == LESSON and name in CELLS]  # lesson 1's, in order


class Installed:
    """A fresh environment with the wheel in it, and an empty home folder to run commands in."""

    def __init__(self, root: Path):
        self.venv, self.home = root / "venv", root / "home"
        self.bin = self.venv / "bin"

    def run(self, *args, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """``args`` in the home folder, with the environment's ``bin/`` first on PATH (as after ``activate``)."""
        drop = ("PYTHONPATH", "PYTHONHOME", "MNISTLOC_SECRET_SEED", "MNISTLOC_COURSE_ROOT", "PYTEST_ADDOPTS",
                "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "KERAS_HOME")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(self.venv),
                   KERAS_HOME=str(self.home / ".keras"))  # no cached full MNIST: the bundled digits
        done = subprocess.run([str(a) for a in args], cwd=self.home, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if check:
            assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr}"
        return done


def _copy_checkout(target: Path) -> Path:
    """The files a clone of this checkout holds (tracked, and new ones not ignored), symbolic links kept."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, copy = REPO / name, target / name
        if not os.path.lexists(source):  # deleted in the checkout, not yet in git
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = _copy_checkout(root / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", ".", "-w", str(root / "dist")],
                   cwd=source, check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("mnistloc-*.whl")
    env = Installed(root)
    env.home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(env.venv)], check=True, capture_output=True)
    env.run(env.bin / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    own = Path(env.run(env.bin / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
               .stdout.strip())
    (own / "zz_dependencies_from_the_test_run.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env


def test_the_package_is_the_wheels(installed):
    out = installed.run("python", "-c", "import json, mnistloc; from mnistloc import course, pretrained; "
                        "print(json.dumps([mnistloc.__file__, str(course.FILES), str(pretrained.WEIGHTS)]))")
    for path in json.loads(out.stdout):
        assert Path(path).resolve().is_relative_to(installed.venv.resolve()), path
    assert installed.run("python", "-m", "pip", "check").returncode == 0  # every declared dependency is met
    assert not installed.run("python", "-c", "import solutions", check=False).returncode == 0


def _readme_pip_commands() -> list[str]:
    """The commands of the README's pip path for students (the bash block after "Anywhere else, with pip"), past
    the ``export`` that names this repository's URL."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("Anywhere else, with pip"):].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("export ")]


def test_lessons_as_the_readme_says_fetches_the_released_lessons(installed):
    install, fetch, open_lab = _readme_pip_commands()  # the install is this test's wheel; JupyterLab: the browser test
    assert install.startswith("pip install ") and open_lab.startswith("jupyter lab ")
    folder = fetch.split()[-1]
    done = installed.run(*shlex.split(fetch))
    assert done.stderr == ""
    for lesson in course.lesson_ids():
        assert f"copied      {lesson}/{lesson}.ipynb" in done.stdout
        assert (installed.home / folder / lesson / f"{lesson}.ipynb").read_bytes() == \
            (REPO / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()
    assert f"{open_lab}\n" in done.stdout  # it says how to open them, as the README does


def _fetched(installed) -> Path:
    installed.run("mnistloc", "lessons", "lessons")
    return installed.home / "lessons" / LESSON / f"{LESSON}.ipynb"


def test_check_gives_zero_points_and_a_hint_for_each_exercise(installed):
    done = installed.run("mnistloc", "check", _fetched(installed), "--json", check=False)
    assert done.returncode == 1 and done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    assert report["score"] == 0 and report["max_score"] == sum(EXERCISES[n].points for n in NAMES)
    assert [ex["name"] for ex in report["exercises"]] == NAMES
    assert all(ex["points"] == 0 and ex["hint"] for ex in report["exercises"]), report["exercises"]


def test_pytest_fails_one_item_per_exercise(installed):
    done = installed.run("python", "-m", "pytest", "-p", "no:cacheprovider", "-q", _fetched(installed), check=False)
    assert done.returncode == 1, done.stdout[-3000:]
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert [line.split("::")[1].split()[0] for line in failed] == NAMES, done.stdout[-3000:]
    assert f"{len(NAMES)} failed" in done.stdout.splitlines()[-1]


def test_demo_quick_grades_the_sample_class(installed):
    done = installed.run("mnistloc", "demo", "--quick", "--seconds", "2", "--out", "demo", timeout=900)
    assert "4. Grading: 5 sample notebooks of lesson 1" in done.stdout, done.stdout[-3000:]
    rows = json.loads((installed.home / "demo" / "grading" / "grades.json").read_text())["rows"]
    expected = json.loads((REPO / "tests" / "corpus" / "expected.json").read_text())
    for student, made in course.sample_class()["students"].items():  # the corpus's verdicts, from the package alone
        mine = {row["exercise"]: row["status"] for row in rows if row["student"] == student}
        assert {name: mine.get(name) for name in expected[made["case"]]["expect"]} == \
            expected[made["case"]]["expect"], student
    assert (installed.home / "demo" / "index.html").is_file()


def test_grade_a_class_of_two(installed):
    """An instructor's course folder with two students of lesson 1: one solved it (the sample class's correct
    notebook), one submitted the lesson as fetched."""
    stub = _fetched(installed)
    course_dir = installed.home / "course"
    solved = course_dir / "submitted" / "ann" / LESSON / f"{LESSON}.ipynb"
    installed.run("python", "-c", f"from mnistloc import course; course.write_sample_notebook('ada-correct', "
                                  f"{str(solved)!r})")
    (course_dir / "submitted" / "ben" / LESSON).mkdir(parents=True)
    shutil.copy(stub, course_dir / "submitted" / "ben" / LESSON)
    (course_dir / "secret_seed").write_text("20261204\n")
    done = installed.run("mnistloc", "grade", "course", "--no-gradebook", "--jobs", "2", timeout=900)
    with open(course_dir / "mnistloc_grades" / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    points = {}
    for row in rows:
        points.setdefault(row["student"], []).append(int(float(row["points"])))
    full = sum(EXERCISES[n].points for n in NAMES)
    assert {s: sum(p) for s, p in points.items()} == {"ann": full, "ben": 0}, done.stdout
    url, course_id = json.loads(installed.run(  # the gradebook from the shipped nbgrader configuration
        "python", "-c", "import json; from mnistloc.grading import results; "
        "print(json.dumps(results._gradebook_url('course')))").stdout)
    assert course_id == "mnistloc" and url == f"sqlite:///{course_dir.resolve()}/gradebook.db"
