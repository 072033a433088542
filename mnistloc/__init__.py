"""mnistloc: object localization and detection on canvases of MNIST digits.

The library, what the lessons import (one concept each):

- ``data``: the MNIST digits (bundled sample or a local ``mnist.npz``).
- ``canvas``: the four cases and case 5, canvases made in whole batches; ``CASES``, ``SLOTS``, ``NUM_CLASSES``.
- ``scenes``: case 5's canvases: digits resized by area, overlapping a little.
- ``dense``: case 5's detector around the dense heads: scale-aware targets, peaks, NMS.
- ``boxes``: box formats, conversions and IoU.
- ``metrics``: accuracy, IoU rates, COCO average precision.
- ``coco``: writing a dataset as PNGs and a COCO instances file.
- ``viz``: pictures of canvases, predictions and training curves (matplotlib).
- ``decoding``: boxes to per-cell training maps and back (NumPy only).
- ``models``: the Keras heads and reference models.
- ``precision``: float32, or bfloat16 where the CPU has bfloat16 units.
- ``training``: training a case's model in a budget of steps or seconds; saving and loading it.
- ``pretrained``: the shipped reference weights of each case's model.
- ``evaluation``: scoring a model on held-out digits against the targets.
- ``demo``: the main job, every case end to end (``make demo``).
- ``checks``: what a lesson's test cell imports (``check_exercise``), over ``grading``.
- ``cli`` (and ``__main__``): the ``mnistloc`` command.

``grading``: everything that judges student code (registry of exercises, checks,
notebook reader, doctor, sandbox, the hardened grader); see its own map.

Importing the package imports neither TensorFlow nor matplotlib, but makes
TensorFlow's later import quiet (``_QuietTensorFlow``).
"""
import contextlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logs after start-up: errors only


@contextlib.contextmanager
def _stderr_to_devnull():
    """Points file descriptor 2 at /dev/null inside the block: silences C++ code that writes to it."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlow:
    """Imports TensorFlow, whenever something first imports it, with its start-up lines silenced.

    TensorFlow 2.21 writes ``oneDNN custom operations are on``, ``Could not find
    cuda drivers`` and an absl warning to stderr twice while it is imported,
    before it reads ``TF_CPP_MIN_LOG_LEVEL`` (no environment variable stops
    them). This finder (``sys.meta_path``) wraps TensorFlow's loader so that its
    module runs with stderr pointed at /dev/null, then steps aside; Python's
    own errors still arrive as exceptions, after stderr is back.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """A loader that runs another loader's module with stderr silenced, then hands the module back to it."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_to_devnull():
            self.loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.loader


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlow())
