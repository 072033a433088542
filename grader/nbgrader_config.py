"""nbgrader configuration of the mnistloc course (nbgrader 0.9.x, JupyterLab 4).

Run nbgrader from this folder (``cd grader``) so that it reads this file.

- Source: ``solutions/`` (the notebooks with solutions and hidden tests).
- Release: ``<course root>/release/`` (the same bytes as the committed ``lessons/``, which
  ``make lessons`` regenerates); ``lessons/`` itself when the course root is the repository.
- Course root (``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``):
  ``$MNISTLOC_COURSE_ROOT``, by default the repository itself. Point it at a
  folder outside the repository for a real class, so that students' work never
  lands in the repository.
- Hidden tests use the secret seed in ``$MNISTLOC_SECRET_SEED``, or in the file
  ``<course root>/secret_seed`` when the variable is unset; without either, a
  fresh random seed each run (correct code passes any seed).
- TensorFlow's C++ logs are silenced in the kernels nbgrader starts (they
  inherit this process's environment); a test cell that wrote to stderr would
  score 0. The checks also silence Keras while they build models.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821  (nbgrader's config loader provides it)

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("MNISTLOC_COURSE_ROOT", REPO)).expanduser().resolve()

c.CourseDirectory.course_id = "mnistloc"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = str(REPO / "solutions")
# The release goes under the course root, so that `nbgrader generate_assignment` on a fresh course really generates
# (and registers the lesson in that course's gradebook) instead of skipping the committed lessons/; with the
# repository as course root it is lessons/ itself (`make lessons` sets MNISTLOC_RELEASE_DIR to build it).
c.CourseDirectory.release_directory = os.environ.get(
    "MNISTLOC_RELEASE_DIR", str(REPO / "lessons" if ROOT == REPO.resolve() else ROOT / "release"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# Per-cell time limit. Under nbgrader (NBGRADER_EXECUTION set) the lessons train for seconds, so a cell that
# runs for minutes is stuck; a whole lesson autogrades in about 10-25 s on 2 cores.
c.Execute.timeout = 240
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
_seed_file = ROOT / "secret_seed"
if "MNISTLOC_SECRET_SEED" not in os.environ and _seed_file.is_file():
    os.environ["MNISTLOC_SECRET_SEED"] = _seed_file.read_text().strip()
