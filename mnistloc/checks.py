"""The lessons' door to the checks: what a lesson notebook imports, nothing more.

A notebook's test cell calls ``check_exercise(name, func)``: it prints the
points, or raises ``CheckFailure`` whose hint names the likely mistake. The
checking itself is in ``mnistloc.grading`` (``check``, ``registry``,
``exercises``); this module only gathers its public names, so that released
lessons keep working whatever moves behind it.

- ``check(name, func, seed=None) -> Result`` and ``check_notebook(path)``.
- ``EXERCISES[name]``, ``REFERENCES[name]``: every exercise and its reference.
- ``PRELUDE``: what every exercise cell may rely on (``np``, a lazy ``keras``).
- ``keras``: the real Keras, imported on first use; ``quiet()``: silences output.
"""
from mnistloc.grading.check import Result, check, check_exercise, check_notebook
from mnistloc.grading.exercises.base import LESSONS, CheckFailure, Exercise, keras, quiet
from mnistloc.grading.registry import EXERCISES, PRELUDE, REFERENCES, SECRET_SEED_ENV, secret_seed

__all__ = ["EXERCISES", "LESSONS", "PRELUDE", "REFERENCES", "SECRET_SEED_ENV", "CheckFailure", "Exercise", "Result",
           "check", "check_exercise", "check_notebook", "keras", "quiet", "secret_seed"]
