"""Lesson 4: several digits (case 4): order_left_to_right, average_precision, match_detections."""
from lessons_src import common

LESSON = "04-multiple-digits"

CELLS = [
    ("md", '''
# Lesson 4: several digits, several boxes

**What you will build.** A detector: for a canvas with no digit, one or two, of any class, it says how many
there are and gives each one's box and class, with a confidence score. Then you score it the way detection
benchmarks (COCO) do: *average precision*.

**Why it matters.** With several objects, "the" box no longer exists: the model must find each object once,
not miss any, and not invent any. Accuracy cannot express that; precision and recall can, and average
precision sums them up over every confidence threshold.

**Plan.**
1. Labels in a fixed order: slots sorted left to right (`order_left_to_right`).
2. A count head: 0, 1 or 2 digits for the whole canvas (given).
3. Train, and score with average precision, which you write yourself (`average_precision`): match the
   detections to the true boxes (`match_detections`), and draw the precision-recall curve of your AP.
'''),
    common.setup(),
    ("code", '''
ds = canvas.make_dataset(4, 16, seed=4)
viz.sample_grid(ds, n=8)
'''),
    ("md", '''
## 1. Labels in order: left to right

Each canvas has two slots: `boxes (N, 2, 4)`, `classes (N, 2)` (-1 when unused), `mask (N, 2)`. A model with
slots, and anyone reading the labels, needs a rule for which digit goes in which slot: the leftmost digit
first (smallest `x0`; on a tie, the smaller `y0`), unused slots last.

**Exercise: `order_left_to_right`** (2 points). Return the three arrays reordered; boxes, classes and mask
move together. About 6 lines: sort keys with `np.where(mask, x0, np.inf)`, `np.lexsort` or a stable
`np.argsort`, and `np.take_along_axis`.
'''),
    ("solution:order_left_to_right", '''
def order_left_to_right(boxes, classes, mask):
    """Sorts each canvas's used slots by x0 (ties by y0), unused slots last.

    Args:
        boxes (float[N, K, 4]): xyxy boxes.
        classes (int[N, K]): classes.
        mask (bool[N, K]): used slots.

    Returns:
        (boxes, classes, mask) in the new order, same shapes and dtypes.
    """
    ### BEGIN SOLUTION
    x0 = np.where(mask, boxes[..., 0], np.inf)
    y0 = np.where(mask, boxes[..., 1], np.inf)
    order = np.lexsort((y0, x0), axis=-1)  # [N, K]: by x0, then y0
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
    return take(boxes), take(classes), take(mask)
    ### END SOLUTION
'''),
    ("test:order_left_to_right", '''
check_exercise("order_left_to_right", order_left_to_right)
### BEGIN HIDDEN TESTS
check_exercise("order_left_to_right", order_left_to_right, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
shuffled = (ds.boxes[:3, ::-1], ds.classes[:3, ::-1], ds.mask[:3, ::-1])  # slots swapped
b, c, m = order_left_to_right(*shuffled)
print("classes, slots swapped:", shuffled[1].tolist(), "-> ordered:", c.tolist(), " truth:", ds.classes[:3].tolist())
'''),
    ("md", '''
## 2. The count head

How many digits? One answer per canvas, so the count head must gather the whole grid: a 1x1 convolution marks
digit-like cells, a global average over the grid measures how much "digit" there is, whatever the grid's size,
and a softmax over 0, 1, ..., `max_count` reads the count.

The count head (`models.build_count_head`) is given: a 1x1 `Conv2D` with `hidden` filters and ReLU,
`GlobalAveragePooling2D`, then a `Dense` layer with `max_count + 1` units and a softmax.
'''),
    ("md", '''
## 3. The model and its training

All four heads on one backbone: presence, box and class (your `build_head` of lesson 1, in `mnistloc`'s copy)
and the count head. Each found digit is a peak of the presence heatmap; its box and class are read there, and its
score is presence x class probability. The count head says how many peaks to keep.
'''),
    common.assemble(4, {"presence": "models.build_presence_head", "box": "models.build_box_head",
                       "class": "models.build_class_head", "count": "models.build_count_head"}),
    common.train(4, 180),
    common.HISTORY,
    ("md", '''
## 4. Average precision

Rank all detections of one class, over all canvases, by score. Walking down the ranking, each detection either
matches a true box not matched before (IoU >= a threshold: a true positive) or not. After k detections,
*precision* = true positives / k and *recall* = true positives / the number of true boxes.

COCO's AP: for each recall `r` in `0, 0.01, ..., 1` take the best precision reached at a recall >= `r` (the
*envelope*; 0 if that recall is never reached), and average the 101 numbers. mAP averages over classes and
over IoU thresholds .50, .55, ..., .95; AP50 uses only 0.5.

**Exercise: `average_precision`** (3 points). Given the detections' scores, whether each matched, and the
number of true boxes. Equal scores keep their given order (`np.argsort(-scores, kind="stable")`). No detection
gives 0. About 8 lines; `np.cumsum`, `np.maximum.accumulate` on the reversed precision, `np.searchsorted`.
'''),
    ("solution:average_precision", '''
def average_precision(scores, matched, num_true):
    """COCO's 101-point average precision for one class at one IoU threshold.

    Args:
        scores (float[D]): the confidence of each detection.
        matched (bool[D]): whether each detection matched a true box (a true positive).
        num_true (int): the number of true boxes of the class, >= 1.

    Returns:
        float: the mean over recalls 0, 0.01, ..., 1 of the best precision reached at that recall or
        beyond (0 for recalls never reached).
    """
    ### BEGIN SOLUTION
    scores, matched = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(scores) == 0:
        return 0.0
    tp = np.cumsum(matched[np.argsort(-scores, kind="stable")])  # [D]
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this rank or later
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")  # first rank reaching each recall
    return float(np.mean(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)))
    ### END SOLUTION
'''),
    ("test:average_precision", '''
check_exercise("average_precision", average_precision)
### BEGIN HIDDEN TESTS
check_exercise("average_precision", average_precision, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
## 5. Evaluation

*Count accuracy*; COCO *mAP* (.50:.95), *AP50*, *AP75*; and the class accuracy and mean IoU of the true digits
that were found.
'''),
    common.TAKE,
    common.evaluate(4, {"count_accuracy": 0.99, "map50": 0.93, "map": 0.70}),
    ("md", '''
## 6. Which detection found which digit?

AP needs, for each detection, whether it is a true positive. COCO decides greedily, per canvas and class:
take the detections by descending score (equal scores in the given order); each takes the *free* true box it
overlaps most, if that IoU is at least the threshold; a true box is taken at most once, so a second detection
of the same digit is a false positive. (Equal IoUs: the later true box, as COCO.)

**Exercise: `match_detections`** (3 points). Return, for each detection in the given order, the index of the
true box it matched, or -1. About 10 lines; compute the pairwise IoUs first (`(D, T)`).
'''),
    ("solution:match_detections", '''
def match_detections(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Greedy matching of detections to true boxes, best score first (one canvas, one class).

    Args:
        pred_boxes (float[D, 4]): detections, xyxy pixels.
        scores (float[D]): their confidences.
        true_boxes (float[T, 4]): true boxes, xyxy pixels.
        iou_threshold (float): the lowest IoU of a match.

    Returns:
        int64[D]: for each detection, in the given order, the index of the true box it matched, or -1.
    """
    ### BEGIN SOLUTION
    p = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    t = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    lo = np.maximum(p[:, None, :2], t[None, :, :2])  # [D, T, 2]
    hi = np.minimum(p[:, None, 2:], t[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=-1)  # [D, T]
    area = lambda b: np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=-1)
    union = area(p)[:, None] + area(t)[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    matches, taken = np.full(len(p), -1, np.int64), np.zeros(len(t), bool)
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        free = np.where(taken, -1.0, ious[d])  # [T]
        if len(t) and free.max() >= iou_threshold:
            best = len(t) - 1 - int(np.argmax(free[::-1]))  # equal IoUs: the later true box
            matches[d], taken[best] = best, True
    return matches
    ### END SOLUTION
'''),
    ("test:match_detections", '''
check_exercise("match_detections", match_detections)
### BEGIN HIDDEN TESTS
check_exercise("match_detections", match_detections, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
match_fn = yours_or_reference(match_detections, metrics.match_detections, np.zeros((1, 4)), np.ones(1),
                              np.zeros((1, 4)))
two = [10, 10, 30, 40]
print("two detections of one digit, scores 0.3 and 0.9:", match_fn(np.float32([two, two]), np.float32([0.3, 0.9]),
                                                                   np.float32([two])))
'''),
    ("md", '''
## 7. AP with your function, and its precision-recall curve

Now AP50 with *your* `average_precision`: match each class's detections to the true boxes with *your*
`match_detections`, and average over the classes. It should agree with `mnistloc.metrics` (checked against pycocotools) above.
'''),
    ("code", '''
det = decoder.detections(decoder.decode(4, outputs)["found"])  # per canvas: boxes (P, 4), labels (P,), scores (P,), best first
truth = ([test.boxes[i][test.mask[i]] for i in range(len(test))],
         [test.classes[i][test.mask[i]] for i in range(len(test))])


def class_detections(c, threshold=0.5):
    """Class c over all test canvases: scores (D,), matched (D,) bool, and the number of its true boxes."""
    scores, matched, num_true = [np.zeros(0)], [np.zeros(0, bool)], 0
    for tb, tl, pb, pl, ps in zip(*truth, *det):
        t, p, s = tb[tl == c], pb[pl == c], ps[pl == c]
        num_true += len(t)
        scores.append(s)
        matched.append(match_fn(p, s, t, threshold) >= 0)
    return np.concatenate(scores), np.concatenate(matched), num_true


your_ap = yours_or_reference(average_precision, metrics.average_precision, np.ones(1), np.ones(1, bool), 1)
present = [c for c in range(10) if any((labels == c).any() for labels in truth[1])]
aps = {c: your_ap(*class_detections(c)) for c in present}
print(f"AP50 with your average_precision: {np.mean(list(aps.values())):.4f}   mnistloc.metrics: {scores['map50']:.4f}")
'''),
    ("md", '''
The precision-recall curve of the class with the lowest AP: precision after each detection (grey) and the
envelope your AP averages (red). Cross-check with scikit-learn: `precision_recall_curve` ranks the same
detections; its recall counts only the matched ones, so it is rescaled to all true boxes, and the envelope at
recalls 0, 0.01, ..., 1 is averaged the same way.
'''),
    ("code", '''
from sklearn.metrics import precision_recall_curve

worst_class = min(aps, key=aps.get)
s, m, n_true = class_detections(worst_class)
viz.pr_curve(s, m, n_true, ap=aps[worst_class])
if m.any():
    precision, recall, _ = precision_recall_curve(m, s)
    recall = recall * m.sum() / n_true  # of all true boxes, not only those matched
    sk_ap = np.mean([precision[recall >= r].max(initial=0) for r in np.linspace(0, 1, 101)])
    print(f"class {worst_class}: your AP50 {aps[worst_class]:.4f}, from scikit-learn's curve {sk_ap:.4f}")
'''),
    *common.pictures(4),
    *common.question("q_score_order"),
    ("md", '''
## What to try next

* Raise `k` in `decoder.detect` or lower `min_score` in `decoder.detections`: AP never falls when you add low-scored detections.
  Why? (Look at the envelope.)
* Where do the worst canvases fail: a missed digit, an extra one, a wrong class, or a loose box?
* Try three digits a canvas: the canvas generator, the count head (`max_count=3`) and the decoding all take the
  number as a parameter.
* You have now built every part of a one-stage detector: synthetic data, boxes, IoU, dense heads, masked
  losses, decoding and COCO AP.
'''),
]
