"""mnistloc.viz: what is drawn where, for every case, and the PNGs written."""
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from mnistloc import viz
from mnistloc.canvas import make_dataset


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _geometry(rect):
    return (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height())


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _is(colour, rect):
    from matplotlib.colors import to_rgba

    return np.allclose(rect.get_edgecolor(), to_rgba(colour))


def test_draw_canvas_true_and_predicted():
    fig = Figure()
    ax = fig.subplots()
    image = np.zeros((128, 128), np.uint8)
    out = viz.draw_canvas(ax, image, [[10, 20, 30, 50]], labels=[7],
                          pred_boxes=[[12, 18, 31, 49], [60, 60, 70, 80]], pred_labels=[7, 1], pred_scores=[0.934, 0.2])
    assert out is fig
    true, *pred = _rects(ax)
    # pixel i covers [i - 0.5, i + 0.5]: the box x0=10..x1=30 (20 wide) starts at 9.5
    assert _geometry(true) == (9.5, 19.5, 20, 30)
    assert [_geometry(r) for r in pred] == [(11.5, 17.5, 19, 31), (59.5, 59.5, 10, 20)]
    assert _is(viz.TRUE_COLOUR, true) and true.get_linestyle() == "-"
    assert all(_is(viz.PRED_COLOUR, r) and r.get_linestyle() == "--" for r in pred)
    assert _texts(ax) == ["7", "7 0.93", "1 0.20"]
    assert ax.get_xlim() == (-0.5, 127.5) and ax.get_ylim() == (127.5, -0.5)  # the whole canvas, y down


def test_draw_canvas_empty_and_single_box():
    ax = Figure().subplots()
    viz.draw_canvas(ax, np.zeros((64, 64), np.uint8), np.zeros((0, 4)))  # an empty canvas: no box
    assert _rects(ax) == [] and _texts(ax) == []
    ax = Figure().subplots()
    viz.draw_canvas(ax, np.zeros((64, 64), np.uint8), np.float32([1, 2, 3, 4]))  # one box given as (4,)
    assert [_geometry(r) for r in _rects(ax)] == [(0.5, 1.5, 2, 2)]


@pytest.mark.parametrize("kwargs, name", [
    ({"boxes": [[1, 2, 3]]}, "boxes"), ({"labels": [1, 2]}, "labels"),
    ({"pred_boxes": [[1, 2, 3, 4]], "pred_scores": [0.1, 0.2]}, "pred_scores"),
    ({"image": np.zeros((2, 8, 8))}, "image"),
])
def test_draw_canvas_bad_input(kwargs, name):
    args = {"image": np.zeros((8, 8)), "boxes": [[1, 1, 4, 4]], **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        viz.draw_canvas(Figure().subplots(), **args)


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_sample_grid_every_case(case):
    ds = make_dataset(case, 30, seed=case)
    fig = viz.sample_grid(ds, n=12)
    assert isinstance(fig, Figure)
    panels = _panels(fig)
    assert len(panels) == 12
    assert f"Case {case}" in fig.get_suptitle() and "Labels" in fig.get_suptitle()
    for i, ax in enumerate(panels):
        rects = _rects(ax)
        assert all(_is(viz.TRUE_COLOUR, r) for r in rects)
        b = ds.boxes[i][ds.mask[i]]
        if case == 2:  # one box, the union of the digits' boxes, or none when empty
            assert ax.get_title() == f"presence {int(ds.count[i] > 0)}"
            expected = [] if len(b) == 0 else [(b[:, 0].min() - .5, b[:, 1].min() - .5,
                                                b[:, 2].max() - b[:, 0].min(), b[:, 3].max() - b[:, 1].min())]
        else:  # a box per digit
            expected = [(x0 - .5, y0 - .5, x1 - x0, y1 - y0) for x0, y0, x1, y1 in b]
        assert np.allclose([_geometry(r) for r in rects], expected) if expected else rects == []
        if case == 4:
            assert ax.get_title() == f"count {ds.count[i]}" and _texts(ax) == [str(c) for c in ds.classes[i][ds.mask[i]]]
        if case == 3:
            assert ax.get_title() == f"class {ds.classes[i, 0]}"
    if case == 1:
        assert "(digit 1)" in fig.get_suptitle()
    if case in (2, 4):
        assert {ax.get_title() for ax in panels} >= {f"{'presence' if case == 2 else 'count'} 0"}


def test_sample_grid_with_predictions():
    ds = make_dataset(4, 8, seed=5, split="test")
    pred = {"boxes": [b[m] + 1 for b, m in zip(ds.boxes, ds.mask)],
            "labels": [c[m] for c, m in zip(ds.classes, ds.mask)],
            "scores": [np.full(m.sum(), 0.5) for m in ds.mask]}
    fig = viz.sample_grid(ds, predictions=pred)
    assert "test split" in fig.get_suptitle() and "predictions red" in fig.get_suptitle()
    for i, ax in enumerate(_panels(fig)):
        red = [r for r in _rects(ax) if _is(viz.PRED_COLOUR, r)]
        assert len(red) == ds.count[i]
        assert sum(t.endswith(" 0.50") for t in _texts(ax)) == ds.count[i]
    one_box = viz.sample_grid(make_dataset(3, 4, seed=0), predictions={"boxes": np.full((4, 4), 10.0)})
    assert all(len(_rects(ax)) == 2 for ax in _panels(one_box))  # (N, 4): one prediction per canvas


def test_sample_grid_sizes_and_bad_input():
    ds = make_dataset(1, 5, seed=0)
    assert len(_panels(viz.sample_grid(ds, n=16))) == 5  # no more panels than canvases
    assert len(_panels(viz.sample_grid(make_dataset(1, 40, seed=0), n=40))) == 40
    with pytest.raises(ValueError, match="`n`"):
        viz.sample_grid(ds, n=0)
    with pytest.raises(ValueError, match="`predictions`"):
        viz.sample_grid(ds, predictions={"bbox": []})


def test_history_plot_from_dict():
    h = {"loss": [3.0, 2.0], "box_loss": [1.0, 0.5], "val_loss": [3.5, 2.5], "class_accuracy": [0.3, 0.6],
         "val_box_loss": [1.2, 0.7]}
    fig = viz.history_plot(h)
    used = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in used] == ["loss", "box_loss", "class_accuracy"]  # total, outputs, metrics
    loss = used[0]
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    assert np.array_equal(loss.lines[1].get_xdata(), [1, 2]) and np.array_equal(loss.lines[1].get_ydata(), [3.5, 2.5])
    assert len(used[2].lines) == 1  # no validation curve for that metric
    with pytest.raises(ValueError, match="`history`"):
        viz.history_plot({})


@pytest.mark.slow
def test_history_plot_from_keras_fit():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    x = np.random.default_rng(0).random((32, 8), dtype=np.float32)
    inp = keras.Input((8,))
    model = keras.Model(inp, {"box": keras.layers.Dense(4, name="box")(inp),
                              "presence": keras.layers.Dense(1, activation="sigmoid", name="presence")(inp)})
    model.compile("adam", loss={"box": "mse", "presence": "binary_crossentropy"})
    history = model.fit(x, {"box": x[:, :4], "presence": x[:, :1] > 0.5}, validation_split=0.25, epochs=2, verbose=0)
    fig = viz.history_plot(history)
    titles = [ax.get_title() for ax in fig.axes if ax.lines]
    assert titles[0] == "loss" and set(titles) == {k for k in history.history if not k.startswith("val_")}
    assert all(len(ax.lines) == 2 for ax in fig.axes if ax.get_title().endswith("loss"))


def test_save_writes_a_png(tmp_path):
    path = viz.save(viz.sample_grid(make_dataset(2, 4, seed=0)), tmp_path / "deep" / "grid.png")
    assert path == tmp_path / "deep" / "grid.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 300
    with pytest.raises(ValueError, match="`path`"):
        viz.save(Figure(), tmp_path / "grid.jpg")


def test_import_stays_light():
    code = ("import sys, mnistloc, mnistloc.canvas, mnistloc.viz, mnistloc.coco, mnistloc.demo; "
            "print(sorted(m for m in ('matplotlib', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_returned_figures_show_once_in_jupyter():
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from mnistloc import canvas, viz\n"
                                          "viz.sample_grid(canvas.make_dataset(4, 4, seed=0))"),
                nbformat.v4.new_code_cell("fig = viz.history_plot({'loss': [1.0, 0.5]})"),  # assigned: not shown
                nbformat.v4.new_code_cell("fig")]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    pngs = [sum("image/png" in o.get("data", {}) for o in cell.outputs) for cell in nb.cells]
    assert pngs == [1, 0, 1]


# ---- the detector's pictures --------------------------------------------------------------------

def test_draw_heatmap_lays_each_cell_over_its_pixels():
    from mnistloc.targets import heatmap_targets

    boxes = np.zeros((1, 1, 4), np.float32)
    boxes[0, 0] = (10, 20, 30, 44)  # centre cell (4, 2)
    heat = heatmap_targets(boxes, np.ones((1, 1), bool))[0]
    ax = Figure().subplots()
    viz.draw_heatmap(ax, np.zeros((128, 128), np.uint8), heat, boxes[0])
    canvas_image, overlay = ax.get_images()
    assert overlay.get_extent() == [-0.5, 127.5, 127.5, -0.5]  # 16 cells over 128 pixels: 8 each, y down
    np.testing.assert_array_equal(overlay.get_array(), heat)
    assert [_geometry(r) for r in _rects(ax)] == [(9.5, 19.5, 20, 24)]
    with pytest.raises(ValueError, match="heatmap"):
        viz.draw_heatmap(ax, np.zeros((128, 128), np.uint8), heat[None])


def test_heatmap_plot_rows_per_map_and_columns_per_canvas():
    ds = make_dataset(4, 3, seed=0)
    from mnistloc.targets import heatmap_targets

    target = heatmap_targets(ds.boxes, ds.mask)
    fig = viz.heatmap_plot(ds.images, {"target": target, "predicted": target * 0.5},
                           boxes=[b[m] for b, m in zip(ds.boxes, ds.mask)], titles=["a", "b", "c"])
    axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(axes) == 6 and [ax.get_title() for ax in axes[:4]] == ["target: a", "target: b", "target: c",
                                                                      "predicted"]
    assert np.allclose(axes[3].get_images()[1].get_array(), target[0] * 0.5)
    with pytest.raises(ValueError, match="heatmaps"):
        viz.heatmap_plot(ds.images, {"target": target[:2]})


def test_nms_plot_before_and_after(tmp_path):
    boxes = np.array([[10, 10, 40, 40], [12, 10, 42, 40], [70, 70, 100, 100]], np.float32)
    fig = viz.nms_plot(np.zeros((128, 128), np.uint8), boxes, [0.9, 0.8, 0.7], [0, 2], labels=[3, 3, 5])
    before, after = fig.axes
    assert len(_rects(before)) == 3 and _texts(before) == ["3 0.90", "3 0.80", "5 0.70"]
    assert [_geometry(r) for r in _rects(after)] == [(9.5, 9.5, 30, 30), (69.5, 69.5, 30, 30)]
    assert after.get_title() == "after NMS: 2 kept"
    with pytest.raises(ValueError, match="keep"):
        viz.nms_plot(np.zeros((128, 128), np.uint8), boxes, [0.9, 0.8, 0.7], [3])


def test_pr_curve_points_and_envelope():
    fig = viz.pr_curve([0.7, 0.9, 0.8], [True, True, False], 2, ap=0.835)
    ax = fig.axes[0]
    points, envelope = ax.lines
    # ranked 0.9 (TP), 0.8 (FP), 0.7 (TP): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    # the envelope (best precision at this recall or beyond): 1, 2/3, 2/3
    np.testing.assert_allclose(points.get_xdata(), [0.5, 0.5, 1])
    np.testing.assert_allclose(points.get_ydata(), [1, 0.5, 2 / 3])
    np.testing.assert_allclose(envelope.get_ydata(orig=True), [1, 1, 2 / 3, 2 / 3])
    assert ax.get_title() == "precision-recall (AP 0.835)"
    assert not viz.pr_curve([], [], 3).axes[0].lines  # no detection: empty axes, no error
    with pytest.raises(ValueError, match="num_true"):
        viz.pr_curve([0.5], [True], 0)


def test_pr_curve_points_equal_sklearn_when_every_truth_is_found():
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(0)
    scores, matched = rng.random(30), rng.random(30) < 0.6  # distinct scores: one point per detection
    ax = viz.pr_curve(scores, matched, int(matched.sum())).axes[0]
    precision, recall, _ = precision_recall_curve(matched, scores)  # by ascending threshold, then (1, 0)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), precision[:-1][::-1])
    np.testing.assert_allclose(ax.lines[0].get_xdata(), recall[:-1][::-1])


def test_confusion_matrix_plot_is_sklearns_matrix(tmp_path):
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    fig = viz.confusion_matrix_plot(y_true, y_pred, labels=range(3))
    ax = fig.axes[0]
    # rows true, columns predicted: class 0 -> (0, 1); class 1 -> 1; class 2 -> (0, 2, 2)
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    rows = viz.confusion_matrix_plot(y_true, y_pred, labels=range(3), normalize="true").axes[0]
    np.testing.assert_allclose(rows.get_images()[0].get_array()[2], [1 / 3, 0, 2 / 3])


def test_detector_pictures_render_to_png(tmp_path):
    from mnistloc import targets

    ds = make_dataset(4, 4, seed=3)
    heat = targets.heatmap_targets(ds.boxes, ds.mask)
    noisy = np.clip(heat + np.random.default_rng(0).uniform(0, 0.3, heat.shape), 0, 1)
    paths = [viz.save(viz.heatmap_plot(ds.images, {"target": heat, "predicted": noisy}), tmp_path / "heat.png"),
             viz.save(viz.nms_plot(ds.images[0], np.array([[10, 10, 40, 40], [12, 11, 41, 42]]), [0.9, 0.6], [0]),
                      tmp_path / "nms.png"),
             viz.save(viz.pr_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1], 4, ap=0.6), tmp_path / "pr.png"),
             viz.save(viz.confusion_matrix_plot(np.arange(10), (np.arange(10) + 1) % 10), tmp_path / "cm.png")]
    for path in paths:
        with Image.open(path) as im:
            assert im.size[0] > 300 and len(np.unique(np.asarray(im.convert("L")))) > 10  # not blank
