"""mnistloc: object localization and detection on canvases of MNIST digits.

The library, what the lessons import (one concept each):

- ``data``: the MNIST digits (bundled sample or a local ``mnist.npz``).
- ``canvas``: the four cases and case 5, canvases made in whole batches; ``CASES``, ``SLOTS``, ``NUM_CLASSES``.
- ``scenes``: case 5's canvases: digits resized by area, overlapping a little.
- ``dense``: case 5's detector around the dense heads: scale-aware targets, peaks, NMS.
- ``boxes``: box formats, conversions and IoU.
- ``metrics``: accuracy, IoU rates, matching detections to truths, COCO average precision.
- ``coco``: writing a dataset as PNGs and a COCO instances file.
- ``viz``: pictures of canvases, predictions, training curves, heatmaps, NMS, precision-recall
  curves and confusion matrices (matplotlib, scikit-learn).
- ``decoding``: boxes to per-cell training maps (heatmap, box distances) and back (NumPy only).
- ``peaks``: picking detections: heatmap peaks (3x3 max-pool) and greedy IoU NMS.
- ``losses``: the dense models' losses (focal, masked L1, IoU, class), keyed by output.
- ``models``: the Keras heads, the reference models, and the seed's classic model.
- ``precision``: float32, or bfloat16 where the CPU has bfloat16 units.
- ``training``: training a case's model in a budget of steps or seconds; saving and loading it.
- ``pretrained``: the shipped reference weights of each case's model.
- ``evaluation``: scoring a model on held-out digits against the targets.
- ``demo``: the main job, every case end to end (``make demo``).
- ``checks``: what a lesson's test cell imports (``check_exercise``), over ``grading``.
- ``cli`` (and ``__main__``): the ``mnistloc`` command.

``grading``: everything that judges student code (registry of exercises, checks,
notebook reader, doctor, sandbox, the hardened grader, the leaderboard); see its own map.

Importing the package imports neither TensorFlow nor matplotlib, but makes
TensorFlow's later import quiet (``_quiet``: its start-up log lines filtered out).
"""
from mnistloc import _quiet

__version__ = "0.1.0"

_quiet.install()
