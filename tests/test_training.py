"""Training, saving, evaluation and the train/evaluate subcommands, on tiny models and few steps."""
import dataclasses
import json

import numpy as np
import keras
import pytest

from mnistloc import cli, dtype_policy, evaluation, models, training

SMALL = {"widths": (4, 8, 8), "hidden": 8}


def _fixed_batch(case):
    return training.CanvasFeeder(case, 64, batch_size=64, seed=123, fresh=False)[0]


@pytest.mark.parametrize("case", [2, 4])
def test_a_few_steps_lower_the_loss(case):
    keras.utils.set_random_seed(0)
    model = models.compile_model(models.build_model(case, **SMALL))
    x, y = _fixed_batch(case)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    training.train(case, epochs=4, canvases_per_epoch=256, batch_size=32, validation=0, progress=False,
                   model=model, learning_rate=3e-3, warmup_steps=4)  # 32 steps: a short warm-up
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < 0.9 * before, (before, after)


def test_time_budget_stops_before_the_epochs():
    model, history = training.train(1, seconds=2, epochs=10_000, canvases_per_epoch=64, batch_size=32,
                                    validation=32, progress=False, **SMALL)
    assert len(history.history["loss"]) < 10_000  # the budget, not the epochs, ended it
    assert set(history.history) >= {"loss", "box_loss", "presence_loss", "val_loss"}
    assert history.seconds > 0


def test_cpu_clock_budget_stops_too():
    _, history = training.train(1, seconds=1, clock="cpu", epochs=10_000, canvases_per_epoch=64, batch_size=32,
                                validation=0, progress=False, **SMALL)
    assert len(history.history["loss"]) < 10_000 and history.cpu_seconds > 0
    with pytest.raises(ValueError, match="clock"):
        training.Budget(1e-3, seconds=1, clock="sundial")


def test_feeder_makes_fresh_canvases_each_epoch():
    feeder = training.CanvasFeeder(3, 10, batch_size=4)
    x0, y0 = feeder[0]
    assert x0.shape == (4, 128, 128) and x0.dtype == np.float32 and len(feeder) == 3  # ceil(10 / 4)
    assert set(y0) == {"presence", "box", "class"} and y0["box"].shape == (4, 16, 16, 5)
    feeder.on_epoch_end()
    assert not np.array_equal(feeder[0][0], x0)
    same = training.CanvasFeeder(3, 10, batch_size=4)
    np.testing.assert_array_equal(same[0][0], x0)  # same seed, same canvases
    two = training.CanvasFeeder(3, 8, batch_size=8, canvases={"case": 4, "mix": (0, 0, 1)})
    assert (two.ds.count == 2).all() and set(two[0][1]) == {"presence", "box", "class"}
    assert two[0][1]["presence"].max(axis=(1, 2, 3)).min() == 1  # every canvas has its centres
    assert (two[0][1]["presence"] == 1).sum() == 16  # two centres on each of the 8 canvases


def test_train_rejects_bad_arguments():
    with pytest.raises(ValueError, match="case"):
        training.train(7, epochs=1)
    with pytest.raises(ValueError, match="seconds"):
        training.train(1, seconds=0)
    with pytest.raises(ValueError, match="steps"):
        training.TrainConfig(steps=-1)
    with pytest.raises(ValueError, match="precision"):
        training.TrainConfig(precision="float8")
    with pytest.raises(TypeError, match="learning_rat"):
        training.train(1, learning_rat=1e-3)  # a typo is not silently ignored


def test_config_defaults_and_changes():
    config = training.TrainConfig()
    assert config.time_limit == 180.0 and config.steps is None  # no budget given: 180 s, as before
    assert dataclasses.replace(config, steps=10).time_limit is None  # a step budget alone: no clock
    assert config.learning_rate == training.LEARNING_RATE and config.warmup_steps == training.WARMUP_STEPS
    with pytest.raises(Exception):  # frozen
        config.seed = 3


@pytest.mark.xdist_group("tiny_case3")
def test_same_seed_and_steps_give_the_same_weights_bit_for_bit():
    run = dict(steps=6, canvases_per_epoch=64, batch_size=16, validation=0, progress=False,
               precision="float32", **SMALL)  # 6 steps over two epochs of 4 batches: crosses an epoch
    a, ha = training.train(3, seed=7, **run)
    b, hb = training.train(3, seed=7, **run)
    c, _ = training.train(3, seed=8, **run)
    assert ha.steps == hb.steps == 6
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights()))


@pytest.mark.xdist_group("tiny_case3")
def test_save_and_load_give_the_same_predictions(tmp_path):
    model, _ = training.train(3, epochs=1, canvases_per_epoch=64, batch_size=32, validation=0, progress=False,
                              **SMALL)
    path = training.save_model(model, tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="force"):
        training.save_model(model, path)
    loaded = training.load_model(path)
    x, _ = _fixed_batch(3)
    a, b = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for name in models.OUTPUTS[3]:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6)
    assert models.model_case(loaded) == 3
    with pytest.raises(ValueError, match="case 4"):
        evaluation.evaluate(loaded, 4, n=8)
    with pytest.raises(ValueError, match="case 1"):
        models.check_case(loaded, 1)
    with pytest.raises(ValueError, match="built for case 3, not case 5: pass --case 3"):  # the same output names
        models.check_case(loaded, 5)
    (tmp_path / "notes.keras").write_text("not a zip")
    with pytest.raises(ValueError, match="should be a .keras file"):  # not Keras's "File not found"
        training.load_model(tmp_path / "notes.keras")
    result = evaluation.evaluate(loaded, 3, n=40)
    assert set(result) == {"class_accuracy", "mean_iou", "iou50", "iou75", "joint_accuracy"}
    assert all(0 <= v <= 1 for v in result.values())


def test_score_is_perfect_for_perfect_outputs():
    from mnistloc import targets

    for case in (1, 2, 3, 4):
        ds = evaluation.test_dataset(case, 50)
        t = targets.encode_targets(ds.boxes, ds.classes, ds.mask, max_count=2)
        outputs = {"presence": t["presence"], "box": t["box"][..., 1:], "class": t["class"][..., 1:],
                   "count": t["count"]}
        result = evaluation.score(case, ds, {k: outputs[k] for k in models.OUTPUTS[case]})
        # Boxes are decoded in float32 (eps 2**-23 ~ 1.2e-7 relative; about 8e-6 px at 64 px), so a perfect IoU
        # comes back within a few 1e-6 of 1: e.g. 0.9999987 on case 1.
        assert all(v == pytest.approx(1.0, rel=1e-5) for v in result.values()), (case, result)
        assert (evaluation.per_canvas_quality(case, ds, outputs) == pytest.approx(1.0, rel=1e-5))


@pytest.mark.slow
@pytest.mark.xdist_group("cli_train")
def test_cli_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--case", "1", "--seconds", "2", "--out", str(out)]) == 0
    for name in ("model.keras", "metrics.json", "predictions.png", "worst.png", "history.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["case"] == 1 and {"mean_iou", "iou50", "iou75", "train_seconds"} <= set(saved)
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "model.keras"), "--case", "1", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mean_iou"] == pytest.approx(saved["mean_iou"])
    assert cli.main(["evaluate", str(out / "model.keras"), "--case", "3"]) == 2  # wrong case
    assert "case 1" in capsys.readouterr().err
    assert cli.main(["train", "--case", "1", "--epochs", "1", "--out", str(out)]) == 2  # no --force
    assert "--force" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "missing.keras"), "--case", "1"]) == 2


class _Optimizer:
    def __init__(self):
        self.learning_rate = keras.Variable(0.0)


def test_warm_up_counts_steps_not_seconds():
    # A 1000-step budget and a 10-step warm-up at peak 1e-2: before step k+1 (k steps done) the rate is
    # 1e-2 * min(1, (k + 1) / 10) * 0.5 * (1 + cos(pi * k / 1000)). A clock budget far away (1e6 s)
    # does not change it: the first step's tracing can no longer eat the warm-up.
    budget = training.Budget(1e-2, seconds=1e6, total_steps=1000, progress=False, warmup_steps=10)
    budget.set_model(keras.Sequential())
    budget.model.optimizer = _Optimizer()
    budget.on_train_begin()
    assert float(budget.model.optimizer.learning_rate) == pytest.approx(1e-3)  # 1e-2 * 1/10 * 1
    for _ in range(4):
        budget.on_train_batch_end(0)
    cosine = 0.5 * (1 + np.cos(np.pi * 4 / 1000))
    assert float(budget.model.optimizer.learning_rate) == pytest.approx(1e-2 * 0.5 * cosine, rel=1e-6)  # 5/10
    for _ in range(496):
        budget.on_train_batch_end(0)
    assert float(budget.model.optimizer.learning_rate) == pytest.approx(0.5e-2, rel=1e-4)  # half-way: cos = 0


def test_health_check_flags_a_model_at_chance(monkeypatch):
    from mnistloc import targets

    model = models.build_model(3, **SMALL)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    # Every output constant: the peak is cell (0, 0) of every canvas with a zero-size box there (IoU 0), and
    # the class is argmax of equal probabilities, 0: right on the ~1 in 10 canvases with a 0.
    with pytest.warns(RuntimeWarning, match="chance"):
        scores, stalled = training.health_check(model, 3, n=64)
    assert stalled and scores["mean_iou"] == 0.0 and scores["class_accuracy"] < training.CHANCE["class_accuracy"]

    def perfect(model, ds, **kwargs):  # the targets themselves: every metric 1
        t = targets.encode_targets(ds.boxes, ds.classes, ds.mask, max_count=2)
        return {"presence": t["presence"], "box": t["box"][..., 1:], "class": t["class"][..., 1:]}

    monkeypatch.setattr(evaluation, "predict", perfect)
    scores, stalled = training.health_check(model, 3, n=64)
    assert not stalled and scores["class_accuracy"] == 1.0


def test_health_check_flags_a_case_5_model_with_a_constant_output(monkeypatch):
    """The collapse case 5 showed before the warm-up counted steps: the same output in every cell."""
    model = models.build_model(5, **SMALL)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    # presence 0.5 in every cell: every cell is a 3x3 maximum, so the first 20 cells in row-major order are
    # "digits", each a zero-size box at its cell's centre (distances 0): IoU 0 with every digit, so AP50 0.
    with pytest.warns(RuntimeWarning, match="map50"):
        scores, stalled = training.health_check(model, 5, n=64)
    assert stalled and scores["map50"] == 0.0

    def perfect(model, ds, **kwargs):  # the targets themselves
        t = training.detector_targets(ds)
        return {"presence": t["presence"], "box": t["box"][..., 1:], "class": t["class"][..., 1:]}

    monkeypatch.setattr(evaluation, "predict", perfect)
    scores, stalled = training.health_check(model, 5, n=64)
    assert not stalled and scores["map50"] > 0.9  # centres sharing a cell lose a digit now and then


def test_a_long_enough_run_reports_its_health(monkeypatch):
    monkeypatch.setattr(training, "STALL_CHECK_STEPS", 2)  # 64 canvases / 32 a step = 2 steps
    with pytest.warns(RuntimeWarning, match="chance"):  # two steps of a tiny model cannot get far
        _, history = training.train(3, epochs=1, canvases_per_epoch=64, batch_size=32, validation=0,
                                    progress=False, **SMALL)
    assert history.steps == 2 and history.stalled and set(history.health) >= {"class_accuracy", "mean_iou"}


def test_bfloat16_support_is_read_from_the_cpu_flags(tmp_path):
    def cpu(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: fpu sse2 {flags}\n\n"
                        f"processor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
        return str(path)

    assert dtype_policy.bfloat16_supported(cpu("avx512f avx512_bf16"))
    assert dtype_policy.bfloat16_supported(cpu("amx_tile amx_bf16"))
    assert not dtype_policy.bfloat16_supported(cpu("avx512f avx512_vnni"))  # AVX-512 alone emulates bfloat16
    assert not dtype_policy.bfloat16_supported(cpu("avx512_bf16x"))  # whole flags, not substrings
    assert not dtype_policy.bfloat16_supported(str(tmp_path / "missing"))


def test_mixed_precision_computes_in_bfloat16_and_outputs_float32():
    with dtype_policy.precision_policy("mixed_bfloat16"):
        model = models.build_model(3, **SMALL)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert model.get_layer("stage2").compute_dtype == "bfloat16"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)  # weights stay float32
    out = model(np.zeros((2, 128, 128), np.float32))
    assert {k: keras.backend.standardize_dtype(v.dtype) for k, v in out.items()} == dict.fromkeys(out, "float32")
    assert models.build_model(3, **SMALL).get_layer("stage2").compute_dtype == "float32"
    with pytest.raises(ValueError, match="precision"):
        with dtype_policy.precision_policy("float16"):
            pass
