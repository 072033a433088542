"""Keeps TensorFlow's start-up log lines out of every ``mnistloc`` command, lesson and grading child.

TensorFlow 2.21 writes C++ log lines while its libraries load, before it reads
``TF_CPP_MIN_LOG_LEVEL`` (measured: with the variable at 3, ``import tensorflow``
still prints ``All log messages before absl::InitializeLog()``, ``oneDNN custom
operations are on`` and ``Could not find cuda drivers``, twice each). So
``install()`` (run by ``import mnistloc``, which imports no TensorFlow) does three
things, in order of how much they touch:

1. sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it: the logs after start-up;
2. adds an import hook that runs TensorFlow's first import with the process's
   stderr (file descriptor 2) sent to a temporary file, then writes back every line
   that is not one of the known start-up lines (``STARTUP``): a real error still shows;
3. after that import, drops the ``tf.function retracing`` warning from TensorFlow's
   Python logger (Keras builds a new predict function per model, and scoring several
   models in one process sets it off although each model traces once or twice).

``TF_ENABLE_ONEDNN_OPTS`` is left alone: oneDNN's line is filtered like the others, and
turning oneDNN off changes the numbers (measured on case 3's model, seed 0: outputs differ
by up to 4e-8, the loss after 10 training steps by 7e-6, so runs recorded with oneDNN would
not repeat bit for bit) and slows prediction (0.39 vs 0.30 CPU seconds for 256 canvases).
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile

STARTUP = ("absl::InitializeLog()", "oneDNN custom operations are on", "Could not find cuda drivers",
           "cpu_feature_guard.cc", "rebuild TensorFlow with the appropriate compiler flags",
           "failed call to cuInit", "Unable to register cu", "TF-TRT Warning")
"""Parts of the lines TensorFlow prints while it loads on a machine without a GPU."""
RETRACING = "triggered tf.function retracing"


def is_startup_line(line: str) -> bool:
    """True for a line of TensorFlow's start-up log (``STARTUP``)."""
    return any(part in line for part in STARTUP)


@contextlib.contextmanager
def quiet_stderr():
    """Sends file descriptor 2 to a temporary file; on exit writes back the lines that are not start-up noise."""
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_startup_line(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _NoRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


def silence_retracing() -> None:
    """Drops the ``tf.function retracing`` warning from TensorFlow's logger (once; TensorFlow must be imported).

    Called after the quiet first import, and by ``mnistloc.training`` for a process that imported TensorFlow
    before ``mnistloc`` (then the import hook never ran)."""
    from tensorflow.python.platform import tf_logging

    logger = tf_logging.get_logger()
    if not any(isinstance(f, _NoRetracingWarning) for f in logger.filters):
        logger.addFilter(_NoRetracingWarning())


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's ``exec_module`` inside ``quiet_stderr``."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # TensorFlow sees its own loader
        with quiet_stderr():
            self.loader.exec_module(module)
        silence_retracing()  # after TF set its logger up


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with a loader that keeps its start-up lines quiet."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Sets ``TF_CPP_MIN_LOG_LEVEL`` and the import hook, unless TensorFlow is already imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
