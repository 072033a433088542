"""The dense models: output names and shapes, the losses' numbers, encoding and decoding."""
import numpy as np
import keras
import pytest

from mnistloc import boxes as B
from mnistloc import canvas, decoder, evaluation, losses, metrics, models, targets

SMALL = {"widths": (4, 4, 8), "hidden": 8}


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_case_model_outputs(case):
    model = models.build_model(case, **SMALL)
    out = model(np.zeros((2, 128, 128), np.float32))
    expected = {"presence": (2, 16, 16, 1), "box": (2, 16, 16, 4), "class": (2, 16, 16, 10), "count": (2, 3)}
    assert set(out) == set(models.OUTPUTS[case])
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: expected[k] for k in models.OUTPUTS[case]}
    assert model.name == f"case{case}"


def test_backbone_is_stride_8_for_other_sizes():
    model = models.build_backbone(64, widths=(4, 4, 8))
    assert tuple(model(np.zeros((1, 64, 64))).shape) == (1, 8, 8, 8)  # 64 / 8 = 8 cells a side
    with pytest.raises(ValueError, match="size"):
        models.build_backbone(100)
    with pytest.raises(ValueError, match="case"):
        models.build_model(6)  # 1 to 5


@pytest.mark.parametrize("build, channels", [(models.build_presence_head, 1), (models.build_box_head, 4),
                                             (models.build_class_head, 10), (models.build_count_head, None)])
def test_heads_map_features_to_their_outputs(build, channels):
    head = build(channels=8, hidden=8)
    y = np.asarray(head(np.random.default_rng(0).normal(size=(3, 5, 7, 8)).astype(np.float32)))
    if channels is None:  # count: softmax over 0, 1, 2
        assert y.shape == (3, 3)
        np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)
    else:
        assert y.shape == (3, 5, 7, channels)  # any grid size
    if build is models.build_presence_head:
        assert ((y > 0) & (y < 1)).all()
    if build is models.build_class_head:
        np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)


def test_presence_head_starts_at_its_prior():
    head = models.build_presence_head(channels=4, hidden=4, prior=0.1)
    y = np.asarray(head(np.zeros((1, 3, 3, 4), np.float32)))  # zero features: only the bias speaks
    np.testing.assert_allclose(y, 0.1, rtol=1e-5)  # sigmoid(log(0.1 / 0.9)) = 0.1


def test_masked_box_loss_numbers():
    y_true = np.array([[1, .1, .1, .5, .5], [0, .9, .9, .9, .9]], np.float32)
    y_pred = np.full((2, 4), .2, np.float32)
    # row 0: mean |err| = (.1 + .1 + .3 + .3) / 4 = .2; row 1 is masked out; 0.2 / 1 digit = 0.2
    assert float(losses.masked_box_loss(y_true, y_pred)) == pytest.approx(0.2, abs=1e-6)
    two = np.array([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    # errors .2 and .8, both masked in: (.2 + .8) / 2 = .5
    assert float(losses.masked_box_loss(two, y_pred)) == pytest.approx(0.5, abs=1e-6)


def test_masked_box_loss_ignores_empty_canvases():
    rng = np.random.default_rng(0)
    y_pred = rng.random((6, 16, 16, 4)).astype(np.float32)
    y_true = np.concatenate([np.zeros((6, 16, 16, 1)), rng.random((6, 16, 16, 4))], -1).astype(np.float32)
    y_true[:3, 4, 5, 0] = 1  # canvases 0-2 hold a digit at cell (4, 5); 3-5 are empty
    full = float(losses.masked_box_loss(y_true, y_pred))
    expected = np.abs(y_true[:3, 4, 5, 1:] - y_pred[:3, 4, 5]).mean()  # only the three masked cells count
    assert full == pytest.approx(expected, rel=1e-5)
    changed = y_true.copy()
    changed[3:, ..., 1:] += 7  # any box numbers on empty canvases: no change
    assert float(losses.masked_box_loss(changed, y_pred)) == pytest.approx(full, rel=1e-6)
    assert float(losses.masked_box_loss(y_true[3:], y_pred[3:])) == 0.0  # all empty: 0, not NaN


def test_masked_iou_loss_numbers():
    t = np.array([[1, 1, 1, 1, 1]], np.float32)  # a 2 x 2 box around the point
    # prediction (1, 1, 0, 0): a 1 x 1 box inside it: IoU = 1 / (4 + 1 - 1) = .25, loss .75
    assert float(losses.masked_iou_loss(t, np.array([[1, 1, 0, 0]], np.float32))) == pytest.approx(.75)
    assert float(losses.masked_iou_loss(t, t[:, 1:])) == pytest.approx(0, abs=1e-6)
    assert float(losses.masked_iou_loss(np.zeros((1, 5), np.float32), np.ones((1, 4), np.float32))) == 0


def test_masked_class_loss_numbers():
    y_true = np.array([[1, 0, 1, 0], [0, 1, 0, 0]], np.float32)  # mask, then one-hot over 3 classes
    y_pred = np.array([[.25, .5, .25], [.1, .1, .8]], np.float32)
    # row 0: -log(.5) = 0.6931; row 1 masked out
    assert float(losses.masked_class_loss(y_true, y_pred)) == pytest.approx(np.log(2), rel=1e-5)


def test_heatmap_loss_numbers():
    y_true = np.zeros((1, 4, 4, 1), np.float32)
    y_true[0, 1, 1, 0] = 1
    y_pred = np.zeros_like(y_true)
    y_pred[0, 1, 1, 0] = .5
    # centre: (1 - .5)^2 * -log(.5) = .25 * .6931 = .1733; elsewhere p ~ 0 costs ~ 0; one centre
    assert float(losses.heatmap_loss(y_true, y_pred)) == pytest.approx(.25 * np.log(2), rel=1e-4)


def test_encode_targets_hand_made_box():
    boxes = np.zeros((1, 2, 4), np.float32)
    boxes[0, 0] = (10, 20, 30, 44)  # centre (20, 32) px: column 20 // 8 = 2, row 32 // 8 = 4
    t = targets.encode_targets(boxes, np.array([[7, -1]]), np.array([[True, False]]), max_count=2)
    heat = t["presence"][0, ..., 0]
    assert heat[4, 2] == 1 and heat.sum() > 1 and np.unravel_index(heat.argmax(), heat.shape) == (4, 2)
    # that cell's centre is (2.5 * 8, 4.5 * 8) = (20, 36): l = 10 / 8, t = 16 / 8, r = 10 / 8, b = 8 / 8
    np.testing.assert_allclose(t["box"][0, 4, 2], [1, 1.25, 2, 1.25, 1])
    assert t["box"][0, 4, 4, 0] == 0  # two cells away: no box loss there
    assert t["box"][0, 5, 3, 0] == pytest.approx(np.exp(-1))  # diagonal neighbour: exp(-(1 + 1) / 2)
    np.testing.assert_array_equal(t["class"][0, 4, 2], [1] + [0] * 7 + [1, 0, 0])
    np.testing.assert_array_equal(t["count"], [[0, 1, 0]])


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_decode_inverts_encode(case):
    ds = canvas.make_dataset(case, 300, seed=case)
    t = targets.encode_targets(ds.boxes, ds.classes, ds.mask, max_count=2)
    outputs = {"presence": t["presence"], "box": t["box"][..., 1:], "class": t["class"][..., 1:],
               "count": t["count"]}
    pred = decoder.decode(case, {k: outputs[k] for k in models.OUTPUTS[case]})
    np.testing.assert_allclose(pred["boxes"], ds.boxes, atol=1e-4)
    np.testing.assert_array_equal(pred["mask"], ds.mask)
    np.testing.assert_array_equal(pred["count"], ds.count)
    if case == 2:
        np.testing.assert_allclose(B.union_box(pred["boxes"], pred["mask"]), B.union_box(ds.boxes, ds.mask), atol=1e-4)
    if case >= 3:
        np.testing.assert_array_equal(pred["classes"], ds.classes)
    if case == 4:
        found = decoder.detections(pred["found"])
        ap = metrics.mean_average_precision([b[m] for b, m in zip(ds.boxes, ds.mask)],
                                            [c[m] for c, m in zip(ds.classes, ds.mask)], *found)
        assert ap["map"] == pytest.approx(1.0)


def test_decode_rejects_bad_input():
    with pytest.raises(ValueError, match="case"):
        decoder.decode(0, {})
    with pytest.raises(ValueError, match="outputs"):
        decoder.decode(1, np.zeros((2, 16, 16, 1)))
    with pytest.raises(ValueError, match="count"):
        decoder.decode(4, {"presence": np.zeros((1, 16, 16, 1)), "box": np.zeros((1, 16, 16, 4)),
                            "class": np.zeros((1, 16, 16, 10))})
    with pytest.raises(ValueError, match="boxes"):
        targets.encode_targets(np.zeros((2, 4)), np.zeros((2, 1)), np.zeros((2, 1), bool))
