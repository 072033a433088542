"""Everything that judges student code. Where to look:

- ``registry``: every exercise by name, the lessons, the prelude, the secret seed;
  ``questions``: the written questions, their prompts and model answers.
- ``exercises``: ``base`` (``Exercise``, ``Property``, ``CheckFailure``), ``outputs`` (reducing
  outputs to plain data and comparing them) and one module per topic (``canvas``, ``labels``,
  ``metrics``, ``classic``, ``heads``, ``losses``, ``target_parts``, ``decoder_parts``, ``assembly``,
  ``crowds``).
- ``judge``: the one judge: ``read_answers`` (the answer cells of a notebook, one rule),
  ``plan`` (what to run), ``judge`` (outcomes -> ``Result``: points, status, hint).
- ``check``: ``check``, ``check_exercise`` (a notebook's test cell), ``check_notebook``
  (``mnistloc check``); ``pytest_plugin``: ``pytest LESSON.ipynb``, one test per exercise;
  ``pictures``: a failing check's picture; ``reveal``: one exercise's answer, step by step,
  for a self-learner after trying (never while grading).
- ``notebook``: the one notebook reader (parse, schema, graded cells, which lesson).
- ``doctor``: what is structurally wrong with a notebook, and how to fix it.
- ``sandbox``: runs untrusted code in a child process (parent side); ``child``: the
  child's loop and the reference trap; ``launcher``: starts, frames and stops every
  child (the grader's and the leaderboard's); ``warm_parent``: a process that imported
  TensorFlow once and forks the children of a class; ``wire``: the replies' plain-data
  format; ``confine``: the child confines itself (namespaces, mounts, limits, uid);
  ``warden``: what the grading process does around its children (fresh uids, memory
  cgroups, sweeps, its own limits, the capabilities probe); ``syscall_filter``: the
  seccomp filter ``confine`` installs.
- ``grade``: ``grade_course``, the hardened grader of a class; ``results``: its
  rows, CSV, JSON, feedback pages, shards and nbgrader's gradebook; ``dashboard``:
  the class page (``class.html``: pass rates, histograms, named mistakes) built from
  those rows; ``lms_export``: the gradebook as Canvas's or Moodle's import CSV.
- ``leaderboard``: the class's case 5 models scored on hidden canvases (CSV, HTML);
  ``model_child``: its child, which vets, loads (Keras safe mode) and runs one model.

Lessons import ``mnistloc.checks``, a thin door over this package.
"""
