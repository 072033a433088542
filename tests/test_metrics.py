"""Tests for mnistloc.metrics: derived cases, and pycocotools as the reference for AP."""
import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mnistloc import metrics as M

# --------------------------------------------------------------------------- accuracy


def test_accuracy_labels_and_one_hot():
    # 3 of 4 labels agree -> 0.75
    assert M.accuracy([0, 1, 2, 3], [0, 1, 2, 0]) == 0.75
    one_hot = np.eye(3)[[0, 2, 1]]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])  # argmax 0, 2, 0
    assert M.accuracy(one_hot, probs) == pytest.approx(2 / 3)
    assert M.accuracy([0, 2, 1], probs) == pytest.approx(2 / 3)  # labels against rows


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 1], [0, 1, 1], "same number of samples"),
    ([], [], "empty"),
    ([0, 1], [0.2, 0.9], "y_pred.*integer labels.*> 0.5"),
    (np.zeros((2, 2, 2)), [0, 1], "y_true.*shape"),
])
def test_accuracy_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        M.accuracy(y_true, y_pred)


# --------------------------------------------------------------------------- mean_iou, iou_rate

TRUE = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 5, 5]], float)
PRED = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [30, 30, 40, 40], [5, 5, 5, 5]], float)
# IoUs: identical -> 1; half of it -> 50/100 = 0.5; disjoint -> 0; two empty boxes -> 0 (not NaN)


def test_mean_iou_and_iou_rate_derived():
    assert M.mean_iou(TRUE, PRED) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert M.iou_rate(TRUE, PRED, 0.5) == pytest.approx(2 / 4)  # 1 and 0.5 reach 0.5
    assert M.iou_rate(TRUE, PRED, 0.51) == pytest.approx(1 / 4)
    mask = np.array([True, True, False, False])
    assert M.mean_iou(TRUE, PRED, mask) == pytest.approx(0.75)
    assert M.iou_rate(TRUE, PRED, 0.75, mask=mask) == pytest.approx(0.5)


def test_mean_iou_over_slots_with_mask():
    # case 4 layout (n, 2, 4) with mask (n, 2): slot 1 of canvas 0 unused and its junk ignored
    t = TRUE.reshape(2, 2, 4)
    p = PRED.reshape(2, 2, 4)
    mask = np.array([[True, False], [True, True]])
    assert M.mean_iou(t, p, mask) == pytest.approx((1 + 0 + 0) / 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"true_boxes": TRUE, "pred_boxes": PRED[:2]}, "pred_boxes.*shape"),
    ({"true_boxes": TRUE[:, :3], "pred_boxes": PRED[:, :3]}, "true_boxes.*shape"),
    ({"true_boxes": TRUE, "pred_boxes": PRED, "mask": np.zeros(4, bool)}, "`mask` selects nothing"),
    ({"true_boxes": np.zeros((0, 4)), "pred_boxes": np.zeros((0, 4))}, "empty"),
    ({"true_boxes": TRUE, "pred_boxes": PRED, "mask": np.ones(3, bool)}, "mask.*shape"),
    ({"true_boxes": TRUE, "pred_boxes": PRED, "mask": np.ones(4)}, "mask.*bool"),
    ({"true_boxes": TRUE, "pred_boxes": np.full((4, 4), np.nan)}, "pred_boxes.*finite"),
])
def test_mean_iou_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.mean_iou(**kwargs)


def test_iou_rate_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        M.iou_rate(TRUE, PRED, 1.5)


# --------------------------------------------------------------------------- average_precision


def test_average_precision_derived():
    # ranked TP, FP, TP with 2 true boxes: precision [1, 1/2, 2/3], recall [.5, .5, 1];
    # envelope [1, 2/3, 2/3]; recalls 0..0.50 (51 of them) read 1, 0.51..1 (50) read 2/3
    assert M.average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx((51 + 50 * 2 / 3) / 101)
    # the same detections given in another order rank the same
    assert M.average_precision([0.7, 0.9, 0.8], [True, True, False], 2) == pytest.approx((51 + 50 * 2 / 3) / 101)
    # one of 4 true boxes found, first: recalls 0..0.25 (26 of 101) read precision 1
    assert M.average_precision([0.5], [True], 4) == pytest.approx(26 / 101)
    assert M.average_precision([], [], 3) == 0.0  # no detection
    assert M.average_precision([0.3, 0.2], [False, False], 1) == 0.0  # all false positives


def test_average_precision_ties_keep_given_order():
    # equal scores: stable order as COCO. FP then TP -> precision [0, 1/2] at recall [0, 1] -> 0.5
    assert M.average_precision([0.5, 0.5], [False, True], 1) == pytest.approx(0.5)
    assert M.average_precision([0.5, 0.5], [True, False], 1) == pytest.approx(1.0)


@pytest.mark.parametrize("args, match", [
    (([0.5, 0.4], [True], 1), "matched.*shape"),
    (([np.nan], [True], 1), "scores.*finite"),
    (([0.5, 0.4], [True, True], 1), "num_true.*number of matches"),
    (([0.5], [False], 0), "num_true"),
    (([0.5], [2], 1), "matched"),
])
def test_average_precision_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        M.average_precision(*args)


# --------------------------------------------------------------------------- match_detections

TWO_TRUE = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)


def test_match_detections_hand_worked():
    pred = np.array([[1, 0, 11, 10], [0, 0, 10, 10], [20, 0, 30, 6], [50, 50, 60, 60]], float)
    scores = np.array([0.6, 0.9, 0.8, 0.7])
    # by score: det 1 (0.9, IoU 1 with true 0) takes true 0; det 2 (0.8, IoU 60 / 100 = 0.6 with
    # true 1) takes true 1; det 3 overlaps nothing; det 0 (0.6, IoU 90 / 110 = 0.82 with true 0)
    # finds true 0 taken: each true box is matched once
    got = M.match_detections(pred, scores, TWO_TRUE, 0.5)
    np.testing.assert_array_equal(got, [-1, 0, 1, -1])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(M.match_detections(pred, scores, TWO_TRUE, 0.7), [-1, 0, -1, -1])  # 0.6 < 0.7
    np.testing.assert_array_equal(M.match_detections(pred, scores, TWO_TRUE, 0.6), [-1, 0, 1, -1])  # IoU >= t


def test_match_detections_takes_the_free_true_box_it_overlaps_most():
    true = np.array([[3, 0, 13, 10], [0, 0, 10, 10]], float)
    pred = np.array([[1, 0, 11, 10], [0, 0, 10, 10]], float)
    # det 0 (0.9): IoU 80 / 120 = 0.67 with true 0 and 90 / 110 = 0.82 with true 1: takes true 1,
    # though true 0 comes first; det 1 (0.8): IoU 1 with true 1 (taken), 70 / 130 = 0.54 with true 0
    np.testing.assert_array_equal(M.match_detections(pred, [0.9, 0.8], true, 0.5), [1, 0])


def test_match_detections_empty_and_bad_input():
    assert M.match_detections(np.zeros((0, 4)), [], TWO_TRUE, 0.5).shape == (0,)
    np.testing.assert_array_equal(M.match_detections(TWO_TRUE, [0.5, 0.4], np.zeros((0, 4)), 0.5), [-1, -1])
    np.testing.assert_array_equal(M.match_detections(TWO_TRUE, [0.5, 0.4], [], 0.5), [-1, -1])
    with pytest.raises(ValueError, match="scores"):
        M.match_detections(TWO_TRUE, [0.5], TWO_TRUE, 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        M.match_detections(TWO_TRUE, [0.5, 0.4], TWO_TRUE, -0.1)
    with pytest.raises(ValueError, match="pred_boxes"):
        M.match_detections(np.zeros((2, 3)), [0.5, 0.4], TWO_TRUE, 0.5)


def test_a_wrong_class_at_iou_0_4_finds_nothing():
    true = scene(([([0, 0, 10, 10], 3)], [([0, 0, 10, 10], 5, 0.9), ([0, 0, 10, 4], 3, 0.8)]))
    # the right box with the wrong class (5) is a false positive of class 5; the right class (3)
    # overlaps 40 / 100 = 0.4 < 0.5: no match. Only class 3 has a true box: every AP is 0
    out = M.mean_average_precision(*true)
    assert out["map50"] == 0.0 and out["per_class"] == {3: 0.0}
    np.testing.assert_array_equal(M.match_detections(true[2][0][1:], [0.8], true[0][0], 0.5), [-1])
    np.testing.assert_array_equal(M.match_detections(true[2][0][1:], [0.8], true[0][0], 0.4), [0])


@pytest.mark.parametrize("threshold_index", [0, 5])  # IoU 0.5 and 0.75
def test_match_detections_and_average_precision_equal_pycocotools_at_one_threshold(threshold_index):
    rng = np.random.default_rng(11 + threshold_index)
    threshold = M.IOU_THRESHOLDS[threshold_index]
    checked = 0
    for _ in range(60):
        tb, _, pb, _, ps, _ = random_scene(rng)
        pb, ps = zip(*[(p[M.area(p) < 1e10], s[M.area(p) < 1e10]) for p, s in zip(pb, ps)])  # one class, COCO's range
        tl, pl = [np.zeros(len(b), int) for b in tb], [np.zeros(len(b), int) for b in pb]
        num_true = sum(map(len, tb))
        if num_true == 0:
            continue
        matched = np.concatenate([M.match_detections(p, s, t, threshold) >= 0 for p, s, t in zip(pb, ps, tb)])
        ours = M.average_precision(np.concatenate(ps), matched, num_true)
        theirs = coco_eval(tb, tl, pb, pl, ps, 1).eval["precision"][threshold_index, :, 0, 0, -1].mean()
        assert ours == pytest.approx(theirs, abs=1e-6)
        checked += 1
    assert checked >= 40


# --------------------------------------------------------------------------- mean_average_precision

BOX = [0.0, 0.0, 10.0, 10.0]
NEAR = [0.0, 0.0, 10.0, 7.2]  # IoU with BOX = 72 / 100 = 0.72: matched at thresholds .50 ... .70 (5 of 10)


def scene(*canvases):
    """canvases: (true [(box, label)], pred [(box, label, score)]) -> the five lists."""
    tb = [np.array([b for b, _ in t], float).reshape(-1, 4) for t, _ in canvases]
    tl = [np.array([c for _, c in t], int) for t, _ in canvases]
    pb = [np.array([b for b, _, _ in p], float).reshape(-1, 4) for _, p in canvases]
    pl = [np.array([c for _, c, _ in p], int) for _, p in canvases]
    ps = [np.array([s for _, _, s in p], float) for _, p in canvases]
    return tb, tl, pb, pl, ps


def test_map_perfect_and_partial():
    assert M.mean_average_precision(*scene(([(BOX, 3)], [(BOX, 3, 0.9)])))["map"] == 1.0
    out = M.mean_average_precision(*scene(([(BOX, 3)], [(NEAR, 3, 0.9)])))
    # AP 1 at 5 thresholds, 0 at 5 -> map 0.5; matched at .50, not at .75
    assert (out["map"], out["map50"], out["map75"]) == pytest.approx((0.5, 1.0, 0.0))
    assert out["per_class"] == pytest.approx({3: 0.5})


def test_map_no_predictions_all_false_positives_wrong_class():
    none = scene(([(BOX, 1)], []), ([], []))
    assert M.mean_average_precision(*none)["map"] == 0.0
    far = [50.0, 50.0, 60.0, 60.0]
    assert M.mean_average_precision(*scene(([(BOX, 1)], [(far, 1, 0.9), (far, 1, 0.8)])))["map"] == 0.0
    # right box, wrong class: a false positive for class 2 (no true box, left out) and a miss for 1
    out = M.mean_average_precision(*scene(([(BOX, 1)], [(BOX, 2, 0.9)])))
    assert out["map"] == 0.0 and out["per_class"] == {1: 0.0}


def test_map_detection_on_empty_canvas_is_false_positive():
    # ranked: FP (empty canvas, 0.9), TP (0.5): precision [0, 1/2], recall [0, 1];
    # envelope [1/2, 1/2] -> every recall reads 0.5
    out = M.mean_average_precision(*scene(([(BOX, 4)], [(BOX, 4, 0.5)]), ([], [(BOX, 4, 0.9)])))
    assert out["map"] == pytest.approx(0.5)


def test_map_duplicates_match_once():
    # two perfect detections of one box: TP then FP, recall reaches 1 at precision 1 -> 1
    assert M.mean_average_precision(*scene(([(BOX, 0)], [(BOX, 0, 0.9), (BOX, 0, 0.8)])))["map"] == 1.0
    # worse box ranked first: at .50-.70 it takes the true box (AP 1), the perfect one is a FP;
    # at .75-.95 it is a FP and the perfect one a TP: precision [0, 1/2] -> AP 0.5
    out = M.mean_average_precision(*scene(([(BOX, 0)], [(NEAR, 0, 0.9), (BOX, 0, 0.8)])))
    assert (out["map"], out["map50"], out["map75"]) == pytest.approx(((5 * 1 + 5 * 0.5) / 10, 1.0, 0.5))


def test_map_ties_follow_canvas_order():
    # equal scores rank in canvas order (COCO's stable sort): FP first -> 0.5, TP first -> 1
    fp_first = scene(([], [(BOX, 0, 0.5)]), ([(BOX, 0)], [(BOX, 0, 0.5)]))
    tp_first = scene(([(BOX, 0)], [(BOX, 0, 0.5)]), ([], [(BOX, 0, 0.5)]))
    assert M.mean_average_precision(*fp_first)["map"] == pytest.approx(0.5)
    assert M.mean_average_precision(*tp_first)["map"] == pytest.approx(1.0)


def test_map_degenerate_boxes_never_nan():
    line = [5.0, 5.0, 5.0, 10.0]  # zero width: area 0, IoU 0 even with itself
    out = M.mean_average_precision(*scene(([(line, 0), (BOX, 1)], [(line, 0, 0.9), (BOX, 1, 0.8)])))
    # class 0: its only detection is a FP -> 0; class 1 perfect -> 1; map (0 + 1) / 2
    assert out["per_class"] == {0: 0.0, 1: 1.0} and out["map"] == 0.5
    inverted = [10.0, 10.0, 0.0, 0.0]  # counts as empty
    out = M.mean_average_precision(*scene(([(BOX, 0)], [(inverted, 0, 0.9), (BOX, 0, 0.1)])))
    assert not np.isnan(out["map"]) and out["map"] == pytest.approx(0.5)


def test_map_no_true_box_anywhere():
    out = M.mean_average_precision(*scene(([], [(BOX, 0, 0.9)]), ([], [])))
    assert out == {"map": -1.0, "map50": -1.0, "map75": -1.0, "per_class": {}}
    assert M.mean_average_precision([], [], [], [], [])["map"] == -1.0


def test_map_classes_without_true_box_are_left_out():
    out = M.mean_average_precision(*scene(([(BOX, 0)], [(BOX, 0, 0.9), ([20, 20, 30, 30], 7, 0.95)])))
    assert out["map"] == 1.0 and out["per_class"] == {0: 1.0}


def test_map_keeps_100_detections_per_canvas_and_class():
    far = [50.0, 50.0, 60.0, 60.0]
    # 99 FPs at 0.9 then the TP at 0.1: rank 100, precision 1/100 at recall 1 -> AP 0.01
    kept = scene(([(BOX, 0)], [(far, 0, 0.9)] * 99 + [(BOX, 0, 0.1)]))
    assert M.mean_average_precision(*kept)["map"] == pytest.approx(0.01)
    # one more FP pushes the TP to rank 101: dropped -> 0
    dropped = scene(([(BOX, 0)], [(far, 0, 0.9)] * 100 + [(BOX, 0, 0.1)]))
    assert M.mean_average_precision(*dropped)["map"] == 0.0


def test_map_ignores_unmatched_detections_outside_coco_area_range():
    huge = [0.0, 0.0, 2e5, 2e5]  # area 4e10 > 1e10 (COCO's "all" range): unmatched -> ignored, not a FP
    assert M.mean_average_precision(*scene(([(BOX, 0)], [(huge, 0, 0.9), (BOX, 0, 0.5)])))["map"] == 1.0


def test_map_accepts_empty_lists_and_num_classes():
    out = M.mean_average_precision([[], [BOX]], [[], [0]], [[], [BOX]], [[], [0]], [[], [0.3]], num_classes=1)
    assert out["map"] == 1.0


@pytest.mark.parametrize("change, match", [
    (lambda a: a.__setitem__(1, a[1] * 2), r"true_labels.*one entry per canvas.*\(1 canvases\). Got 2"),
    (lambda a: a.__setitem__(2, [np.zeros((1, 3))]), r"pred_boxes\[0\].*\(n, 4\), one row per box"),
    (lambda a: a.__setitem__(4, [np.array([np.inf])]), r"pred_scores\[0\].*finite"),
    (lambda a: a.__setitem__(4, [np.array([0.1, 0.2])]), r"pred_scores\[0\].*\(1,\)"),
    (lambda a: a.__setitem__(3, [np.array([10])]), r"pred_labels\[0\].*\[0, 10\)"),
    (lambda a: a.__setitem__(1, [np.array([0, 1])]), r"true_labels\[0\].*1 integer labels"),
    (lambda a: a.__setitem__(0, [np.array([[0, 0, np.nan, 1]])]), r"true_boxes\[0\].*finite"),
])
def test_map_bad_input_names_the_argument(change, match):
    args = [[np.array([BOX])], [np.array([0])], [np.array([BOX])], [np.array([0])], [np.array([0.5])]]
    change(args)
    with pytest.raises(ValueError, match=match):
        M.mean_average_precision(*args)


def test_map_bad_types():
    with pytest.raises(TypeError, match="pred_scores"):
        M.mean_average_precision([], [], [], [], 0.5)
    with pytest.raises(ValueError, match="num_classes"):
        M.mean_average_precision([], [], [], [], [], num_classes=0)


# --------------------------------------------------------------------------- pycocotools as the reference



def to_xywh(b):
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def coco_reference(tb, tl, pb, pl, ps, num_classes=10):
    """pycocotools' numbers for a scene: (map, map50, map75, {class: AP})."""
    ev = coco_eval(tb, tl, pb, pl, ps, num_classes)
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K] at area "all", maxDets 100
    per_class = {k: precision[:, :, k].mean() for k in range(num_classes) if (precision[:, :, k] > -1).any()}
    return ev.stats[0], ev.stats[1], ev.stats[2], per_class


def coco_eval(tb, tl, pb, pl, ps, num_classes=10):
    """pycocotools' ``COCOeval`` of a scene, evaluated, accumulated and summarised."""
    images = [{"id": i + 1, "width": 128, "height": 128} for i in range(len(tb))]
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    anns, dets = [], []
    for i in range(len(tb)):
        for box, label in zip(to_xywh(tb[i]).tolist(), tl[i].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": label + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
        for box, label, score in zip(to_xywh(pb[i]).tolist(), pl[i].tolist(), ps[i].tolist()):
            dets.append({"image_id": i + 1, "category_id": label + 1, "bbox": box, "score": score})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "categories": categories, "annotations": anns}
        gt.createIndex()
        if dets:
            dt = gt.loadRes(dets)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": images, "categories": categories, "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def random_scene(rng):
    """A scene of 1-6 canvases whose difficulty, crowding, box grid and score ties vary."""
    kind = rng.choice(["empty", "perfect", "jitter", "noisy", "integer", "crowded"])
    num_classes = int(rng.choice([1, 3, 10]))
    sigma = {"perfect": 0.0, "jitter": 0.05, "noisy": 0.3, "integer": 0.15, "crowded": 0.15}.get(kind, 0.2)
    p_miss, p_wrong, p_dup, fp_rate = rng.uniform(0, 0.4), rng.uniform(0, 0.3), rng.uniform(0, 0.4), rng.uniform(0, 2)
    if kind == "perfect":
        p_miss = p_wrong = fp_rate = 0.0
    tied = rng.random() < 0.3  # few distinct scores
    tb, tl, pb, pl, ps = [], [], [], [], []
    for _ in range(rng.integers(1, 7)):
        g = 0 if kind == "empty" or rng.random() < 0.2 else rng.integers(1, 6 if kind == "crowded" else 4)
        xy = rng.uniform(0, 100, (g, 2))
        wh = rng.uniform(1, 40, (g, 2)) * (rng.random((g, 1)) > 0.05)  # some zero-area true boxes
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, num_classes, g)
        preds, plabels = [], []
        for box, label in zip(boxes, labels):
            for _ in range(1 + (rng.random() < p_dup)):
                if rng.random() < p_miss:
                    continue
                w, h = box[2:] - box[:2]
                x0, y0 = box[:2] + rng.normal(0, sigma, 2) * [w, h]
                pw, ph = np.clip([w, h] * (1 + rng.normal(0, sigma, 2)), 0, None)
                preds.append([x0, y0, x0 + pw, y0 + ph])
                plabels.append(rng.integers(0, num_classes) if rng.random() < p_wrong else label)
        n_fp = rng.poisson(fp_rate)
        fxy = rng.uniform(0, 110, (n_fp, 2))
        preds += np.concatenate([fxy, fxy + rng.uniform(0, 30, (n_fp, 2))], 1).tolist()
        plabels += rng.integers(0, num_classes, n_fp).tolist()
        preds = np.array(preds, float).reshape(-1, 4)
        if kind == "integer":  # exact IoUs that land on thresholds
            boxes, preds = np.round(boxes), np.round(preds)
        if rng.random() < 0.02:  # a huge box, outside COCO's area range
            preds = np.concatenate([preds, [[0, 0, 2e5, 2e5]]])
            plabels.append(0)
        scores = rng.integers(0, 4, len(preds)) / 4 if tied else rng.random(len(preds))
        tb.append(boxes), tl.append(labels), pb.append(preds), pl.append(np.array(plabels, int)), ps.append(scores)
    return tb, tl, pb, pl, ps, num_classes


def test_map_equal_ious_go_to_the_later_true_box_as_coco():
    a, b = [0, 0, 10, 10], [2, 0, 12, 10]
    between = [1, 0, 11, 10]  # IoU 90 / 110 = 0.818 with both a and b: COCO takes the later one, b
    # then the exact copy of a (IoU 1 with a, 80 / 120 = 0.667 with b) takes a: both TPs while
    # 0.818 >= t (.50 ... .80, 7 thresholds, AP 1); at .85 ... .95 `between` is a FP and a is found
    # second: precision [0, 1/2], recall [0, 1/2] -> 51 recalls read 1/2 -> AP 25.5 / 101.
    # (Taking a first would leave b to the copy only while 0.667 >= t.)
    args = scene(([(a, 0), (b, 0)], [(between, 0, 0.9), (a, 0, 0.8)]))
    expected = (7 * 1 + 3 * 25.5 / 101) / 10
    assert M.mean_average_precision(*args)["map"] == pytest.approx(expected)
    assert coco_reference(*args)[0] == pytest.approx(expected)


def test_map_prefers_a_regular_true_box_to_an_ignored_one_as_coco():
    regular = [0, 0, 1e5, 1e5]  # area 1e10: inside COCO's "all" range
    ignored = [0, 0, 1e5, 1.2e5]  # area 1.2e10: outside, so neither to find nor a match that counts
    det = [0, 0, 1e5, 1.1e5]  # IoU 1 / 1.1 = 0.909 with `regular`, 1.1 / 1.2 = 0.917 with `ignored`
    # COCO matches the regular box while 0.909 >= t (9 thresholds: AP 1); at .95 nothing matches,
    # the det is outside the range so ignored, and the regular box is missed (AP 0) -> map 0.9
    args = scene(([(regular, 0), (ignored, 0)], [(det, 0, 0.9)]))
    assert M.mean_average_precision(*args)["map"] == pytest.approx(0.9)
    assert coco_reference(*args)[0] == pytest.approx(0.9)


def test_map_matches_pycocotools_on_random_scenes():
    rng = np.random.default_rng(2026)
    checked_kinds = {"some_gt": 0, "no_gt": 0, "no_pred": 0}
    for _ in range(250):
        *args, num_classes = random_scene(rng)
        ours = M.mean_average_precision(*args, num_classes=num_classes)
        ref_map, ref_50, ref_75, ref_per_class = coco_reference(*args, num_classes=num_classes)
        assert ours["map"] == pytest.approx(ref_map, abs=1e-6)
        assert ours["map50"] == pytest.approx(ref_50, abs=1e-6)
        assert ours["map75"] == pytest.approx(ref_75, abs=1e-6)
        assert ours["per_class"].keys() == ref_per_class.keys()
        for c, ap in ref_per_class.items():
            assert ours["per_class"][c] == pytest.approx(ap, abs=1e-6)
        checked_kinds["some_gt" if ref_per_class else "no_gt"] += 1
        checked_kinds["no_pred"] += sum(map(len, args[2])) == 0
    assert min(checked_kinds.values()) >= 5  # the scenes really were varied


def test_map_matches_pycocotools_on_crowded_canvases_with_many_detections():
    # > 100 detections per canvas and class exercise COCO's maxDets truncation
    rng = np.random.default_rng(7)
    tb = [np.concatenate([xy := rng.uniform(0, 100, (30, 2)), xy + rng.uniform(2, 20, (30, 2))], 1) for _ in range(3)]
    tl = [rng.integers(0, 2, 30) for _ in range(3)]
    pb = [np.concatenate([b + rng.normal(0, s, b.shape) for s in (0.5, 1, 2, 4, 4, 8, 8, 8)]) for b in tb]
    pb = [np.concatenate([p[:, :2], np.maximum(p[:, 2:], p[:, :2])], 1) for p in pb]
    pl = [np.tile(t, 8) for t in tl]
    ps = [rng.random(240) for _ in range(3)]
    ours = M.mean_average_precision(tb, tl, pb, pl, ps, num_classes=2)
    ref = coco_reference(tb, tl, pb, pl, ps, num_classes=2)
    assert [ours["map"], ours["map50"], ours["map75"]] == pytest.approx(ref[:3], abs=1e-6)


def test_pairwise_iou_equals_pycocotools_iou():
    from mnistloc.boxes import pairwise_iou
    rng = np.random.default_rng(0)
    for grid in (True, False):
        xy = rng.uniform(0, 50, (40, 2))
        b = np.concatenate([xy, xy + rng.uniform(0, 30, (40, 2))], 1)
        if grid:
            b = np.round(b)
        d, g = b[:25], b[25:]
        theirs = mask_utils.iou(to_xywh(d).tolist(), to_xywh(g).tolist(), [0] * len(g))  # [D, G]
        ours = pairwise_iou(d, g)
        if grid:  # integers: the same double operations, so equal to the bit
            np.testing.assert_array_equal(ours, theirs)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        assert (ours > 0).sum() > 10  # enough overlapping pairs to mean something
