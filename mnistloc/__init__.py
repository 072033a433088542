"""mnistloc: object localization and detection on canvases of MNIST digits.

Modules, one concept each: ``data`` (digits), ``canvas`` (the four cases),
``boxes`` (formats and IoU), ``metrics`` (accuracy, IoU rates, COCO AP),
``viz`` (pictures), ``models`` (Keras builders and training), ``checks``
(graded exercises), ``cli`` (the ``mnistloc`` command).
Importing the package imports neither TensorFlow nor matplotlib; it keeps
TensorFlow's start-up log lines quiet when TensorFlow is imported later
(``mnistloc._quiet``).
"""
from mnistloc import _quiet

_quiet.install()
__version__ = "0.1.0"
