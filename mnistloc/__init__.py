"""mnistloc: object localization and detection on canvases of MNIST digits.

The library, what the lessons import (one concept each):

- ``cases``: the five cases as specs (canvases, outputs, targets, decoding, metrics, targets to meet):
  the only module that says what a case number means.
- ``data``: the MNIST digits (bundled sample or a local ``mnist.npz``).
- ``canvas``: canvases of every case, made in whole batches, and their per-canvas labels.
- ``scaled_canvas``: canvases of digits at many sizes (case 5): resized by area, overlapping a little.
- ``boxes``: box formats, conversions and IoU.
- ``targets``: the one target encoder: centre heatmaps (fixed or size-aware bumps), box distances, classes per cell.
- ``decoder``: the one decoder: peaks, boxes at cells, refinement, NMS, scored labelled detections.
- ``nms_sweep``: choosing NMS's IoU threshold on validation canvases, and recall by digit size.
- ``metrics``: accuracy, IoU rates, matching detections to truths, COCO average precision.
- ``coco``: writing a dataset as PNGs and a COCO instances file.
- ``viz``: pictures of canvases, predictions, training curves, heatmaps, NMS, precision-recall
  curves and confusion matrices (matplotlib, scikit-learn).
- ``losses``: the detectors' losses (focal, masked L1, IoU, class), keyed by output.
- ``models``: the Keras heads, each case's detector, and the seed's classic model.
- ``dtype_policy``: float32, or bfloat16 where the CPU has bfloat16 units.
- ``training``: training a case's model in a budget of steps or seconds; saving and loading it.
- ``pretrained``: the shipped reference weights of each case's model.
- ``evaluation``: scoring a model on held-out digits against the targets.
- ``demo``: the main job, every case end to end (``make demo``); ``demo_page`` writes its page.
- ``course``: the course files shipped inside the package (the released lessons, the nbgrader configuration, the
  demo's sample class), and fetching the lessons into a student's folder (``mnistloc lessons``).
- ``checks``: what a lesson's test cell imports (``check_exercise``), over ``grading``.
- ``cli`` (and ``__main__``): the ``mnistloc`` command; ``_quiet``: TensorFlow's start-up log filtered.
- ``retired``: the modules and names an earlier release had, served to the notebooks released then
  (``from mnistloc import decoding`` and ``import mnistloc.decoding`` still work, with a ``FutureWarning``
  saying where its names live now).

``grading``: everything that judges student code (registry of exercises, checks,
notebook reader, doctor, sandbox, the hardened grader, the leaderboard); see its own map.

Importing the package imports neither TensorFlow nor matplotlib, but makes
TensorFlow's later import quiet (``_quiet``: its start-up log lines filtered out).
"""
import sys

from mnistloc import _quiet

__version__ = "0.1.0"

_quiet.install()


class _RetiredModules:
    """Finds a retired module for ``import mnistloc.decoding`` (the ``from mnistloc import decoding`` form asks
    ``__getattr__`` below); last on ``sys.meta_path``, so a module the package has is always found first."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        package, _, old = fullname.partition(".")
        if package != __name__ or not old or "." in old:
            return None
        import importlib.util

        import mnistloc.retired as retired

        return importlib.util.spec_from_loader(fullname, _RetiredModules) if old in retired.MODULES else None

    @staticmethod
    def create_module(spec):
        import mnistloc.retired as retired

        return retired.module(spec.name.partition(".")[2])

    @staticmethod
    def exec_module(module) -> None:
        """Nothing to run: the stand-in (or the module it became) is complete."""


if not any(isinstance(f, type) and f.__name__ == "_RetiredModules" for f in sys.meta_path):
    sys.meta_path.append(_RetiredModules)


def __getattr__(name: str):
    """A module retired from the package (``decoding``, ``peaks``, ``dense``, ``crowds``, ...), for notebooks
    released before it went: its stand-in from ``mnistloc.retired.MODULES``; anything else is an AttributeError."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import mnistloc.retired as retired  # not `from mnistloc import`: that asks this __getattr__ first

    return retired.module(name)
