"""The dense models' losses (mnistloc.losses): hand-worked numbers, masks, gradients, and numpy re-implementations."""
import numpy as np
import pytest

from mnistloc import boxes as B

keras = pytest.importorskip("keras")
from mnistloc import losses, models  # noqa: E402

L2 = np.log(2)


def value(loss, y_true, y_pred) -> float:
    return float(loss(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32)))


# ---- focal_loss ---------------------------------------------------------------------------------

def test_focal_loss_hand_worked():
    y_true = np.zeros((1, 3, 3, 1))
    y_true[0, 1, 1], y_true[0, 1, 2] = 1.0, 0.5  # a centre and a neighbour on its bump
    y_pred = np.full((1, 3, 3, 1), 0.1)
    y_pred[0, 1, 1], y_pred[0, 1, 2] = 0.5, 0.5
    centre = (1 - 0.5) ** 2 * L2  # -(1 - p)^2 log p = 0.25 * 0.6931 = 0.17329
    near = (1 - 0.5) ** 4 * 0.5 ** 2 * L2  # -(1 - y)^4 p^2 log(1 - p) = 0.0625 * 0.25 * 0.6931 = 0.01083
    far = 7 * 0.1 ** 2 * -np.log(0.9)  # seven cells with y = 0: 7 * 0.01 * 0.10536 = 0.00738
    assert value(losses.focal_loss, y_true, y_pred) == pytest.approx(centre + near + far, rel=1e-4)  # / 1 centre


def test_focal_loss_divides_by_the_number_of_centres_at_least_one():
    y_true = np.zeros((2, 4, 4, 1))
    y_true[0, 1, 1] = y_true[1, 2, 2] = 1.0
    y_pred = np.full((2, 4, 4, 1), 1e-9)  # clipped to 1e-6: the empty cells cost ~ 1e-12 each
    y_pred[0, 1, 1] = y_pred[1, 2, 2] = 0.5
    # two centres, each 0.25 * log 2: their mean is 0.25 * log 2, not the sum
    assert value(losses.focal_loss, y_true, y_pred) == pytest.approx(0.25 * L2, rel=1e-4)
    empty = np.zeros((1, 4, 4, 1))
    p = np.full((1, 4, 4, 1), 0.5)
    # no centre: the sum 16 * 0.5^2 * log 2 divided by max(0, 1) = 1, not 0
    assert value(losses.focal_loss, empty, p) == pytest.approx(16 * 0.25 * L2, rel=1e-4)


def focal_numpy(y, p, alpha=2, beta=4):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    pos = y == 1
    cost = np.where(pos, -(1 - p) ** alpha * np.log(p), -(1 - y) ** beta * p ** alpha * np.log(1 - p))
    return cost.sum() / max(pos.sum(), 1)


def test_focal_loss_matches_numpy_on_heatmap_targets():
    from mnistloc import canvas, targets

    ds = canvas.make_dataset(4, 8, seed=2)
    y = targets.heatmap_targets(ds.boxes, ds.mask)[..., None].astype(np.float64)
    p = np.random.default_rng(0).uniform(0.01, 0.99, y.shape)
    assert value(losses.focal_loss, y, p) == pytest.approx(focal_numpy(y, p), rel=1e-4)
    assert value(losses.heatmap_loss, y, p) == pytest.approx(focal_numpy(y, p), rel=1e-4)  # the former name


def test_focal_loss_uses_alpha_and_beta():
    y_true = np.zeros((1, 3, 3, 1))
    y_true[0, 1, 1], y_true[0, 1, 2] = 1.0, 0.5
    y_pred = np.full((1, 3, 3, 1), 0.1)
    y_pred[0, 1, 1], y_pred[0, 1, 2] = 0.5, 0.5
    centre = (1 - 0.5) ** 3 * L2  # alpha = 3: 0.125 * 0.6931 = 0.08664
    near = (1 - 0.5) ** 1 * 0.5 ** 3 * L2  # beta = 1: 0.5 * 0.125 * 0.6931 = 0.04332
    far = 7 * 0.1 ** 3 * -np.log(0.9)  # 7 * 0.001 * 0.10536 = 0.00074
    got = float(losses.focal_loss(y_true.astype(np.float32), y_pred.astype(np.float32), alpha=3.0, beta=1.0))
    assert got == pytest.approx(centre + near + far, rel=1e-4)


def test_focal_loss_is_finite_at_predictions_of_exactly_0_and_1():
    y_true = np.zeros((1, 3, 3, 1))
    y_true[0, 1, 1] = 1.0
    perfect = (y_true >= 1).astype(float)  # 1 at the centre, 0 elsewhere: log(1 - 0) and (1 - 1)^2 log(1)
    assert value(losses.focal_loss, y_true, perfect) == pytest.approx(0.0, abs=1e-6)
    # all wrong: the centre at 0 and 8 cells at 1 cost -log(1e-6) = 13.8 each (clipped), not inf
    assert value(losses.focal_loss, y_true, 1 - perfect) == pytest.approx(9 * -np.log(1e-6), rel=1e-3)


# ---- masked_box_loss ----------------------------------------------------------------------------

def test_masked_box_loss_counts_only_the_rows_with_a_digit():
    y_true = np.array([[1, .1, .1, .5, .5], [0, .9, .9, .9, .9]])
    # row 0: mean |error| = (.1 + .1 + .3 + .3) / 4 = .2; row 1 has no digit and adds nothing: .2 / 1
    # (without the mask: (.2 + .7) / 2 = .45)
    assert value(losses.masked_box_loss, y_true, np.full((2, 4), .2)) == pytest.approx(0.2)
    # a perfect box where the digit is costs 0, whatever is predicted where none is
    assert value(losses.masked_box_loss, y_true, [[.1, .1, .5, .5], [0, 0, 0, 0]]) == pytest.approx(0.0)
    assert value(losses.masked_box_loss, np.zeros((2, 5)), np.ones((2, 4))) == 0.0  # no digit: 0, not NaN


# ---- iou_loss -----------------------------------------------------------------------------------

def test_iou_loss_hand_worked():
    t = np.array([[1, 1, 1, 1, 1]])  # mask 1, a 2 x 2 box around the cell's centre
    # (1, 1, 0, 0): a 1 x 1 box in its corner: inter 1, union 4 + 1 - 1 = 4, IoU .25 -> loss .75
    assert value(losses.iou_loss, t, [[1, 1, 0, 0]]) == pytest.approx(0.75)
    # (2, 2, 2, 2): a 4 x 4 box around it: inter (1 + 1) * (1 + 1) = 4, union 16, IoU .25 -> .75
    assert value(losses.iou_loss, t, [[2, 2, 2, 2]]) == pytest.approx(0.75)
    # (-1, 1, -1, 1): sides that cross (width -2): no area, no overlap -> 1
    assert value(losses.iou_loss, t, [[-1, 1, -1, 1]]) == pytest.approx(1.0)
    assert value(losses.iou_loss, t, t[:, 1:]) == pytest.approx(0.0, abs=1e-6)


def test_iou_loss_is_weighted_by_the_mask():
    t = np.array([[1, 1, 1, 1, 1], [0.5, 1, 1, 1, 1], [0, 5, 5, 5, 5]])
    p = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    # losses .75, 0 and (masked out) 1: (1 * .75 + .5 * 0 + 0 * 1) / (1 + .5) = 0.5
    assert value(losses.iou_loss, t, p) == pytest.approx(0.5)
    assert value(losses.iou_loss, np.zeros((3, 5)), p) == 0.0  # nothing masked in: 0, not NaN


def test_iou_loss_is_finite_at_a_cell_with_no_box_at_all():
    # row 1: weight 0, a zero target and a zero prediction: union 0, so a bare 0 / 0 would be NaN (and NaN * 0 is
    # NaN); row 0 a perfect box: the loss is 0
    t, p = np.array([[1, 1, 2, 3, 1], [0, 0, 0, 0, 0]]), np.array([[1, 2, 3, 1], [0, 0, 0, 0]])
    assert value(losses.iou_loss, t, p) == pytest.approx(0.0, abs=1e-6)


def test_iou_loss_matches_box_iou_on_random_cells():
    rng = np.random.default_rng(1)
    t = rng.uniform(0.1, 3, (6, 4, 4, 5))
    t[..., 0] = rng.random((6, 4, 4)) < 0.4
    p = rng.uniform(0.1, 3, (6, 4, 4, 4))
    as_box = lambda d: np.stack([-d[..., 0], -d[..., 1], d[..., 2], d[..., 3]], -1)  # noqa: E731  around (0, 0)
    ious = B.iou(as_box(t[..., 1:]), as_box(p))
    expected = (t[..., 0] * (1 - ious)).sum() / t[..., 0].sum()
    assert value(losses.iou_loss, t, p) == pytest.approx(expected, rel=1e-4)
    assert value(losses.masked_iou_loss, t, p) == pytest.approx(expected, rel=1e-4)  # the former name


def test_losses_have_gradients_that_reach_the_prediction():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    t = tf.constant(np.concatenate([np.ones((4, 1)), rng.uniform(0.5, 2, (4, 4))], -1), tf.float32)
    for loss in (losses.iou_loss, losses.masked_box_loss, losses.box_loss):
        p = tf.Variable(rng.uniform(0.5, 2, (4, 4)), dtype=tf.float32)
        with tf.GradientTape() as tape:
            out = loss(t, p)
        assert np.abs(tape.gradient(out, p).numpy()).sum() > 0


# ---- the box and class losses, and the tables ------------------------------------------------------

def test_box_loss_is_l1_plus_iou():
    t = np.array([[1, 1, 1, 1, 1]])
    # L1: mean(|0|, |0|, |1|, |1|) = 0.5; IoU loss 0.75 (test_iou_loss_hand_worked)
    assert value(losses.masked_box_loss, t, [[1, 1, 0, 0]]) == pytest.approx(0.5)
    assert value(losses.box_loss, t, [[1, 1, 0, 0]]) == pytest.approx(1.25)


def test_masked_class_loss_numbers():
    y_true = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])  # mask, then one-hot over 3 classes
    y_pred = np.array([[.25, .5, .25], [.1, .1, .8]])
    assert value(losses.masked_class_loss, y_true, y_pred) == pytest.approx(L2, rel=1e-5)  # row 0: -log .5


def test_tables_have_one_home():
    assert set(losses.LOSSES) == set(losses.LOSS_WEIGHTS) == {"presence", "box", "class", "count"}
    assert losses.LOSSES["presence"] is losses.focal_loss and losses.LOSSES["box"] is losses.box_loss
    for name in ("masked_iou_loss", "box_loss", "heatmap_loss", "CUSTOM_OBJECTS"):
        assert not hasattr(models, name)  # each loss lives in mnistloc.losses only: no re-export from models
    assert {"focal_loss", "heatmap_loss", "iou_loss", "masked_iou_loss"} <= set(losses.CUSTOM_OBJECTS)


def test_a_model_saved_with_the_former_loss_names_loads(tmp_path):
    inputs = keras.Input(shape=(4, 4, 1))
    model = keras.Model(inputs, {"presence": keras.layers.Identity(name="presence")(inputs)})
    model.compile(loss={"presence": losses.heatmap_loss})
    model.save(tmp_path / "old.keras")
    loaded = keras.models.load_model(tmp_path / "old.keras", custom_objects=losses.CUSTOM_OBJECTS)
    assert loaded.output_names == ["presence"]
