"""Tests for mnistloc.boxes: formats, area, IoU, tight and union boxes."""
import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mnistloc import boxes as B

# One fixture: the same four boxes in every format, on a 128-pixel canvas (all values exact in binary).
SIZE = 128
SAME_BOXES = {
    "xyxy": [[10, 20, 30, 60], [0, 0, 128, 128], [64, 32, 65, 33], [5, 6, 5, 6]],
    "xywh": [[10, 20, 20, 40], [0, 0, 128, 128], [64, 32, 1, 1], [5, 6, 0, 0]],
    "cxcywh": [[20, 40, 20, 40], [64, 64, 128, 128], [64.5, 32.5, 1, 1], [5, 6, 0, 0]],
    "rel_xyxy": [[10 / 128, 20 / 128, 30 / 128, 60 / 128], [0, 0, 1, 1],
                 [0.5, 0.25, 65 / 128, 33 / 128], [5 / 128, 6 / 128, 5 / 128, 6 / 128]],
}
AREAS = [20 * 40, 128 * 128, 1 * 1, 0]


@pytest.mark.parametrize("src, dst", list(itertools.product(B.FORMATS, repeat=2)))
def test_convert_every_pair_of_formats(src, dst):
    out = B.convert(SAME_BOXES[src], src, dst, size=SIZE)
    np.testing.assert_allclose(out, SAME_BOXES[dst], rtol=0, atol=1e-12)
    # batch axes are kept: (2, 2, 4) in, (2, 2, 4) out
    batch = np.asarray(SAME_BOXES[src], float).reshape(2, 2, 4)
    np.testing.assert_allclose(B.convert(batch, src, dst, size=SIZE),
                               np.reshape(SAME_BOXES[dst], (2, 2, 4)), rtol=0, atol=1e-12)


def test_convert_keeps_float32_and_makes_ints_float():
    assert B.convert(np.ones((3, 4), np.float32), "xyxy", "xywh").dtype == np.float32
    assert np.issubdtype(B.convert(np.ones((3, 4), np.int64), "xyxy", "xywh").dtype, np.floating)


def test_convert_rel_to_rel_needs_no_size():
    np.testing.assert_array_equal(B.convert(SAME_BOXES["rel_xyxy"], "rel_xyxy", "rel_xyxy"), SAME_BOXES["rel_xyxy"])


def test_area_of_the_fixture_and_inverted_boxes():
    np.testing.assert_array_equal(B.area(SAME_BOXES["xyxy"]), AREAS)  # 20 * 40, 128 * 128, 1 * 1, 0
    assert B.area([10, 10, 0, 0]) == 0  # inverted: empty, never negative
    assert B.area(np.zeros((0, 4))).shape == (0,)


A = [0, 0, 10, 10]


@pytest.mark.parametrize("b, expected", [
    ([10, 0, 20, 10], 0.0),  # touching on an edge: overlap width 0
    ([10, 10, 20, 20], 0.0),  # touching at a corner
    ([30, 30, 40, 40], 0.0),  # disjoint
    ([2, 2, 7, 7], 25 / 100),  # contained: 5 * 5 inside 10 * 10
    ([5, 5, 15, 15], 25 / 175),  # partial: inter 5 * 5 = 25, union 100 + 100 - 25 = 175
    ([5, -5, 15, 5], 25 / 175),  # partial from below: inter 5 * 5
    ([0, 0, 10, 10], 1.0),  # identical
    ([0, 0, 10, 5], 50 / 100),  # the lower half: inter 50, union 100
    ([5, 5, 5, 5], 0.0),  # an empty box inside: inter 0
])
def test_iou_derived(b, expected):
    assert B.iou(A, b) == pytest.approx(expected)
    assert B.iou(b, A) == pytest.approx(expected)


def test_iou_different_sizes_and_empty_pairs():
    # [0,0,4,6] and [2,3,8,9]: inter (4-2)*(6-3) = 6, union 24 + 36 - 6 = 54
    assert B.iou([0, 0, 4, 6], [2, 3, 8, 9]) == pytest.approx(6 / 54)
    empty = [3, 3, 3, 3]
    with np.errstate(all="raise"):  # no 0/0 even evaluated
        assert B.iou(empty, empty) == 0.0
        assert B.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
        assert B.iou([4, 4, 1, 1], [4, 4, 1, 1]) == 0.0  # inverted boxes are empty


def test_iou_broadcasts_and_pairwise_matrix():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], float)  # [2, 4]
    b = np.array([[0, 0, 10, 10], [2, 2, 7, 7], [30, 30, 40, 40]], float)  # [3, 4]
    expected = [[1, 25 / 100, 0],  # A with: itself, the contained box, a disjoint one
                [25 / 175, 4 / 100, 0]]  # [5,5,15,15] with [2,2,7,7]: inter 2 * 2 = 4, union 100 + 25 - 4 = 121
    expected[1][1] = 4 / 121
    np.testing.assert_allclose(B.pairwise_iou(a, b), expected)
    np.testing.assert_allclose(B.iou(a[:, None, :], b[None, :, :]), expected)  # [2, 3] by broadcasting
    assert B.pairwise_iou(np.zeros((0, 4)), b).shape == (0, 3)
    assert B.pairwise_iou(a, np.zeros((0, 4))).shape == (2, 0)


# --------------------------------------------------------------------------- properties

coord = st.floats(min_value=-50, max_value=150, allow_nan=False, allow_subnormal=False)
side = st.floats(min_value=0, max_value=100, allow_nan=False, allow_subnormal=False)


@st.composite
def xyxy_boxes(draw, n=None):
    n = draw(st.integers(1, 6)) if n is None else n
    rows = [(x, y, x + w, y + h) for x, y, w, h in draw(st.lists(st.tuples(coord, coord, side, side),
                                                                  min_size=n, max_size=n))]
    return np.array(rows, float).reshape(n, 4)


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes(n=5), xyxy_boxes(n=5))
def test_iou_symmetric_and_within_0_1(a, b):
    ab, ba = B.iou(a, b), B.iou(b, a)
    np.testing.assert_array_equal(ab, ba)
    assert np.all((ab >= 0) & (ab <= 1)) and not np.isnan(ab).any()


@settings(max_examples=200, deadline=None)
@given(xyxy_boxes())
def test_iou_of_a_non_empty_box_with_itself_is_1(a):
    assume(np.all(B.area(a) > 0))
    np.testing.assert_array_equal(B.iou(a, a), 1.0)


@settings(max_examples=100, deadline=None)
@given(xyxy_boxes(), xyxy_boxes())
def test_pairwise_iou_is_iou_broadcast(a, b):
    pair = B.pairwise_iou(a, b)
    assert pair.shape == (len(a), len(b))
    np.testing.assert_array_equal(pair, B.iou(a[:, None, :], b[None, :, :]))
    for i, j in itertools.product(range(len(a)), range(len(b))):
        assert pair[i, j] == B.iou(a[i], b[j])


@settings(max_examples=100, deadline=None)
@given(xyxy_boxes(), st.sampled_from(B.FORMATS))
def test_convert_round_trip(boxes, fmt):
    back = B.convert(B.convert(boxes, "xyxy", fmt, size=SIZE), fmt, "xyxy", size=SIZE)
    np.testing.assert_allclose(back, boxes, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- tight_box


def test_tight_box_single_pixel_shape_and_empty():
    img = np.zeros((10, 12), np.uint8)
    img[3, 5] = 255  # row 3, column 5
    np.testing.assert_array_equal(B.tight_box(img), [5, 3, 6, 4])  # exclusive max: w = h = 1
    img[2:5, 1:8] = 7  # rows 2..4, columns 1..7
    np.testing.assert_array_equal(B.tight_box(img), [1, 2, 8, 5])
    np.testing.assert_array_equal(B.tight_box(np.zeros((10, 12))), [0, 0, 0, 0])
    np.testing.assert_array_equal(B.tight_box(np.ones((10, 12))), [0, 0, 12, 10])  # all ink: the frame
    assert B.tight_box(img).dtype == np.float32


def test_tight_box_threshold_is_strict():
    img = np.zeros((8, 8), np.uint8)
    img[1, 1], img[6, 5] = 10, 200
    np.testing.assert_array_equal(B.tight_box(img), [1, 1, 6, 7])  # both pixels are ink
    np.testing.assert_array_equal(B.tight_box(img, threshold=10), [5, 6, 6, 7])  # 10 is not > 10
    np.testing.assert_array_equal(B.tight_box(img, threshold=200), [0, 0, 0, 0])


def test_tight_box_batches_match_single_images():
    rng = np.random.default_rng(0)
    imgs = (rng.random((2, 3, 9, 11)) > 0.97).astype(np.uint8)  # sparse ink, some images empty
    imgs[0, 0] = 0
    out = B.tight_box(imgs)
    assert out.shape == (2, 3, 4)
    for i, j in itertools.product(range(2), range(3)):
        np.testing.assert_array_equal(out[i, j], B.tight_box(imgs[i, j]))
    np.testing.assert_array_equal(out[0, 0], 0)


def test_tight_box_matches_nonzero_extent_on_mnist_digits():
    from mnistloc.data import load_digits
    images, _ = load_digits("test")
    for img in images[:50]:
        rows, cols = np.nonzero(img)  # independent: the extent of the ink, exclusive max
        expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        np.testing.assert_array_equal(B.tight_box(img), expected)


# --------------------------------------------------------------------------- union_box


def test_union_box():
    boxes = np.array([[[0, 0, 10, 10], [20, 5, 30, 25]],  # two digits: x 0..30, y 0..25
                      [[4, 4, 8, 8], [99, 99, 99, 99]],  # second slot unused: its junk is ignored
                      [[1, 2, 3, 4], [5, 6, 7, 8]]], float)  # empty canvas
    mask = np.array([[True, True], [True, False], [False, False]])
    np.testing.assert_array_equal(B.union_box(boxes, mask), [[0, 0, 30, 25], [4, 4, 8, 8], [0, 0, 0, 0]])


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("call, error, match", [
    (lambda: B.convert(np.zeros((2, 3)), "xyxy", "xywh"), ValueError, r"`boxes`.*\(\.\.\., 4\).*\(2, 3\)"),
    (lambda: B.convert(np.zeros(4), "xyx", "xywh"), ValueError, r"`src`.*'xyx'"),
    (lambda: B.convert(np.zeros(4), "xyxy", "yolo"), ValueError, r"`dst`.*'yolo'"),
    (lambda: B.convert(np.zeros(4), "xyxy", "rel_xyxy"), ValueError, r"`size`.*None"),
    (lambda: B.convert(np.zeros(4), "rel_xyxy", "xyxy", size=0), ValueError, r"`size`.*0"),
    (lambda: B.convert(["a", "b", "c", "d"], "xyxy", "xywh"), TypeError, r"`boxes`.*dtype"),
    (lambda: B.area(np.zeros(5)), ValueError, r"`boxes`.*\(5,\)"),
    (lambda: B.iou(np.zeros(3), np.zeros(4)), ValueError, r"`a`.*\(3,\)"),
    (lambda: B.iou(np.zeros(4), np.zeros((2, 5))), ValueError, r"`b`.*\(2, 5\)"),
    (lambda: B.pairwise_iou(np.zeros(4), np.zeros((2, 4))), ValueError, r"`a` and `b`.*\(N, 4\)"),
    (lambda: B.tight_box(np.zeros(5)), ValueError, r"`image`.*\(5,\)"),
    (lambda: B.union_box(np.zeros((2, 2, 4)), np.ones((2, 3), bool)), ValueError, r"`mask`.*\(2, 2\)"),
])
def test_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
