"""Typical wrong answers written from the lessons' text (``tests/mistakes/``): every one is rejected, at
least 85% get a hint that names the mistake (a catalogued hint or a named property), and no catalogued
hint names a mistake the answer does not make."""
from __future__ import annotations

import functools

import pytest

import mistakes
from mistakes import blind_a, blind_b, blind_c, canvas, classic, detector, holdout, losses, metrics

CORPUS = (canvas.MISTAKES + metrics.MISTAKES + detector.MISTAKES + losses.MISTAKES + classic.MISTAKES
          + holdout.MISTAKES + blind_a.MISTAKES + blind_b.MISTAKES + blind_c.MISTAKES)
SLOW = {"classic_model"}  # each answer builds a dozen models


@functools.lru_cache(maxsize=None)
def verdict(i: int) -> dict:
    """What ``mnistloc check`` makes of corpus entry ``i`` (``mistakes.verdict``)."""
    return mistakes.verdict(*CORPUS[i])


def _params(slow: bool):
    return [pytest.param(i, id=f"{e[0]}-{e[1].__name__}", marks=[pytest.mark.slow] if e[0] in SLOW else [])
            for i, e in enumerate(CORPUS)]


def test_the_corpus_covers_every_exercise_of_this_issue_with_at_least_sixty_mistakes():
    assert len(CORPUS) >= 60
    assert {e[0] for e in CORPUS} >= {"place_digit", "tight_box", "union_box", "one_hot", "order_left_to_right",
                                      "iou", "average_precision", "match_detections", "heatmap_targets",
                                      "box_targets", "boxes_from_cells", "find_peaks", "nms", "masked_box_loss",
                                      "focal_loss", "iou_loss", "classic_model"}


@pytest.mark.parametrize("i", _params(True))
def test_a_typical_mistake_is_rejected_and_never_given_another_mistakes_hint(i):
    v = verdict(i)
    assert v["rejected"], CORPUS[i][1].__name__
    assert not v["misnamed"], v["hint"]
    assert "\x1b[" not in v["hint"] and "AssertionError" not in v["hint"]


def test_at_least_85_percent_of_the_fast_corpus_is_named():
    fast = [i for i, e in enumerate(CORPUS) if e[0] not in SLOW]
    named = [verdict(i)["named"] for i in fast]
    unnamed = [f"{CORPUS[i][1].__name__}: {verdict(i)['hint']}" for i in fast if not verdict(i)["named"]]
    assert sum(named) / len(named) >= 0.85, "\n".join(unnamed)
