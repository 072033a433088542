"""The five cases of the course, each as one spec: the only place that says what a case number means.

A ``Case`` holds everything that differs between the cases, as data:

- the canvas recipe (``mnistloc.canvas``): one class or all, how many digits
  a canvas, how many slots its labels have;
- the per-canvas labels that a classic model learns (``labels``);
- the detector: its named outputs, the bump-width policy of its targets
  (``mnistloc.targets``), whether it has a count head;
- how its outputs are read (``mnistloc.decoder``): which peaks are digits
  (``pick``), NMS, how many peaks;
- how it is scored (``mnistloc.evaluation``): the metrics, the box they
  measure, and the targets to meet.

Every other module asks ``get(case)`` and reads these fields; none compares a
case number itself (the CLI's argument check aside).
"""
from __future__ import annotations

import dataclasses

MAX_DIGITS = 6  # case 5's most digits a canvas
SLOTS = 2  # cases 1-4: at most two digits a canvas
PICKS = ("best", "threshold", "count_head", "all")
"""How a detector's peaks become digits: the best peak is the one digit; every peak scoring at least the
threshold (at most ``slots``); the count head's number of best peaks; every peak NMS keeps that scores at
least the threshold."""
BOX_KINDS = ("first", "union", "matched")
"""Which box ``mean_iou`` measures: the one digit's; the union of the digits' (on canvases with digits);
each true digit's against its best-overlapping predicted digit."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One case of the course. See the module docstring; the fields are data, never behaviour."""

    number: int
    nickname: str  # a short name for tables: "single class", ...
    title: str  # what a canvas holds
    predicts: str  # what the model predicts
    one_class: bool  # every digit of one class (``make_dataset``'s ``digit``)
    counts: str  # "one" digit, a "mix" of 0, 1 and 2, or "many" (0 to MAX_DIGITS at many sizes)
    slots: int  # label slots a canvas
    labels: tuple[str, ...]  # ``CanvasDataset.targets()``'s keys: what a classic model learns
    classic_outputs: tuple[str, ...]  # the classic model's outputs (lesson 1), () where it has none
    outputs: tuple[str, ...]  # the detector's named outputs
    sigma: str  # the bump-width policy of the detector's targets: "fixed" or "size"
    count_head: bool  # the detector has a ``count`` output (one-hot over 0 .. slots digits)
    pick: str  # one of PICKS
    nms_iou: float | None  # NMS's threshold when decoding, None for none
    peaks: int  # peaks considered a canvas
    box_kind: str  # one of BOX_KINDS
    metrics: tuple[str, ...]  # what ``evaluation.score`` reports, in order
    targets: dict  # metric -> the minimum the reference model meets on every seed

    @property
    def classes(self) -> bool:
        """Whether the detector labels its digits (a ``class`` output)."""
        return "class" in self.outputs


CASES: dict[int, Case] = {c.number: c for c in (
    Case(1, "single class", "one digit of one class", "its box", one_class=True, counts="one", slots=SLOTS,
         labels=("box", "presence"), classic_outputs=("presence", "box"), outputs=("presence", "box"),
         sigma="fixed", count_head=False, pick="best", nms_iou=None, peaks=SLOTS, box_kind="first",
         metrics=("mean_iou", "iou50", "iou75"), targets={"mean_iou": 0.85, "iou50": 0.99}),
    Case(2, "presence", "empty, one or two digits", "presence, and the box around the digit(s)", one_class=False, counts="mix",
         slots=SLOTS, labels=("presence", "box"), classic_outputs=("presence", "box"),
         outputs=("presence", "box"), sigma="fixed", count_head=False, pick="threshold", nms_iou=None, peaks=SLOTS,
         box_kind="union", metrics=("presence_accuracy", "mean_iou", "iou50", "iou75"),
         targets={"presence_accuracy": 0.995, "mean_iou": 0.85}),
    Case(3, "multi-class", "one digit of any class", "its class and box", one_class=False, counts="one", slots=SLOTS,
         labels=("class", "box"), classic_outputs=("class", "box"), outputs=("presence", "box", "class"),
         sigma="fixed", count_head=False, pick="best", nms_iou=None, peaks=SLOTS, box_kind="first",
         metrics=("class_accuracy", "mean_iou", "iou50", "iou75", "joint_accuracy"),
         targets={"class_accuracy": 0.97, "mean_iou": 0.90, "joint_accuracy": 0.96}),
    Case(4, "multiple objects", "empty, one or two digits of any class", "count, boxes and classes, left to right", one_class=False,
         counts="mix", slots=SLOTS, labels=("count", "boxes", "classes", "mask"),
         classic_outputs=("count", "boxes", "classes"), outputs=("presence", "box", "class", "count"),
         sigma="fixed", count_head=True, pick="count_head", nms_iou=None, peaks=10, box_kind="matched",
         metrics=("count_accuracy", "map", "map50", "map75", "class_accuracy", "mean_iou"),
         targets={"count_accuracy": 0.99, "map50": 0.93, "map": 0.70}),
    Case(5, "many sizes", "zero to six digits of any class at scales 0.6-1.6, frames overlapping up to IoU 0.3",
         "every digit's box and class (dense peaks + NMS, no slots)", one_class=False, counts="many",
         slots=MAX_DIGITS, labels=("count", "boxes", "classes", "mask"), classic_outputs=(),
         outputs=("presence", "box", "class"), sigma="size", count_head=False, pick="all", nms_iou=0.5, peaks=20,
         box_kind="matched", metrics=("count_accuracy", "map", "map50", "map75"),
         targets={"map50": 0.90, "map": 0.65}),
)}
"""Every case by number."""

BRIEF_CASES = (1, 2, 3, 4)  # the four cases of the course brief
ALL_CASES = tuple(CASES)  # and case 5: any number of digits at any size


def get(case) -> Case:
    """The spec of ``case``.

    Raises:
        ValueError: ``case`` is not one of ``ALL_CASES``.
    """
    if isinstance(case, bool) or case not in CASES:
        raise ValueError(f"`case` should be one of {ALL_CASES}. Got case={case!r}.")
    return CASES[case]


def name(case: int) -> str:
    """``"1 single class"``: the case and its nickname, for tables."""
    return f"{case} {get(case).nickname}"


def with_classic_model() -> tuple[int, ...]:
    """The cases that have a classic model (lesson 1's Flatten + Dense baseline)."""
    return tuple(n for n, c in CASES.items() if c.classic_outputs)
