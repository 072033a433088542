"""mnistloc: object localization and detection on canvases of MNIST digits.

Modules, one concept each: ``data`` (digits), ``canvas`` (the four cases),
``boxes`` (formats and IoU), ``metrics`` (accuracy, IoU rates, COCO AP),
``viz`` (pictures), ``models`` (Keras builders and training), ``checks``
(graded exercises), ``cli`` (the ``mnistloc`` command).
Importing the package imports neither TensorFlow nor matplotlib, but it makes
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
