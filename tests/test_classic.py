"""The seed's classic model (models.classic_model, compile_classic, classic_targets)."""
import numpy as np
import pytest

from mnistloc import canvas

keras = pytest.importorskip("keras")
from mnistloc import losses, models  # noqa: E402

SHAPES = {1: {"presence": (1,), "box": (4,)}, 2: {"presence": (1,), "box": (4,)}, 3: {"class": (10,), "box": (4,)},
          4: {"count": (3,), "boxes": (2, 4), "classes": (2, 10)}}


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_classic_model_outputs_and_targets(case):
    model = models.classic_model(case, size=64, filters=(4, 4, 8), units=16)
    ds = canvas.make_dataset(case, 6, seed=case, size=64)
    out = model(ds.images.astype(np.float32))
    assert model.name == f"classic{case}"
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == SHAPES[case]
    for name in ("box", "boxes", "presence"):  # sigmoids: rel_xyxy and a probability in [0, 1]
        if name in out:
            assert 0 <= float(np.min(out[name])) and float(np.max(out[name])) <= 1
    for name in ("class", "count", "classes"):  # softmaxes
        if name in out:
            np.testing.assert_allclose(np.sum(out[name], -1), 1, rtol=1e-5)
    t = models.classic_targets(ds)
    assert set(t) == set(SHAPES[case])
    masked = {(2, "box"): 5, (4, "boxes"): 5, (4, "classes"): 11}  # a mask channel first
    for name, shape in SHAPES[case].items():
        assert t[name].shape[1:] == shape[:-1] + (masked.get((case, name), shape[-1]),)


def test_classic_targets_hand_made_case_2():
    ds = canvas.make_dataset(2, 40, seed=0)
    t = models.classic_targets(ds)
    empty = np.flatnonzero(ds.count == 0)[0]
    full = np.flatnonzero(ds.count == 2)[0]
    np.testing.assert_array_equal(t["box"][empty], [0, 0, 0, 0, 0])  # mask 0: no box to learn
    x0, y0 = ds.boxes[full, :, :2].min(0)  # the union of the two boxes, divided by 128
    x1, y1 = ds.boxes[full, :, 2:].max(0)
    np.testing.assert_allclose(t["box"][full], np.array([128, x0, y0, x1, y1]) / 128, rtol=1e-6)


@pytest.mark.parametrize("case", [2, 4])
def test_compile_classic_losses_by_output_name_and_a_step_learns(case):
    model = models.compile_classic(models.classic_model(case, size=64, filters=(4, 4, 8), units=16), case,
                                   learning_rate=1e-2, loss_weights={"count": 2.0} if case == 4 else None)
    loss = model.loss
    if case == 2:
        assert loss["box"] is losses.masked_box_loss  # no box loss on an empty canvas
    else:
        assert loss["boxes"] is losses.masked_box_loss and loss["classes"] is losses.masked_class_loss
    ds = canvas.make_dataset(case, 32, seed=1, size=64)
    x, y = ds.images.astype(np.float32), models.classic_targets(ds)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] < before


def test_classic_model_bad_arguments():
    with pytest.raises(ValueError, match="case"):
        models.classic_model(5)
    with pytest.raises(ValueError, match="size"):
        models.classic_model(1, size=16)
    with pytest.raises(ValueError, match="outputs"):
        models.compile_classic(models.classic_model(1, size=64, filters=(4, 4, 8), units=8), 3)


@pytest.mark.slow
def test_the_classic_check_rejects_same_padding_and_names_it():
    """With padding='same' the weights differ in shape, so the model is judged by its properties: the spatial
    size after each convolution and pooling (64 px, valid: 62, 31, 29, 14, 12, 6; same: 64, 32, 32, 16, 16, 8)
    is one of them."""
    from mistakes.classic import classic_same_padding

    from mnistloc.checks import check

    result = check("classic_model", classic_same_padding)
    assert not result.passed and "padding" in result.hint, result.hint


@pytest.mark.slow
def test_a_right_model_after_one_of_its_own_structure_still_passes_in_the_same_process():
    """A grading process judges student after student: the reference's properties-only output, made for a model
    of its own structure, must never be served for the full judging of the next (a bug once)."""
    from mistakes.classic import classic_same_padding

    from mnistloc.checks import check
    from mnistloc.models import classic_model

    def right(*, size=128, filters=(16, 32, 64), units=128):
        return classic_model(1, size=size, filters=filters, units=units)

    assert not check("classic_model", classic_same_padding).passed
    assert check("classic_model", right).passed
    assert not check("classic_model", classic_same_padding).passed
