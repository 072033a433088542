"""The lessons' written questions: answered in a markdown cell, graded by hand in formgrader.

A question's answer cell is an nbgrader *manually graded answer* (markdown,
``solution`` and ``grade`` true, ``points``), with ``grade_id`` = the
question's name (``solutions/build.py`` writes it). No code judges it: ``mnistloc
grade`` lists it with the status ``manual`` and 0 automatic points, and leaves
its score to the instructor in formgrader; ``mnistloc check`` does not score it.
The question's text is in the lesson, in the markdown cell just before.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Question:
    """One written question: its ``name`` (the answer cell's grade id), ``lesson`` and hand-graded ``points``."""

    name: str
    lesson: str
    points: int


QUESTIONS = (
    Question("q_classic_plateau", "01-single-digit", 2),
    Question("q_tight_or_frame", "01-single-digit", 1),
    Question("q_mask_on_empty", "02-presence", 2),
    Question("q_confusions", "03-multi-class", 1),
    Question("q_nms_removes_truth", "03-multi-class", 2),
    Question("q_score_order", "04-multiple-digits", 1),
    Question("q_crowd_nms", "05-many-digits", 2),
)
