"""Lesson 4: several digits (case 4): order_left_to_right, build_count_head, average_precision."""
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
2. A count head: 0, 1 or 2 digits for the whole canvas (`build_count_head`).
3. Train, and score with average precision, which you write yourself (`average_precision`).
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

**Exercise: `build_count_head`** (3 points). A `keras.Model` from features `(B, H, W, channels)` to
`(B, max_count + 1)`: a 1x1 `Conv2D` with `hidden` filters and ReLU, `GlobalAveragePooling2D`, then a `Dense`
layer with `max_count + 1` units and a softmax. Name the model `name`. About 5 lines.
'''),
    ("solution:build_count_head", '''
def build_count_head(channels=64, hidden=32, max_count=2, name="count"):
    """The number of digits on the canvas, 0 to ``max_count``.

    Args:
        channels (int): C, the feature channels.
        hidden (int): filters of the 1x1 layer.
        max_count (int): the largest count.
        name (str): the model's name.

    Returns:
        keras.Model: features (B, H, W, C) -> (B, max_count + 1), softmax.
    """
    ### BEGIN SOLUTION
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 1, activation="relu")(features)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(max_count + 1, activation="softmax")(x)
    return keras.Model(features, out, name=name)
    ### END SOLUTION
'''),
    ("test:build_count_head", '''
check_exercise("build_count_head", build_count_head)
### BEGIN HIDDEN TESTS
check_exercise("build_count_head", build_count_head, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
## 3. The model and its training

All four heads on one backbone: presence, box and class (the reference versions of your earlier heads) and
your count head. Each found digit is a peak of the presence heatmap; its box and class are read there, and its
score is presence x class probability. The count head says how many peaks to keep.
'''),
    common.assemble(4, {"presence": "models.build_presence_head", "box": "models.build_box_head",
                       "class": "models.build_class_head", "count": "build_count_head"}),
    common.train(4, 360),
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
## 6. Duplicates, and non-maximum suppression

Every cell near a digit's centre predicts a box for that digit. Take the most confident cells as detections
and one digit comes out several times: a detector must keep one box per object. Greedy *non-maximum
suppression* keeps the best-scored box, drops every box overlapping it by IoU > 0.5, and repeats
(`peaks.nms`). The decoding above avoids most duplicates earlier, by keeping only the cells that beat their
eight neighbours (a 3x3 max-pool: CenterNet's "NMS"), then runs NMS per class for what is left.
'''),
    ("code", '''
i = int(np.flatnonzero(test.count == 2)[0])  # a test canvas with two digits
heat_i = outputs["presence"][i, ..., 0]  # (16, 16) centre probabilities
cell_boxes = decoding.boxes_from_cells(outputs["box"][i])  # (16, 16, 4): the box each cell predicts, xyxy pixels
top = np.argsort(-heat_i.ravel(), kind="stable")[:12]  # the 12 most confident cells, no peak picking
candidates, confidence = cell_boxes.reshape(-1, 4)[top], heat_i.ravel()[top]
kept = peaks.nms(candidates, confidence, 0.5)
viz.nms_plot(test.images[i], candidates, confidence, kept);
'''),
    ("md", '''
## 7. AP with your function, and its precision-recall curve

Now AP50 with *your* `average_precision`: match each class's detections to the true boxes greedily, best
score first, each true box at most once (COCO's rule, `metrics.match_detections`), and average over the
classes. It should agree with `mnistloc.metrics` (checked against pycocotools) above.
'''),
    ("code", '''
det = decoding.detections(outputs)  # per canvas: boxes (P, 4), labels (P,), scores (P,), best first
truth = ([test.boxes[i][test.mask[i]] for i in range(len(test))],
         [test.classes[i][test.mask[i]] for i in range(len(test))])


def class_detections(c, threshold=0.5):
    """Class c over all test canvases: scores (D,), matched (D,) bool, and the number of its true boxes."""
    scores, matched, num_true = [np.zeros(0)], [np.zeros(0, bool)], 0
    for tb, tl, pb, pl, ps in zip(*truth, *det):
        t, p, s = tb[tl == c], pb[pl == c], ps[pl == c]
        num_true += len(t)
        scores.append(s)
        matched.append(metrics.match_detections(p, s, t, threshold) >= 0)
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
    *common.question("q_nms_removes_truth", '''
**Question** (2 points, graded by hand). When does NMS remove a *true* digit? Describe a canvas where it
happens with an IoU threshold of 0.5, and say what a lower or a higher threshold would change.
''', '''
When two true digits overlap (or sit so close that their boxes do) with IoU above the threshold, the box of
the weaker-scored digit is taken for a duplicate of the stronger one and dropped: a missed digit. Here digits
never overlap, so it happens only when a badly placed box of one digit covers the other. A lower threshold
drops more such near neighbours (more misses), a higher one keeps more duplicates (more false positives).
'''),
    *common.question("q_score_order", '''
**Question** (1 point, graded by hand). Matching takes detections best score first. Why does the order
matter for AP? Give a case where matching in the given order instead would change the AP.
''', '''
A true box can be matched only once. If a low-scored detection took it first, the high-scored detection on
the same digit would count as a false positive at the top of the ranking, lowering precision at every recall;
e.g. two boxes on one digit, scores 0.9 and 0.3, listed 0.3 first: in the given order AP drops from 1 to 0.5.
'''),
    ("md", '''
## What to try next

* Lower `min_score` or raise `k` in `decoding.detections`: AP never falls when you add low-scored detections.
  Why? (Look at the envelope.)
* Where do the worst canvases fail: a missed digit, an extra one, a wrong class, or a loose box?
* Try three digits a canvas: the canvas generator, the count head (`max_count=3`) and the decoding all take the
  number as a parameter.
* You have now built every part of a one-stage detector: synthetic data, boxes, IoU, dense heads, masked
  losses, decoding and COCO AP.
'''),
]
