"""The shipped reference weights load and score what their record says, on 200 fresh test canvases."""
import numpy as np
import pytest

from mnistloc import boxes as B
from mnistloc import decoder, evaluation, metrics, pretrained

N = 200
RATES = ("presence_accuracy", "count_accuracy", "class_accuracy", "joint_accuracy", "iou50", "iou75")
"""Metrics that are a share of canvases: binomial over the 200."""


def test_some_weights_are_shipped():
    assert 3 in pretrained.available()  # the case the benchmark runs first
    assert 5 in pretrained.available()  # bench/quality_case5.py install


@pytest.mark.slow
@pytest.mark.parametrize("case", pretrained.available())
def test_shipped_weights_score_their_recorded_numbers(case):
    record = pretrained.record(case)
    model = pretrained.model(case)
    ds = evaluation.test_dataset(case, N, seed=evaluation.TEST_SEED + 1)  # other canvases than the record's
    outputs = evaluation.predict(model, ds)
    scores = evaluation.score(case, ds, outputs)
    for name in RATES:
        if name not in record["metrics"] or name not in scores:
            continue
        p = record["metrics"][name]
        # A share of n canvases has standard error sqrt(p (1 - p) / n): 0.012 at p = 0.97 and n = 200. Four of
        # them, plus two canvases (2 / n) for p near 1, where the normal approximation fails. n counts only the
        # canvases that hold a digit (box rates skip empty ones: about 131 of 200 in case 2, so one missed
        # canvas there is 1 / 131 = 0.0076).
        n = int(ds.mask.any(axis=1).sum())
        tolerance = 4 * np.sqrt(p * (1 - p) / n) + 2 / n
        assert abs(scores[name] - p) <= tolerance, (case, name, scores[name], p, tolerance)
    if case == 5:
        _assert_average_precision_near_the_record(ds, outputs, scores, record["metrics"])
    if case in (1, 3):
        pred = decoder.decode(case, outputs)
        ious = B.iou(ds.boxes[:, 0], pred["boxes"][:, 0])  # (200,) one IoU per canvas
        # The mean of 200 IoUs has standard error sd / sqrt(200), sd measured on these canvases.
        tolerance = 4 * ious.std(ddof=1) / np.sqrt(N)
        assert abs(scores["mean_iou"] - record["metrics"]["mean_iou"]) <= tolerance


def test_missing_weights_say_how_to_make_them(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    assert pretrained.available() == ()
    with pytest.raises(FileNotFoundError, match="bench/quality.py"):
        pretrained.model(3)
    with pytest.raises(FileNotFoundError, match="bench/bump_width.py"):
        pretrained.model(5)
    with pytest.raises(ValueError, match="case"):
        pretrained.model(6)


def _assert_average_precision_near_the_record(ds, outputs, scores, recorded, resamples: int = 40):
    """Case 5's mAP and AP50 on 200 canvases against the record's on 2,000.

    AP is no share of canvases, so its standard error is measured: the spread of the AP over
    ``resamples`` bootstrap draws of the 200 canvases (with replacement). Four of them.
    """
    true_boxes, true_labels = ds.box_lists()
    found = decoder.detections(decoder.decode(5, outputs)["found"])
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, len(ds), len(ds))
        ap = metrics.mean_average_precision([true_boxes[j] for j in i], [true_labels[j] for j in i],
                                            *([part[j] for j in i] for part in found))
        draws.append([ap["map"], ap["map50"]])
    se = np.std(draws, axis=0, ddof=1)  # [2] bootstrap standard errors of mAP and AP50
    for name, error in zip(("map", "map50"), se):
        assert abs(scores[name] - recorded[name]) <= 4 * error, (name, scores[name], recorded[name], 4 * error)


@pytest.mark.slow
def test_cli_evaluates_the_shipped_weights_as_their_record_says(capsys):
    """`mnistloc evaluate shipped --case 1` scores the package's weights on the record's own test canvases."""
    import json

    from mnistloc import cli

    assert cli.main(["evaluate", "shipped", "--case", "1", "--json"]) == 0
    got, recorded = json.loads(capsys.readouterr().out), pretrained.record(1)["metrics"]
    assert set(got) == set(recorded)
    for name, value in recorded.items():  # the same canvases and weights: equal up to two canvases of 2,000
        assert got[name] == pytest.approx(value, abs=1e-3), name
