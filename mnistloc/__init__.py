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
- ``training``: training a case's model in a time budget; saving and loading it.
- ``evaluation``: scoring a model on held-out digits against the targets.
- ``demo``: the main job, every case end to end (``make demo``).
- ``checks``: what a lesson's test cell imports (``check_exercise``), over ``grading``.
- ``cli`` (and ``__main__``): the ``mnistloc`` command.

``grading``: everything that judges student code (registry of exercises, checks,
notebook reader, doctor, sandbox, the hardened grader); see its own map.

Importing the package imports neither TensorFlow nor matplotlib.
"""
__version__ = "0.1.0"
