"""The detector's parts (mnistloc.targets, mnistloc.decoder) on hand-worked and imperfect outputs.

Every expected number is derived in a comment, or comes from an independent
implementation (a plain loop, scipy's maximum filter, TensorFlow's NMS).
"""
import numpy as np
import pytest

from mnistloc import boxes as B
from mnistloc import canvas, decoder, evaluation, targets
from mnistloc.decoder import boxes_from_cells, find_peaks, nms
from mnistloc.targets import box_targets, heatmap_targets

E = np.exp


def one_box(box, size=128):
    """boxes (1, 2, 4) and mask (1, 2) with ``box`` in slot 0."""
    boxes = np.zeros((1, 2, 4), np.float32)
    boxes[0, 0] = box
    return boxes, np.array([[True, False]])


# ---- heatmap_targets -----------------------------------------------------------------------------

def test_heatmap_hand_made_box():
    # centre ((10 + 30) / 2, (20 + 44) / 2) = (20, 32) px: column 20 // 8 = 2, row 32 // 8 = 4
    heat = heatmap_targets(*one_box((10, 20, 30, 44)))[0]
    assert heat.shape == (16, 16) and heat.dtype == np.float32
    assert heat[4, 2] == 1.0 and heat.max() == 1.0
    assert heat[4, 3] == pytest.approx(E(-1 / 2))  # one column away: exp(-1 / (2 * 1^2))
    assert heat[5, 3] == pytest.approx(E(-1))  # diagonal: exp(-(1 + 1) / 2)
    assert heat[2, 2] == pytest.approx(E(-2))  # two rows up: exp(-4 / 2)
    assert heat[2, 4] == pytest.approx(E(-4))  # (row 2, col 4) is not the centre with x and y swapped
    wide = heatmap_targets(*one_box((10, 20, 30, 44)), sigma=2.0)[0]
    assert wide[4, 4] == pytest.approx(E(-4 / 8))  # sigma in cells: exp(-2^2 / (2 * 2^2))


def test_heatmap_centre_cell_edges():
    # centre (8, 8) px lies on a cell border: floor(8 / 8) = 1, so cell (1, 1), not (0, 0)
    assert np.unravel_index(heatmap_targets(*one_box((0, 0, 16, 16)))[0].argmax(), (16, 16)) == (1, 1)
    # centre (114, 119) px, in the last cell: (119 // 8, 114 // 8) = (14, 14); a box touching the far
    # edge, centre (124, 124): cell 15
    assert heatmap_targets(*one_box((100, 110, 128, 128)))[0][14, 14] == 1.0
    assert heatmap_targets(*one_box((120, 120, 128, 128)))[0][15, 15] == 1.0


def test_heatmap_two_digits_take_the_max_and_masked_slots_add_nothing():
    boxes = np.array([[[10, 20, 30, 44], [34, 20, 54, 44]]], np.float32)  # centre cells (4, 2) and (4, 5)
    heat = heatmap_targets(boxes, np.array([[True, True]]))[0]
    # cell (4, 3): exp(-1/2) = 0.607 from the first, exp(-4/2) = 0.135 from the second: max 0.607, not the sum 0.742
    assert heat[4, 3] == pytest.approx(E(-0.5))
    assert heat[4, 2] == heat[4, 5] == 1.0
    only_first = heatmap_targets(boxes, np.array([[True, False]]))[0]
    np.testing.assert_allclose(only_first, heatmap_targets(*one_box(boxes[0, 0]))[0])
    assert only_first[4, 5] == pytest.approx(E(-9 / 2))  # the masked box adds nothing


def heatmap_loop(boxes, mask, size, stride, sigma):
    """A plain loop over canvases, digits and cells: the definition, written the slow way."""
    g = size // stride
    out = np.zeros((len(boxes), g, g))
    for n in range(len(boxes)):
        for k in range(boxes.shape[1]):
            if not mask[n, k]:
                continue
            x0, y0, x1, y1 = boxes[n, k]
            row, col = min(int((y0 + y1) / 2 // stride), g - 1), min(int((x0 + x1) / 2 // stride), g - 1)
            for i in range(g):
                for j in range(g):
                    out[n, i, j] = max(out[n, i, j], np.exp(-((i - row) ** 2 + (j - col) ** 2) / (2 * sigma ** 2)))
    return out


@pytest.mark.parametrize("case, size, stride, sigma", [(4, 128, 8, 1.0), (2, 64, 4, 1.5), (1, 128, 16, 0.7)])
def test_heatmap_matches_a_loop(case, size, stride, sigma):
    ds = canvas.make_dataset(case, 20, seed=3, size=size)
    got = heatmap_targets(ds.boxes, ds.mask, size=size, stride=stride, sigma=sigma)
    np.testing.assert_allclose(got, heatmap_loop(ds.boxes, ds.mask, size, stride, sigma), atol=1e-6)


def test_heatmap_empty_inputs_and_bad_arguments():
    assert heatmap_targets(np.zeros((3, 2, 4)), np.zeros((3, 2), bool)).sum() == 0  # empty canvases
    assert heatmap_targets(np.zeros((2, 0, 4)), np.zeros((2, 0), bool)).shape == (2, 16, 16)  # no slot
    assert heatmap_targets(np.zeros((0, 2, 4)), np.zeros((0, 2), bool)).shape == (0, 16, 16)  # no canvas
    with pytest.raises(ValueError, match="boxes"):
        heatmap_targets(np.zeros((2, 4)), np.zeros((2,), bool))
    with pytest.raises(ValueError, match="mask"):
        heatmap_targets(np.zeros((2, 2, 4)), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="size"):
        heatmap_targets(*one_box((0, 0, 8, 8)), size=100)
    with pytest.raises(ValueError, match="sigma"):
        heatmap_targets(*one_box((0, 0, 8, 8)), sigma=0)


# ---- box_targets and boxes_from_cells ------------------------------------------------------------

def test_box_targets_hand_made_box():
    dist, cells = box_targets(*one_box((10, 20, 30, 44)))
    assert dist.shape == (1, 16, 16, 4) and cells.shape == (1, 16, 16) and cells.dtype == bool
    # centre cell (4, 2), its centre (2.5 * 8, 4.5 * 8) = (20, 36) px:
    # l = (20 - 10) / 8 = 1.25, t = (36 - 20) / 8 = 2, r = (30 - 20) / 8 = 1.25, b = (44 - 36) / 8 = 1
    np.testing.assert_allclose(dist[0, 4, 2], [1.25, 2, 1.25, 1])
    # cell (3, 1), centre (12, 28): l = 2 / 8, t = 8 / 8, r = 18 / 8, b = 16 / 8
    np.testing.assert_allclose(dist[0, 3, 1], [0.25, 1, 2.25, 2])
    rows, cols = np.nonzero(cells[0])
    assert sorted(zip(rows, cols)) == [(r, c) for r in (3, 4, 5) for c in (1, 2, 3)]  # the 3x3 block
    assert not dist[0, 4, 4].any()  # two columns away: nothing to learn, zeros
    dist0, cells0 = box_targets(*one_box((10, 20, 30, 44)), radius=0)
    assert cells0.sum() == 1 and cells0[0, 4, 2]


def test_box_targets_cells_learn_the_nearest_digit():
    boxes = np.array([[[10, 20, 30, 44], [26, 20, 46, 44]]], np.float32)  # centre cells (4, 2) and (4, 4)
    dist, cells = box_targets(boxes, np.array([[True, True]]))
    # cell (4, 3), centre (28, 36), is one column from both: a tie, the earlier slot wins:
    # (28 - 10, 36 - 20, 30 - 28, 44 - 36) / 8 = (2.25, 2, 0.25, 1)
    np.testing.assert_allclose(dist[0, 4, 3], [2.25, 2, 0.25, 1])
    # cell (4, 5), centre (44, 36), belongs to the second: (44 - 26, 16, 46 - 44, 8) / 8
    np.testing.assert_allclose(dist[0, 4, 5], [2.25, 2, 0.25, 1])
    np.testing.assert_allclose(dist[0, 3, 4], [(36 - 26) / 8, (28 - 20) / 8, (46 - 36) / 8, (44 - 28) / 8])
    assert cells[0].sum() == 3 * 5  # the two 3x3 blocks share the column 3


def box_targets_loop(boxes, mask, size, stride, radius):
    g = size // stride
    dist, cells = np.zeros((len(boxes), g, g, 4)), np.zeros((len(boxes), g, g), bool)
    for n in range(len(boxes)):
        centres = [(min(int((b[1] + b[3]) / 2 // stride), g - 1), min(int((b[0] + b[2]) / 2 // stride), g - 1))
                   for b in boxes[n]]
        for i in range(g):
            for j in range(g):
                used = [k for k in range(boxes.shape[1]) if mask[n, k]]
                if not any(abs(i - centres[k][0]) <= radius and abs(j - centres[k][1]) <= radius for k in used):
                    continue
                k = min(used, key=lambda k: ((i - centres[k][0]) ** 2 + (j - centres[k][1]) ** 2, k))
                x0, y0, x1, y1 = boxes[n, k]
                cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
                dist[n, i, j] = np.array([cx - x0, cy - y0, x1 - cx, y1 - cy]) / stride
                cells[n, i, j] = True
    return dist, cells


@pytest.mark.parametrize("case, size, stride, radius", [(4, 128, 8, 1), (4, 64, 4, 2), (2, 128, 8, 0)])
def test_box_targets_match_a_loop(case, size, stride, radius):
    ds = canvas.make_dataset(case, 20, seed=5, size=size)
    dist, cells = box_targets(ds.boxes, ds.mask, size=size, stride=stride, radius=radius)
    want_dist, want_cells = box_targets_loop(ds.boxes, ds.mask, size, stride, radius)
    np.testing.assert_array_equal(cells, want_cells)
    np.testing.assert_allclose(dist, want_dist, atol=1e-5)


def test_boxes_from_cells_hand_made_and_inverts_box_targets():
    d = np.zeros((1, 16, 16, 4), np.float32)
    d[0, 4, 2] = (1.25, 2, 1.25, 1)  # from test_box_targets_hand_made_box
    got = boxes_from_cells(d)
    np.testing.assert_allclose(got[0, 4, 2], [10, 20, 30, 44])
    np.testing.assert_allclose(got[0, 0, 1], [12, 4, 12, 4])  # zero distances: the point (1.5 * 8, 0.5 * 8)
    wide = boxes_from_cells(np.zeros((2, 3, 4)))  # a 2 x 3 grid: x follows the column, y the row
    np.testing.assert_allclose(wide[1, 2], [20, 12, 20, 12])
    ds = canvas.make_dataset(4, 50, seed=9)
    dist, cells = box_targets(ds.boxes, ds.mask)
    every = boxes_from_cells(dist)  # [n, 16, 16, 4]
    for n, k in zip(*np.nonzero(ds.mask)):  # each digit's centre cell gives its box back
        x0, y0, x1, y1 = ds.boxes[n, k]
        i, j = min(int((y0 + y1) / 2 // 8), 15), min(int((x0 + x1) / 2 // 8), 15)
        np.testing.assert_allclose(every[n, i, j], ds.boxes[n, k], atol=1e-4)


def test_boxes_from_cells_bad_input():
    with pytest.raises(ValueError, match="distances"):
        boxes_from_cells(np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="distances"):
        boxes_from_cells(np.zeros((16, 4)))
    assert boxes_from_cells(np.zeros((0, 16, 16, 4))).shape == (0, 16, 16, 4)


# ---- find_peaks --------------------------------------------------------------------------------

def test_find_peaks_hand_made_map():
    heat = np.zeros((1, 5, 5))
    heat[0, 1, 1], heat[0, 1, 2] = 0.9, 0.5  # (1, 2) is next to a higher cell: not a peak
    heat[0, 3, 3], heat[0, 4, 0] = 0.7, 0.3  # a corner counts: cells off the grid do not
    rows, cols, scores = find_peaks(heat, k=3, threshold=0.1)
    np.testing.assert_array_equal(rows, [[1, 3, 4]])
    np.testing.assert_array_equal(cols, [[1, 3, 0]])
    np.testing.assert_allclose(scores, [[0.9, 0.7, 0.3]], rtol=1e-6)
    assert rows.dtype == cols.dtype == np.int64 and scores.dtype == np.float32
    rows, cols, scores = find_peaks(heat, k=5, threshold=0.5)  # 0.3 falls below; the zeros too
    np.testing.assert_array_equal(rows, [[1, 3, -1, -1, -1]])
    np.testing.assert_array_equal(cols, [[1, 3, -1, -1, -1]])
    np.testing.assert_allclose(scores, [[0.9, 0.7, 0, 0, 0]], rtol=1e-6)
    rows, _, _ = find_peaks(heat, k=30, threshold=0.1)  # more than the 25 cells: padded
    assert rows.shape == (1, 30) and (rows[0, 3:] == -1).all()


def test_find_peaks_plateau_and_ties_in_row_major_order():
    heat = np.zeros((2, 4, 4))
    heat[0, 2, 1] = heat[0, 2, 2] = 0.8  # two equal neighbours: both are peaks, row-major order
    heat[0, 0, 3] = 0.8  # an equal score elsewhere comes first: row 0
    heat[1] = 0.1  # a flat map: every cell is a peak
    rows, cols, scores = find_peaks(heat, k=3, threshold=0.05)
    np.testing.assert_array_equal(np.stack([rows[0], cols[0]], -1), [[0, 3], [2, 1], [2, 2]])
    np.testing.assert_array_equal(np.stack([rows[1], cols[1]], -1), [[0, 0], [0, 1], [0, 2]])
    np.testing.assert_allclose(scores[1], 0.1, rtol=1e-6)


def test_find_peaks_matches_scipy_maximum_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    heat = np.round(rng.random((20, 9, 13)), 1)  # rounded: plateaus and ties happen
    rows, cols, scores = find_peaks(heat, k=200, threshold=0.3)
    for n in range(len(heat)):
        local = ndimage.maximum_filter(heat[n], size=3, mode="constant", cval=-np.inf)
        want = np.argwhere((heat[n] == local) & (heat[n] >= 0.3))  # row-major
        want = want[np.argsort(-heat[n][tuple(want.T)], kind="stable")]
        got = np.stack([rows[n], cols[n]], -1)[rows[n] >= 0]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(scores[n][rows[n] >= 0], heat[n][tuple(want.T)], rtol=1e-6)


def test_find_peaks_bad_input():
    with pytest.raises(ValueError, match="heatmap"):
        find_peaks(np.zeros((16, 16)), k=2)
    with pytest.raises(ValueError, match="k"):
        find_peaks(np.zeros((1, 16, 16)), k=0)
    with pytest.raises(ValueError, match="threshold"):
        find_peaks(np.zeros((1, 16, 16)), k=2, threshold="high")
    rows, cols, scores = find_peaks(np.zeros((0, 16, 16)), k=2)
    assert rows.shape == cols.shape == scores.shape == (0, 2)


# ---- nms ---------------------------------------------------------------------------------------

def test_nms_hand_made():
    boxes = np.array([[1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.7])
    # box 1 (0.9) first; box 0 overlaps it by 9 * 10 / (100 + 100 - 90) = 0.818 > 0.5: dropped; box 2 apart
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.85), [1, 0, 2])  # 0.818 is not above 0.85
    assert nms(boxes, scores, 0.5).dtype == np.int64


def test_nms_dropped_boxes_drop_nothing():
    a, b, c = [0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]
    # IoU(a, b) = 60 / 140 = 0.43 and IoU(b, c) = 0.43, IoU(a, c) = 20 / 180 = 0.11; at 0.4:
    # a drops b; b, dropped, must not drop c
    np.testing.assert_array_equal(nms(np.array([a, b, c], float), np.array([0.9, 0.8, 0.7]), 0.4), [0, 2])


def test_nms_keeps_an_iou_equal_to_the_threshold_and_ties_keep_given_order():
    a, half = [0, 0, 10, 10], [0, 0, 10, 5]  # IoU 50 / 100 = 0.5 exactly: not above 0.5, kept
    np.testing.assert_array_equal(nms(np.array([a, half], float), np.array([0.9, 0.8]), 0.5), [0, 1])
    same = np.array([a, a, a], float)  # equal scores: the first in the given order wins
    np.testing.assert_array_equal(nms(same, np.array([0.5, 0.5, 0.5]), 0.5), [0])


def nms_loop(boxes, scores, threshold):
    """Brute force: repeatedly keep the best box left and drop the ones it overlaps too much."""
    left = list(np.argsort(-scores, kind="stable"))
    keep = []
    while left:
        best = left.pop(0)
        keep.append(best)
        left = [i for i in left if B.iou(boxes[best], boxes[i]) <= threshold]
    return keep


def random_boxes(rng, m):
    xy = rng.uniform(0, 60, (m, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 30, (m, 2))], 1)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_brute_force_and_tensorflow(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    tf = pytest.importorskip("tensorflow")
    for _ in range(20):
        m = int(rng.integers(1, 25))
        boxes, scores = random_boxes(rng, m), rng.random(m)
        got = nms(boxes, scores, threshold)
        np.testing.assert_array_equal(got, nms_loop(boxes, scores, threshold))
        yxyx = boxes[:, [1, 0, 3, 2]].astype(np.float32)
        want = tf.image.non_max_suppression(yxyx, scores.astype(np.float32), m, iou_threshold=threshold).numpy()
        np.testing.assert_array_equal(got, want)


def test_nms_empty_and_bad_input():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    assert nms([], [], 0.5).shape == (0,)
    with pytest.raises(ValueError, match="boxes"):
        nms(np.zeros((3, 5)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(np.zeros((3, 4)), np.zeros(3), 1.5)


# ---- decode and detections on imperfect outputs -------------------------------------------------

def outputs(n=1, classes=False, count=None):
    """Hand-built model outputs for n canvases: presence 0, zero distances, uniform classes."""
    out = {"presence": np.zeros((n, 16, 16, 1), np.float32), "box": np.zeros((n, 16, 16, 4), np.float32)}
    if classes:
        out["class"] = np.full((n, 16, 16, 10), 0.1, np.float32)
    if count is not None:
        out["count"] = np.eye(3, dtype=np.float32)[count]
    return out


def put_box(out, i, row, col, box):
    """Makes cell (row, col) of canvas i predict ``box`` (xyxy pixels)."""
    cx, cy = (col + 0.5) * 8, (row + 0.5) * 8
    out["box"][i, row, col] = np.array([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy]) / 8


def test_decode_takes_the_higher_of_two_peaks():
    out = outputs(classes=True)
    out["presence"][0, 4, 12, 0], out["presence"][0, 4, 2, 0] = 0.9, 0.6  # the higher peak on the right
    put_box(out, 0, 4, 12, (90, 20, 110, 44))
    put_box(out, 0, 4, 2, (10, 20, 30, 44))
    out["class"][0, 4, 12] = np.eye(10)[7]
    pred = decoder.decode(3, out)
    np.testing.assert_allclose(pred["boxes"][:, 0], [[90, 20, 110, 44]], atol=1e-4)  # not the left one
    assert pred["classes"][0, 0] == 7 and pred["scores"][0, 0] == pytest.approx(0.9)
    out["count"] = np.eye(3, dtype=np.float32)[[2]]
    pred = decoder.decode(4, out)  # both digits, left to right: the 0.6 one first
    np.testing.assert_allclose(pred["boxes"][0], [[10, 20, 30, 44], [90, 20, 110, 44]], atol=1e-4)
    np.testing.assert_allclose(pred["scores"][0], [0.6, 0.9], rtol=1e-6)
    pred = decoder.decode(2, out)  # case 2: peaks >= 0.5: both, and their union box
    np.testing.assert_allclose(B.union_box(pred["boxes"], pred["mask"]), [[10, 20, 110, 44]], atol=1e-4)
    out["presence"][0, 4, 2, 0] = 0.5  # a peak exactly at the threshold counts (>=, not >)
    assert decoder.decode(2, out)["count"][0] == 2
    out["presence"][0, 4, 2, 0] = np.nextafter(np.float32(0.5), np.float32(0))  # just below: one digit
    assert decoder.decode(2, out)["count"][0] == 1


def test_decode_refinement_weights_the_agreeing_neighbours_by_presence():
    out = outputs()
    out["presence"][0, 4, 2, 0], out["presence"][0, 4, 3, 0] = 1.0, 0.5
    put_box(out, 0, 4, 2, (10, 20, 30, 44))  # the peak's own box
    put_box(out, 0, 4, 3, (14, 20, 34, 44))  # its right neighbour says 4 px further right: IoU 16 / 24 >= 0.5
    # the other seven neighbours predict points (zero distances): IoU 0 with the peak's box, and presence 0:
    # x0 = (1 * 10 + 0.5 * 14) / 1.5 = 11.333, x1 = (1 * 30 + 0.5 * 34) / 1.5 = 31.333; y agrees
    pred = decoder.decode(1, out)
    np.testing.assert_allclose(pred["boxes"][0, 0], [11 + 1 / 3, 20, 31 + 1 / 3, 44], atol=1e-4)
    put_box(out, 0, 4, 3, (18, 20, 38, 44))  # 8 px off: IoU 12 / 28 = 0.43 < 0.5, another digit's cell
    np.testing.assert_allclose(decoder.decode(1, out)["boxes"][0, 0], [10, 20, 30, 44], atol=1e-4)


def test_decode_case_4_follows_the_count_head_not_the_peaks():
    out = outputs(n=2, classes=True, count=[1, 2])
    for i, (left, right) in enumerate([(0.9, 0.8), (0.9, 0.2)]):
        out["presence"][i, 4, 2, 0], out["presence"][i, 4, 10, 0] = left, right
        put_box(out, i, 4, 2, (10, 20, 30, 44))
        put_box(out, i, 4, 10, (74, 20, 94, 44))
    pred = decoder.decode(4, out)
    # canvas 0: two strong peaks (0.9, 0.8) but the count head says 1: only the best, on the left
    np.testing.assert_array_equal(pred["mask"], [[True, False], [True, True]])
    np.testing.assert_array_equal(pred["count"], [1, 2])
    np.testing.assert_allclose(pred["boxes"][0], [[10, 20, 30, 44], [0, 0, 0, 0]], atol=1e-4)
    # canvas 1: a weak second peak (0.2) but the count head says 2: both
    np.testing.assert_allclose(pred["boxes"][1], [[10, 20, 30, 44], [74, 20, 94, 44]], atol=1e-4)


def test_decode_class_is_the_presence_weighted_mean_of_the_neighbours():
    out = outputs(classes=True)
    out["presence"][0, 4, 2, 0], out["presence"][0, 4, 3, 0] = 1.0, 0.5
    put_box(out, 0, 4, 2, (10, 20, 30, 44))
    put_box(out, 0, 4, 3, (10, 20, 30, 44))  # both cells see the same digit
    out["class"][0, 4, 2] = 0.6 * np.eye(10)[3] + 0.4 * np.eye(10)[8]  # the peak: 3 (0.6) over 8 (0.4)
    out["class"][0, 4, 3] = np.eye(10)[8]  # the neighbour is sure it is an 8
    # weighted: P(3) = (1 * 0.6 + 0.5 * 0) / 1.5 = 0.4, P(8) = (1 * 0.4 + 0.5 * 1) / 1.5 = 0.6 -> 8
    assert decoder.decode(3, out)["classes"][0, 0] == 8
    out["presence"][0, 4, 3, 0] = 0.1  # a weak neighbour: P(8) = (0.4 + 0.1) / 1.1 = 0.45 < P(3) 0.55
    assert decoder.decode(3, out)["classes"][0, 0] == 3


def test_detections_score_labels_and_drop_duplicates_with_nms():
    out = outputs(classes=True)
    out["presence"][0, 4, 2, 0], out["presence"][0, 4, 4, 0] = 0.9, 0.6  # two peaks on one digit
    put_box(out, 0, 4, 2, (10, 20, 30, 44))
    put_box(out, 0, 4, 4, (12, 20, 32, 44))  # IoU with the first: 18 * 24 / (2 * 480 - 432) = 0.818
    out["class"][0, 4, 2] = out["class"][0, 4, 4] = 0.7 * np.eye(10)[4] + 0.3 * np.eye(10)[9]
    boxes, labels, scores = decoder.detections(decoder.detect(out, k=2, iou_threshold=0.5))
    # NMS keeps the 0.9 peak: scores 0.9 * 0.7 = 0.63 (label 4) and 0.9 * 0.3 = 0.27 (label 9)
    np.testing.assert_array_equal(labels[0], [4, 9])
    np.testing.assert_allclose(scores[0], [0.63, 0.27], rtol=1e-5)
    np.testing.assert_allclose(boxes[0], [[10, 20, 30, 44]] * 2, atol=1e-4)
    _, labels, scores = decoder.detections(decoder.detect(out, k=2, iou_threshold=None))
    # without NMS, the 0.6 peak's copies stay: 0.6 * 0.7 = 0.42 and 0.6 * 0.3 = 0.18
    np.testing.assert_allclose(scores[0], [0.63, 0.42, 0.27, 0.18], rtol=1e-5)
    np.testing.assert_array_equal(labels[0], [4, 4, 9, 9])


def test_the_pipeline_calls_the_parts_it_is_given():
    ds = canvas.make_dataset(4, 5, seed=1)
    flat = lambda boxes, mask, **kw: np.zeros((len(boxes), 16, 16), np.float32)  # noqa: E731
    assert targets.encode_targets(ds.boxes, ds.classes, ds.mask, heatmap_fn=flat)["presence"].sum() == 0
    t = targets.encode_targets(ds.boxes, ds.classes, ds.mask, max_count=2)
    out = {"presence": t["presence"], "box": t["box"][..., 1:], "class": t["class"][..., 1:], "count": t["count"]}
    calls = []

    def peaks(heat, *, k, threshold):
        calls.append(k)
        return find_peaks(heat, k=k, threshold=threshold)

    def no_nms(boxes, scores, iou_threshold):
        calls.append("nms")
        return np.arange(len(boxes))

    decoder.decode(4, out, peaks_fn=peaks, cells_fn=lambda d, stride: boxes_from_cells(d, stride=stride) + 1)
    decoder.detect(out, k=7, peaks_fn=peaks, nms_fn=no_nms, iou_threshold=0.5)
    assert calls[:2] == [10, 7] and "nms" in calls
    shifted = decoder.decode(4, out, cells_fn=lambda d, stride: boxes_from_cells(d, stride=stride) + 1)
    np.testing.assert_allclose(shifted["boxes"][ds.mask], np.clip(ds.boxes[ds.mask] + 1, 0, 128), atol=1e-4)


def test_the_default_nms_threshold_is_half():
    """NMS_IOU is 0.5 (the COCO-style default the lessons quote): two boxes overlapping by IoU 0.55 are one digit,
    by 0.45 two. [0, 0, 20, 10] and [x, 0, 20 + x, 10] overlap (20 - x) * 10 / ((20 + x) * 10)."""
    def pair(iou):  # the shift x that gives this IoU: (20 - x) / (20 + x) = iou
        x = 20 * (1 - iou) / (1 + iou)
        return np.float32([[0, 0, 20, 10], [x, 0, 20 + x, 10]])

    assert decoder.NMS_IOU == 0.5
    assert nms(pair(0.55), np.float32([0.9, 0.8])).tolist() == [0]
    assert nms(pair(0.45), np.float32([0.9, 0.8])).tolist() == [0, 1]
