"""mnistloc.canvas: invariants over thousands of canvases of every case, targets, options, bad input.

The invariants are checked against an independent rebuild: each canvas must be
exactly a black canvas with its digits pasted alone (``place_digit``) at their
corners, and each box the extent of ``np.nonzero`` of its digit pasted alone.
"""
import numpy as np
import pytest

from mnistloc import canvas, cases
from mnistloc.canvas import make_dataset, one_hot, order_left_to_right, place_digit
from mnistloc.data import load_digits

N = 3000  # canvases per case for the invariants
SIZE = 128
FIELDS = ("images", "boxes", "mask", "classes", "count", "digit_ids")


@pytest.fixture(scope="module", params=[1, 2, 3, 4])
def train_ds(request):
    n = 5000 if request.param == 4 else N  # 5,000 > one paste chunk of 4,096
    return make_dataset(request.param, n, seed=100 + request.param, split="train")


@pytest.fixture(scope="module", params=[1, 4])
def test_ds(request):
    return make_dataset(request.param, N, seed=200 + request.param, split="test")


def _ink_box(image):
    """xyxy extent of the nonzero pixels (exclusive max), by np.nonzero."""
    ys, xs = np.nonzero(image)
    return np.float32([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def rebuild(ds):
    """Checks each canvas against its digits pasted alone; returns the frame corners (n, 2, 2 = x, y)."""
    digits, labels = load_digits(ds.split)
    corners = np.full((len(ds), 2, 2), -1)
    for i in range(len(ds)):
        composed = np.zeros((SIZE, SIZE), np.uint8)
        for k in np.flatnonzero(ds.mask[i]):
            digit = digits[ds.digit_ids[i, k]]
            local = _ink_box(digit)  # the digit's ink inside its 28x28 frame
            x, y = (ds.boxes[i, k, :2] - local[:2]).astype(int)  # the frame's corner that the box implies
            alone = place_digit(np.zeros((SIZE, SIZE), np.uint8), digit, int(x), int(y))
            assert np.array_equal(ds.boxes[i, k], _ink_box(alone)), (i, k)  # box = the tight ink extent
            assert ds.classes[i, k] == labels[ds.digit_ids[i, k]], (i, k)
            composed = np.maximum(composed, alone)
            corners[i, k] = x, y
        assert np.array_equal(ds.images[i], composed), i  # nothing but its digits, where the boxes say
    return corners


def test_shapes_and_dtypes(train_ds):
    n = len(train_ds)
    expected = {"images": ((n, SIZE, SIZE), np.uint8), "boxes": ((n, 2, 4), np.float32), "mask": ((n, 2), bool),
                "classes": ((n, 2), np.int64), "count": ((n,), np.int64), "digit_ids": ((n, 2), np.int64)}
    for name, (shape, dtype) in expected.items():
        a = getattr(train_ds, name)
        assert a.shape == shape and a.dtype == dtype, name
    assert train_ds.size == SIZE and train_ds.split == "train"


def test_each_canvas_is_its_digits_and_each_box_their_ink(train_ds):
    rebuild(train_ds)


def test_every_ink_pixel_lies_inside_a_used_box(train_ds):
    r = np.arange(SIZE)
    b = train_ds.boxes[:, :, None, :]  # [n, 2, 1, 4]
    inside_x = (r >= b[..., 0]) & (r < b[..., 2])  # [n, 2, 128]
    inside_y = (r >= b[..., 1]) & (r < b[..., 3])  # [n, 2, 128]
    covered = (inside_y[..., :, None] & inside_x[..., None, :] & train_ds.mask[:, :, None, None]).any(1)
    assert not (train_ds.images > 0)[~covered].any()
    # and every used box holds ink on each of its four edges (it is tight, not just containing)
    for i, k in zip(*np.nonzero(train_ds.mask[:200])):
        x0, y0, x1, y1 = train_ds.boxes[i, k].astype(int)
        crop = train_ds.images[i, y0:y1, x0:x1] > 0
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()


def test_frames_lie_inside_and_never_overlap(train_ds):
    corners = rebuild(train_ds)
    used = train_ds.mask
    assert ((corners[used] >= 0) & (corners[used] <= SIZE - 28)).all()
    two = train_ds.count == 2
    gap = np.abs(corners[two, 0] - corners[two, 1])  # [m, 2] |dx|, |dy|
    assert (gap >= 28).any(axis=1).all()  # apart in x or in y: the 28x28 frames share no pixel
    if train_ds.case == 4:
        assert two.sum() > 1000 and (gap.min(axis=1) < 28).any()  # many pairs, some side by side in one axis


def test_count_mask_classes_and_ids_agree(train_ds):
    ds = train_ds
    assert np.array_equal(ds.mask.sum(1), ds.count)
    assert (ds.mask[:, 0] >= ds.mask[:, 1]).all()  # used slots first
    assert np.array_equal(ds.classes == -1, ~ds.mask) and np.array_equal(ds.digit_ids == -1, ~ds.mask)
    assert (ds.boxes[~ds.mask] == 0).all()
    assert ((ds.classes[ds.mask] >= 0) & (ds.classes[ds.mask] <= 9)).all()
    if ds.case in (1, 3):
        assert (ds.count == 1).all()


def test_two_digits_are_ordered_left_to_right(train_ds):
    two = train_ds.boxes[train_ds.count == 2]  # [m, 2, 4]
    x0, y0 = two[..., 0], two[..., 1]
    assert ((x0[:, 0] < x0[:, 1]) | ((x0[:, 0] == x0[:, 1]) & (y0[:, 0] <= y0[:, 1]))).all()


def test_default_mix_is_thirds(train_ds):
    if train_ds.case in (2, 4):
        # 5,000 or 3,000 draws at 1/3: sd = sqrt(n * 1/3 * 2/3) <= 33.4; allow 5 sd
        n = len(train_ds)
        assert (np.abs(np.bincount(train_ds.count, minlength=3) - n / 3) < 5 * np.sqrt(n * 2 / 9)).all()


def test_test_canvases_use_only_held_out_digits(test_ds):
    corners = rebuild(test_ds)  # digit_ids index the test split (checked against its pixels)
    train_bytes = {d.tobytes() for d in load_digits("train")[0]}
    for i, k in zip(*np.nonzero(test_ds.mask)):
        x, y = corners[i, k]
        assert test_ds.images[i, y:y + 28, x:x + 28].tobytes() not in train_bytes
    assert test_ds.digit_ids.max() < len(load_digits("test")[0]) and test_ds.split == "test"


def test_case_1_uses_only_the_chosen_digit():
    assert (make_dataset(1, 500, seed=0).classes[:, 0] == 1).all()  # default class 1
    ds = make_dataset(1, 500, seed=0, digit=7)
    assert (ds.classes[:, 0] == 7).all() and (ds.classes[:, 1] == -1).all()
    rebuild(ds)


@pytest.mark.parametrize("case", [2, 4])
@pytest.mark.parametrize("mix, count", [((0, 0, 1), 2), ((1, 0, 0), 0), ((0, 1, 0), 1)])
def test_mix_is_honoured(case, mix, count):
    ds = make_dataset(case, 300, seed=1, mix=mix)
    assert (ds.count == count).all()
    if count == 0:
        assert not ds.images.any()


def test_frame_boxes():
    tight = make_dataset(4, 1000, seed=3)
    frame = make_dataset(4, 1000, seed=3, box="frame")
    assert np.array_equal(tight.images, frame.images)  # same draws, only the boxes differ
    used = frame.boxes[frame.mask]
    assert ((used[:, 2:] - used[:, :2]) == 28).all()
    assert ((used >= 0) & (used <= SIZE)).all()
    for i, k in zip(*np.nonzero(tight.mask)):  # each tight box lies inside its digit's frame
        j = list(frame.digit_ids[i]).index(tight.digit_ids[i, k])
        f, t = frame.boxes[i, j], tight.boxes[i, k]
        assert (t[:2] >= f[:2]).all() and (t[2:] <= f[2:]).all()


# ---- determinism ------------------------------------------------------------------------------------

def test_same_seed_same_bytes():
    a, b = make_dataset(4, 500, seed=42), make_dataset(4, 500, seed=42)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)
    c = make_dataset(4, 500, seed=43)
    assert not np.array_equal(a.images, c.images)


def test_generator_seed_matches_int_seed():
    a = make_dataset(2, 300, seed=7)
    b = make_dataset(2, 300, seed=np.random.default_rng(7))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)
    rng = np.random.default_rng(7)
    first, second = make_dataset(2, 300, seed=rng), make_dataset(2, 300, seed=rng)  # the generator advances
    assert np.array_equal(first.images, a.images) and not np.array_equal(second.images, a.images)


def test_empty_dataset():
    ds = make_dataset(4, 0, seed=0)
    assert ds.images.shape == (0, SIZE, SIZE) and ds.boxes.shape == (0, 2, 4) and len(ds) == 0
    assert {k: v.shape for k, v in ds.targets().items()} == {
        "count": (0, 3), "boxes": (0, 2, 4), "classes": (0, 2, 10), "mask": (0, 2)}


def test_other_canvas_size():
    ds = make_dataset(4, 200, seed=0, size=64, mix=(0, 0, 1))  # 64 = 2 * 28 + 8: two digits still fit
    assert ds.images.shape == (200, 64, 64) and ds.size == 64
    assert (ds.boxes <= 64).all()


# ---- targets ------------------------------------------------------------------------------------

def _float32(t):
    assert all(v.dtype == np.float32 for v in t.values()), {k: v.dtype for k, v in t.items()}


def test_targets_case_1():
    ds = make_dataset(1, 200, seed=0)
    t = ds.targets()
    _float32(t)
    assert set(t) == {"box", "presence"}
    np.testing.assert_array_equal(t["box"], ds.boxes[:, 0] / 128)  # rel_xyxy: pixels / canvas side
    assert t["presence"].shape == (200, 1) and (t["presence"] == 1).all()
    assert ((t["box"] > 0) & (t["box"] <= 1)).any() and ((t["box"] >= 0) & (t["box"] <= 1)).all()


def test_targets_case_2_union_box():
    ds = make_dataset(2, 600, seed=0)
    t = ds.targets()
    _float32(t)
    assert set(t) == {"presence", "box"} and t["presence"].shape == (600, 1) and t["box"].shape == (600, 4)
    np.testing.assert_array_equal(t["presence"][:, 0], ds.count > 0)
    for i in range(len(ds)):
        used = ds.boxes[i][ds.mask[i]]
        if len(used) == 0:
            expected = np.zeros(4)  # no box on empty canvases
        else:  # the smallest box holding every digit's box
            expected = np.r_[used[:, :2].min(0), used[:, 2:].max(0)] / 128
        np.testing.assert_allclose(t["box"][i], expected, rtol=0, atol=1e-7)
    assert (ds.count == 2).any()  # the union was exercised


def test_targets_case_3():
    ds = make_dataset(3, 400, seed=0)
    t = ds.targets()
    _float32(t)
    assert set(t) == {"class", "box"} and t["class"].shape == (400, 10)
    assert (t["class"].sum(1) == 1).all() and np.array_equal(t["class"].argmax(1), ds.classes[:, 0])
    np.testing.assert_array_equal(t["box"], ds.boxes[:, 0] / 128)


def test_targets_case_4():
    ds = make_dataset(4, 600, seed=0)
    t = ds.targets()
    _float32(t)
    shapes = {k: v.shape for k, v in t.items()}
    assert shapes == {"count": (600, 3), "boxes": (600, 2, 4), "classes": (600, 2, 10), "mask": (600, 2)}
    assert np.array_equal(t["count"].argmax(1), ds.count) and (t["count"].sum(1) == 1).all()
    np.testing.assert_array_equal(t["boxes"], ds.boxes / 128)
    np.testing.assert_array_equal(t["mask"], ds.mask)
    assert (t["classes"][~ds.mask] == 0).all()  # unused slot: a row of zeros
    assert np.array_equal(t["classes"][ds.mask].argmax(1), ds.classes[ds.mask])
    assert (t["boxes"][~ds.mask] == 0).all()  # and a zero box


def test_save_load_round_trip(tmp_path):
    for case in cases.BRIEF_CASES:
        ds = make_dataset(case, 50, seed=case, split="test")
        ds.save(tmp_path / f"c{case}.npz")
        back = canvas.CanvasDataset.load(tmp_path / f"c{case}.npz")
        assert back.case == case and back.split == "test"
        for f in FIELDS:
            a, b = getattr(ds, f), getattr(back, f)
            assert a.dtype == b.dtype and np.array_equal(a, b), f
        for k, v in ds.targets().items():
            np.testing.assert_array_equal(back.targets()[k], v)


# ---- bad arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    ({"case": 6}, "case"), ({"case": "1"}, "case"), ({"n": -1}, "n"), ({"n": 2.5}, "n"),
    ({"size": 50}, "size"), ({"size": 128.0}, "size"), ({"digit": 10}, "digit"), ({"box": "loose"}, "box"),
    ({"mix": (0.5, 0.5, 0.5)}, "mix"), ({"mix": (0.5, 0.5)}, "mix"), ({"mix": (1.5, -0.5, 0)}, "mix"),
    ({"split": "validation"}, "split"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"case": 4, "n": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        make_dataset(args.pop("case"), args.pop("n"), **args)


# ---- one_hot, order_left_to_right, place_digit ------------------------------------------------------

def test_one_hot():
    out = one_hot(np.array([[2, -1], [0, 1]]), 3)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, [[[0, 0, 1], [0, 0, 0]], [[1, 0, 0], [0, 1, 0]]])  # -1: a row of zeros
    assert one_hot(np.zeros(0, np.int64), 10).shape == (0, 10)
    with pytest.raises(ValueError, match="labels"):
        one_hot([3], 3)
    with pytest.raises(ValueError, match="labels"):
        one_hot([-2], 3)
    with pytest.raises(TypeError, match="labels"):
        one_hot([0.5], 3)


def test_order_left_to_right():
    boxes = np.float32([
        [[50, 10, 60, 20], [10, 30, 20, 40]],  # swapped: 10 < 50
        [[10, 30, 20, 40], [10, 5, 20, 15]],  # same x0: the higher one (y0 5) first
        [[0, 0, 0, 0], [70, 1, 80, 9]],  # unused slot first: used slot moves forward
        [[5, 5, 9, 9], [90, 5, 99, 9]],  # already in order
    ])
    classes = np.array([[1, 2], [3, 4], [-1, 5], [6, 7]])
    mask = np.array([[True, True], [True, True], [False, True], [True, True]])
    b, c, m = order_left_to_right(boxes, classes, mask)
    np.testing.assert_array_equal(c, [[2, 1], [4, 3], [5, -1], [6, 7]])
    np.testing.assert_array_equal(m, [[True, True], [True, True], [True, False], [True, True]])
    np.testing.assert_array_equal(b[0], boxes[0, ::-1])
    np.testing.assert_array_equal(b[1], boxes[1, ::-1])
    np.testing.assert_array_equal(b[2], boxes[2, ::-1])
    assert b.dtype == boxes.dtype and c.dtype == classes.dtype
    with pytest.raises(ValueError, match=r"boxes \(N, K, 4\)"):
        order_left_to_right(boxes[0], classes, mask)


def test_place_digit_returns_a_copy():
    blank = np.zeros((128, 128), np.uint8)
    digit = np.arange(28 * 28, dtype=np.uint16).reshape(28, 28).astype(np.uint8) | 1  # every pixel nonzero
    out = place_digit(blank, digit, 100, 3)  # x = 128 - 28: flush with the right edge
    assert not blank.any()  # the canvas given is unchanged
    assert np.array_equal(out[3:31, 100:128], digit) and out.sum() == digit.sum()
    assert np.array_equal(_ink_box(out), [100, 3, 128, 31])


@pytest.mark.parametrize("x, y", [(-1, 0), (0, -1), (101, 0), (0, 101)])
def test_place_digit_outside_raises(x, y):
    with pytest.raises(ValueError, match="inside the canvas"):
        place_digit(np.zeros((128, 128), np.uint8), np.ones((28, 28), np.uint8), x, y)


def test_subset_takes_canvases_in_order():
    ds = canvas.make_dataset(4, 6, seed=3)
    part = canvas.subset(ds, [4, 1])
    assert len(part) == 2 and part.case == 4 and part.split == ds.split
    for name in ("images", "boxes", "mask", "classes", "count", "digit_ids"):
        np.testing.assert_array_equal(getattr(part, name), getattr(ds, name)[[4, 1]])  # row 4 first, then 1
    assert len(canvas.subset(ds, ds.count == 0)) == int((ds.count == 0).sum())  # a boolean mask works too
    with pytest.raises(TypeError, match="CanvasDataset"):
        canvas.subset(ds.images, [0])
