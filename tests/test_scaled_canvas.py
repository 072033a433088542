"""Case 5 canvases (``mnistloc.scaled_canvas`` through ``canvas.make_dataset(5, ...)``).

Invariants over thousands of canvases, checked against a rebuild from each
digit alone; the area resampling against an independent supersampling and
against Pillow where Pillow's box filter is exact area; bad input.
"""
import numpy as np
import pytest

from mnistloc import boxes as B
from mnistloc import canvas, scaled_canvas
from mnistloc.data import load_digits

N = 3000
SIZE = 128
K = 6


@pytest.fixture(scope="module")
def ds():
    return canvas.make_dataset(5, N, seed=501)


def _ink_box(image):
    ys, xs = np.nonzero(image)
    return np.float32([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _supersampled(digits, side):
    """Area resampling by brute force: each pixel repeated ``side`` times each way (28 * side pixels
    a side), then every 28 x 28 block summed: the exact integral over each output footprint, x 784."""
    big = np.repeat(np.repeat(digits.astype(np.int64), side, axis=-2), side, axis=-1)
    total = big.reshape(len(digits), side, 28, side, 28).sum(axis=(2, 4))
    return ((2 * total + 784) // (2 * 784)).astype(np.uint8)  # round half up: floor(total / 784 + 1/2)


def test_shapes_dtypes_and_labels_agree(ds):
    expected = {"images": ((N, SIZE, SIZE), np.uint8), "boxes": ((N, K, 4), np.float32),
                "frames": ((N, K, 4), np.float32), "mask": ((N, K), bool), "classes": ((N, K), np.int64),
                "count": ((N,), np.int64), "digit_ids": ((N, K), np.int64)}
    for name, (shape, dtype) in expected.items():
        a = getattr(ds, name)
        assert a.shape == shape and a.dtype == dtype, name
    assert np.array_equal(ds.mask.sum(1), ds.count)
    assert np.array_equal(ds.classes == -1, ~ds.mask) and np.array_equal(ds.digit_ids == -1, ~ds.mask)
    assert not ds.boxes[~ds.mask].any() and not ds.frames[~ds.mask].any()
    assert np.array_equal(ds.mask, np.arange(K) < ds.count[:, None])  # used slots first


def test_each_canvas_is_its_resized_digits_and_each_box_their_ink(ds):
    digits, labels = load_digits("train")
    for i in range(N):
        composed = np.zeros((SIZE, SIZE), np.uint8)
        for k in np.flatnonzero(ds.mask[i]):
            x0, y0, x1, y1 = ds.frames[i, k].astype(int)
            side = x1 - x0
            assert y1 - y0 == side and 17 <= side <= 45, (i, k)  # round(28 * 0.6) .. round(28 * 1.6)
            alone = np.zeros((SIZE, SIZE), np.uint8)
            alone[y0:y1, x0:x1] = scaled_canvas.resize(digits[ds.digit_ids[i, k]], side)
            assert np.array_equal(ds.boxes[i, k], _ink_box(alone)), (i, k)  # tight box of the digit alone
            assert ds.classes[i, k] == labels[ds.digit_ids[i, k]]
            composed = np.maximum(composed, alone)
        assert np.array_equal(ds.images[i], composed), i  # later digits over earlier ones with maximum


def test_crowded_canvases_of_one_side_keep_every_digit():
    """One scale and overlap up to IoU 0.9 on a small canvas: up to six digits of one side meet in a
    canvas, so pastes come in several rounds; the picture is still the ``maximum`` of the digits alone."""
    crowd = canvas.make_dataset(5, 400, seed=7, size=56, min_digits=4, scale=(1.0, 1.0), max_overlap=0.9)
    digits, _ = load_digits("train")
    assert (crowd.count >= 4).all()
    for i in range(len(crowd.images)):
        composed = np.zeros((56, 56), np.uint8)
        for k in np.flatnonzero(crowd.mask[i]):
            x0, y0, x1, y1 = crowd.frames[i, k].astype(int)
            alone = np.zeros((56, 56), np.uint8)
            alone[y0:y1, x0:x1] = digits[crowd.digit_ids[i, k]]  # scale 1: the digit as it is
            assert np.array_equal(crowd.boxes[i, k], _ink_box(alone)), (i, k)
            composed = np.maximum(composed, alone)
        assert np.array_equal(crowd.images[i], composed), i


def test_boxes_lie_inside_the_canvas_and_their_frames(ds):
    b, f = ds.boxes[ds.mask], ds.frames[ds.mask]
    assert (b[:, :2] >= 0).all() and (b[:, 2:] <= SIZE).all() and (b[:, 2:] > b[:, :2]).all()
    assert (b[:, :2] >= f[:, :2]).all() and (b[:, 2:] <= f[:, 2:]).all()


def test_frames_overlap_at_most_the_bound_and_sometimes_do(ds):
    worst = []
    for i in np.flatnonzero(ds.count >= 2):
        f = ds.frames[i][ds.mask[i]]
        iou = B.pairwise_iou(f, f)
        worst.append(iou[np.triu_indices(len(f), 1)].max())
    worst = np.array(worst)
    assert worst.max() <= 0.3 + 1e-6
    assert (worst > 0).mean() > 0.3 and worst.max() > 0.25  # overlaps happen, up to near the bound


def test_slots_are_ordered_left_to_right(ds):
    x0 = ds.boxes[..., 0]
    assert (np.diff(x0, axis=1)[ds.mask[:, 1:]] >= 0).all()  # used slots come first (see the shapes test)


def test_counts_cover_zero_to_six_roughly_uniformly(ds):
    freq = np.bincount(ds.count, minlength=K + 1)
    assert len(freq) == K + 1
    # each count has probability 1/7: mean 3000/7 = 428.6, sd sqrt(3000 * 1/7 * 6/7) = 19.2; 5 sd = 96
    assert np.abs(freq - N / 7).max() < 96, freq


def test_scales_span_the_range(ds):
    sides = (ds.frames[..., 2] - ds.frames[..., 0])[ds.mask]
    assert sides.min() == 17 and sides.max() == 45  # round(28 * 0.6) = 17, round(28 * 1.6) = 45
    # sides are round(28 * U(0.6, 1.6)): the middle one, 31, has probability 1 / 28 = 0.036
    assert abs(np.mean(sides == 31) - 1 / 28) < 0.01


def test_test_split_uses_held_out_digits():
    test = canvas.make_dataset(5, 300, seed=7, split="test")
    digits, _ = load_digits("test")
    assert test.split == "test" and test.digit_ids.max() < len(digits)
    i, k = np.argwhere(test.mask)[0]
    x0, y0, x1, y1 = test.frames[i, k].astype(int)
    crop = test.images[i, y0:y1, x0:x1]
    assert (crop >= scaled_canvas.resize(digits[test.digit_ids[i, k]], x1 - x0)).all()


def test_resize_equals_supersampling_exactly():
    digits = load_digits("train")[0][:60]
    for side in (1, 5, 14, 17, 23, 28, 31, 40, 45, 56, 61):
        assert np.array_equal(scaled_canvas.resize(digits, side), _supersampled(digits, side)), side


def test_resize_agrees_with_pillow_box_where_that_is_area():
    """Pillow's BOX filter averages the pixels whose centres fall in a footprint: exact area
    when the factor is whole (28 -> 14 averages 2 x 2 blocks, 28 -> 56 repeats each pixel)."""
    Image = pytest.importorskip("PIL.Image")
    digits = load_digits("train")[0][:100]
    for side, tolerance in ((28, 0), (56, 0), (14, 1)):  # halves: Pillow rounds its fixed point its own way
        pil = np.stack([np.asarray(Image.fromarray(d).resize((side, side), Image.BOX)) for d in digits])
        diff = np.abs(pil.astype(int) - scaled_canvas.resize(digits, side))
        assert diff.max() <= tolerance, side


def test_resize_preserves_ink():
    """Each output pixel is the footprint's mean rounded, off by at most 1/2, so the ink total is
    sum(d) * (side / 28)^2 within side^2 / 2."""
    digits = load_digits("train")[0][:200]
    for side in (17, 30, 45):
        total = scaled_canvas.resize(digits, side).sum(axis=(1, 2), dtype=np.int64)
        expected = digits.sum(axis=(1, 2), dtype=np.int64) * side ** 2 / 784
        assert (np.abs(total - expected) <= side ** 2 / 2).all(), side


def test_area_matrix_by_hand():
    # 3 pixels to 2: output 0 covers input [0, 1.5): pixel 0 whole, half of pixel 1 -> weights 2/3, 1/3
    assert np.array_equal(scaled_canvas.overlaps(3, 2), [[2, 1, 0], [0, 1, 2]])
    assert np.allclose(scaled_canvas.area_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    # 2 pixels to 3: output 1 covers input [2/3, 4/3): a third of each
    assert np.allclose(scaled_canvas.area_matrix(2, 3), [[1, 0], [0.5, 0.5], [0, 1]])
    assert np.allclose(scaled_canvas.area_matrix(28, 45).sum(1), 1)


def test_same_seed_same_bytes_and_generator_seed():
    a = canvas.make_dataset(5, 200, seed=3)
    b = canvas.make_dataset(5, 200, seed=3)
    c = canvas.make_dataset(5, 200, seed=np.random.default_rng(3))
    d = canvas.make_dataset(5, 200, seed=4)
    for name in ("images", "boxes", "frames", "classes", "mask", "count", "digit_ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name)) and np.array_equal(getattr(a, name), getattr(c, name))
    assert not np.array_equal(a.images, d.images)


def test_options_change_what_they_say():
    few = canvas.make_dataset(5, 500, seed=1, min_digits=2, max_digits=3, scale=(1.0, 1.0), max_overlap=0.0)
    assert few.boxes.shape == (500, 3, 4) and set(np.unique(few.count)) == {2, 3}
    sides = (few.frames[..., 2] - few.frames[..., 0])[few.mask]
    assert (sides == 28).all()
    for i in range(50):
        f = few.frames[i][few.mask[i]]
        assert B.pairwise_iou(f, f)[np.triu_indices(len(f), 1)].max() == 0  # max_overlap=0: frames disjoint
    frame = canvas.make_dataset(5, 50, seed=1, box="frame")
    assert np.array_equal(frame.boxes, frame.frames)


def test_noise_and_clutter_are_off_by_default_and_leave_the_labels():
    plain = canvas.make_dataset(5, 300, seed=9)
    noisy = canvas.make_dataset(5, 300, seed=9, noise=20.0, clutter=3)
    for name in ("boxes", "frames", "classes", "mask"):
        assert np.array_equal(getattr(plain, name), getattr(noisy, name)), name
    inside = np.zeros(plain.images.shape, bool)
    for i, k in zip(*np.nonzero(plain.mask)):
        x0, y0, x1, y1 = plain.frames[i, k].astype(int)
        inside[i, y0:y1, x0:x1] = True
    assert not plain.images[~inside].any()  # black outside the digits
    assert noisy.images[~inside].astype(float).std() > 10


def test_instances_and_box_lists(ds):
    boxes, classes = ds.box_lists()
    assert len(boxes) == N and [len(b) for b in boxes] == list(ds.count)
    i = int(np.argmax(ds.count))
    one = ds.instances(i)
    assert np.array_equal(one["boxes"], boxes[i]) and np.array_equal(one["classes"], classes[i])
    assert one["boxes"].shape == (ds.count[i], 4)


def test_targets_mark_each_centre_and_its_box():
    from mnistloc import targets

    small = canvas.make_dataset(5, 64, seed=11)
    assert small.targets()["boxes"].shape == (64, 6, 4) and small.targets()["count"].shape == (64, 7)
    t = targets.encode_targets(small.boxes, small.classes, small.mask, sigma="size")
    assert t["presence"].shape == (64, 16, 16, 1) and t["box"].shape == (64, 16, 16, 5)
    assert t["class"].shape == (64, 16, 16, 11)
    centres = {}
    for i, k in zip(*np.nonzero(small.mask)):
        x0, y0, x1, y1 = small.boxes[i, k]
        centres.setdefault((i, int((y0 + y1) / 2 // 8), int((x0 + x1) / 2 // 8)), []).append(k)
    ones = set(zip(*(a.tolist() for a in np.nonzero(t["presence"][..., 0] == 1))))
    assert ones == set(centres)  # exp(-d^2 / 2 sigma^2) is 1 only at d = 0: the centres' cells
    for (i, row, col), ks in centres.items():
        if len(ks) > 1:
            continue  # two centres in one cell: the cell learns one of them
        w, l, top, r, b = t["box"][i, row, col]
        cx, cy = col * 8 + 4, row * 8 + 4  # the cell's centre in pixels; distances are in cells of 8
        assert w == 1 and np.allclose([cx - 8 * l, cy - 8 * top, cx + 8 * r, cy + 8 * b], small.boxes[i, ks[0]])
        assert t["class"][i, row, col, 1 + small.classes[i, ks[0]]] == 1


def test_save_load_round_trip(tmp_path):
    a = canvas.make_dataset(5, 20, seed=2)
    a.save(tmp_path / "five.npz")
    b = canvas.CanvasDataset.load(tmp_path / "five.npz")
    assert b.case == 5 and np.array_equal(a.frames, b.frames) and np.array_equal(a.images, b.images)


@pytest.mark.parametrize("kwargs, name", [
    ({"max_digits": 0}, "max_digits"),
    ({"min_digits": 7}, "min_digits"),
    ({"scale": (1.6, 0.6)}, "scale"),
    ({"scale": (0.6, 5.0)}, "scale"),
    ({"scale": "big"}, "scale"),
    ({"max_overlap": 1.5}, "max_overlap"),
    ({"noise": -1.0}, "noise"),
    ({"clutter": -1}, "clutter"),
    ({"size": 64, "min_digits": 6, "scale": (1.4, 1.4), "max_overlap": 0.0}, "max_digits"),  # cannot fit
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        canvas.make_dataset(5, 10, seed=0, **kwargs)


def test_scene_options_only_for_case_5():
    with pytest.raises(TypeError, match="max_digits"):
        canvas.make_dataset(4, 10, seed=0, max_digits=3)
    with pytest.raises(TypeError, match="digits"):
        canvas.make_dataset(5, 10, seed=0, digits=3)


def test_cli_data_and_show_case_5(tmp_path):
    from mnistloc import cli

    assert cli.main(["data", "--case", "5", "--count", "12", "--out", str(tmp_path / "d.npz"),
                     "--coco", str(tmp_path / "coco")]) == 0
    back = canvas.CanvasDataset.load(tmp_path / "d.npz")
    assert back.case == 5 and back.boxes.shape == (12, 6, 4)
    assert (tmp_path / "coco" / "instances.json").exists()
    assert cli.main(["show", "--case", "5", "--count", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
