"""Lesson 3: which digit, and where? (case 3): one_hot, iou_loss, nms."""
from lessons_src import common

LESSON = "03-multi-class"

CELLS = [
    ("md", '''
# Lesson 3: which digit, and where?

**What you will build.** A model that finds the one digit on a canvas, of any class, and says which digit it
is: a box and a class together. This is *multi-class localization*, the classic "classify and localize" task.

**Why it matters.** Knowing where is half the answer. The class head shares the backbone with the box head:
one network, two questions, two losses. You will see that the two help each other, and how to score them
jointly: a prediction counts only when the class is right *and* the box overlaps (IoU >= 0.5).

**Plan.**
1. Class labels as one-hot vectors (`one_hot`), with "no digit" as a row of zeros.
2. The class head: per-cell class probabilities (your `build_head` of lesson 1, with a softmax).
3. A box loss that scores what the metric scores: the IoU loss (`iou_loss`).
4. Train with it, evaluate (class accuracy, mean IoU, joint accuracy), look at the confusions.
5. One box per digit: greedy non-maximum suppression (`nms`), and the duplicates without it.
'''),
    common.setup(),
    ("code", '''
ds = canvas.make_dataset(3, 16, seed=3)
viz.sample_grid(ds, n=8)
'''),
    ("md", '''
## 1. One-hot labels

A model that outputs ten probabilities learns from targets of the same shape: class 3 becomes
`[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]`. Our data uses -1 for "no digit in this slot" (lesson 4 needs it), and that
must become a row of zeros: no class at all.

**Exercise: `one_hot`** (2 points). Works for labels of any shape: the result has shape
`labels.shape + (num_classes,)`, dtype float32. About 2 lines. Careful: `np.eye(n)[-1]` is the *last* class,
not "none".
'''),
    ("solution:one_hot", '''
def one_hot(labels, num_classes):
    """One-hot rows for integer labels; a label of -1 gives a row of zeros.

    Args:
        labels (int[...]): classes in [0, num_classes), or -1 for "none".
        num_classes (int): the number of classes.

    Returns:
        float32[..., num_classes].
    """
    ### BEGIN SOLUTION
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(num_classes)).astype(np.float32)
    ### END SOLUTION
'''),
    ("test:one_hot", '''
check_exercise("one_hot", one_hot)
### BEGIN HIDDEN TESTS
check_exercise("one_hot", one_hot, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
print("classes:", ds.classes[:4, 0])
print(one_hot(ds.classes[:4, 0], 10))
print("same as the data set's targets:", np.array_equal(one_hot(ds.classes[:, 0], 10), ds.targets()["class"]))
'''),
    ("md", '''
## 2. The class head

Like the presence and box heads, the class head answers in every cell: "if a digit is centred here, which one
is it?". The model reads the class at the cell where the presence heatmap peaks. A softmax over the last
axis turns ten scores into probabilities that sum to 1.

The class head is your `build_head` of lesson 1 with `outputs=10, activation="softmax"` (`mnistloc`'s copy:
`models.build_class_head`).
'''),
    ("md", '''
## 3. An IoU loss

The metric is IoU, but L1 on the four distances treats a one-pixel error on a thin "1" like one on a wide
"0", where it costs far less IoU. The FCOS *IoU loss* scores the overlap itself. The true and the predicted
box are both measured from the same point, the cell's centre, as distances `(l, t, r, b)`, so their
intersection is `min(l, l') + min(r, r')` wide and `min(t, t') + min(b, b')` high, each at least 0. The union
is `area + area' - intersection` (a predicted width `l' + r'` or height below 0 counts as 0), and the loss of
a cell is `1 - IoU` (guard the division with `ops.maximum(union, 1e-6)`). Like `masked_box_loss` in lesson 2,
`y_true[..., 0]` weighs each cell: sum the weighted losses and divide by the sum of the weights (at least 1).

**Exercise: `iou_loss`** (3 points). With `keras.ops` (`ops.minimum`, `ops.relu`, `ops.maximum`, `ops.sum`).
About 9 lines.
'''),
    ("solution:iou_loss", '''
def iou_loss(y_true, y_pred):
    """1 - IoU of the boxes that two (l, t, r, b) distances from the same point describe, over weighted cells.

    Args:
        y_true (float[..., 5]): each cell's weight (0 where no digit), then the true (l, t, r, b).
        y_pred (float[..., 4]): the predicted (l, t, r, b).

    Returns:
        A scalar tensor: sum(weight * (1 - IoU)) / max(sum(weight), 1).
    """
    ### BEGIN SOLUTION
    ops = keras.ops
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    inter_w = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    inter_h = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = inter_w * inter_h
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)
    ### END SOLUTION
'''),
    ("test:iou_loss", '''
check_exercise("iou_loss", iou_loss)
### BEGIN HIDDEN TESTS
check_exercise("iou_loss", iou_loss, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
The two losses side by side: one true box 1 cell from the centre on each side (2x2 cells), and predictions
that are each 0.5 cell too wide on the right. L1 grows with the error; the IoU loss grows with what the error
costs in overlap, more for a thin box than for a wide one.
'''),
    ("code", '''
box_iou_loss = yours_or_reference(iou_loss, losses.iou_loss, np.ones((1, 5), np.float32), np.ones((1, 4), np.float32))
for name, true in (("wide 2x2 cells", [1, 1, 1, 1]), ("thin 0.5x2 cells", [0.25, 1, 0.25, 1])):
    y_true = np.float32([[1, *true]])
    y_pred = np.float32([[true[0], true[1], true[2] + 0.5, true[3]]])
    print(f"{name}: L1 {float(losses.masked_box_loss(y_true, y_pred)):.3f}, "
          f"IoU loss {float(box_iou_loss(y_true, y_pred)):.3f}")
'''),
    ("md", '''
## 4. The model and its training

The presence, box and class heads (`mnistloc`'s copies of your `build_head`). The box output
trains with L1 plus *your* `iou_loss`; the class loss is a cross-entropy counted only at cells near a digit's
centre (`losses.masked_class_loss`): the same mask idea as lesson 2.
'''),
    common.assemble(3, {"presence": "models.build_presence_head", "box": "models.build_box_head",
                       "class": "models.build_class_head"}),
    ("code", '''
def box_loss(y_true, y_pred):
    """Per cell (B, 16, 16, 5) vs (B, 16, 16, 4): the masked L1 plus your IoU loss."""
    return losses.masked_box_loss(y_true, y_pred) + box_iou_loss(y_true, y_pred)


model.compile(optimizer=keras.optimizers.Adam(2e-3),
              loss={"presence": losses.focal_loss, "box": box_loss, "class": losses.masked_class_loss})
'''),
    common.train(3, 180),
    common.HISTORY,
    ("md", '''
## 5. Evaluation

*Class accuracy*; *mean IoU* of the box; *joint accuracy*: class right **and** IoU >= 0.5, what a user of
the model actually cares about.
'''),
    common.TAKE,
    common.evaluate(3, {"class_accuracy": 0.97, "mean_iou": 0.90, "joint_accuracy": 0.96}),
    ("md", '''
Which digits get confused? The confusion matrix, drawn by scikit-learn (`ConfusionMatrixDisplay`): rows are the
true class, columns the predicted one, each row normalised to 1, so the diagonal is each class's accuracy.
'''),
    ("code", '''
pred = decoder.decode(3, outputs)["classes"][:, 0]  # (n,) the class read at each canvas's peak
viz.confusion_matrix_plot(test.classes[:, 0], pred, normalize="true")
wrong = test.classes[:, 0] != pred
pairs, counts = np.unique(np.stack([test.classes[wrong, 0], pred[wrong]], axis=1), axis=0, return_counts=True)
top = np.argsort(-counts, kind="stable")[:5]
print("most confused (true -> predicted: count):", ", ".join(f"{t} -> {p}: {c}" for (t, p), c in zip(pairs[top], counts[top])))
'''),
    *common.pictures(3),
    ("md", '''
## 6. One box per digit: non-maximum suppression

Every cell near the digit's centre predicts a box for it. Take the most confident cells as detections and the
one digit comes out many times. Greedy *non-maximum suppression* keeps one: take the boxes by descending score;
keep a box unless its IoU with a box already kept is above `iou_threshold`; a dropped box drops nothing.
(The decoding above avoids most duplicates earlier, by keeping only the heatmap's peaks; NMS catches what is
left, e.g. one digit reported under two labels in lesson 4.)

**Exercise: `nms`** (3 points). Return the indices of the kept boxes, by descending score (equal scores in the
given order: `np.argsort(-scores, kind="stable")`). About 8 lines. Compute all pairwise IoUs first: either with
broadcasting, as your `iou` of lesson 1 did pair by pair (`b[:, None, :2]` against `b[None, :, :2]` gives every
pair, `(M, M, 2)`), or with `mnistloc`'s, imported inside your function under its own name:
`from mnistloc.boxes import pairwise_iou`, then `pairwise_iou(boxes, boxes)` `(M, M)`. (Inside `nms`, the name
`boxes` is the parameter, not the module `mnistloc.boxes` of the setup cell.)
'''),
    ("solution:nms", '''
def nms(boxes, scores, iou_threshold=0.5):
    """Greedy non-maximum suppression.

    Args:
        boxes (float[M, 4]): xyxy pixels.
        scores (float[M]): one per box.
        iou_threshold (float): IoU above it means "the same object".

    Returns:
        int64[K]: indices into boxes of the kept boxes, by descending score.
    """
    ### BEGIN SOLUTION
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64).reshape(-1)
    lo = np.maximum(b[:, None, :2], b[None, :, :2])  # [M, M, 2]
    hi = np.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=-1)  # [M, M]
    area = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=-1)  # [M]
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    dropped, keep = np.zeros(len(b), bool), []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)
    ### END SOLUTION
'''),
    ("test:nms", '''
check_exercise("nms", nms)
### BEGIN HIDDEN TESTS
check_exercise("nms", nms, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
The 12 most confident cells of one test canvas as detections, before and after *your* NMS:
'''),
    ("code", '''
nms_fn = yours_or_reference(nms, decoder.nms, np.zeros((1, 4)), np.ones(1))
i = int(worst[0])  # the worst canvas above: where duplicates would hurt most
heat_i = outputs["presence"][i, ..., 0]  # (16, 16) centre probabilities
cell_boxes = decoder.boxes_from_cells(outputs["box"][i])  # (16, 16, 4): the box each cell predicts, xyxy pixels
top = np.argsort(-heat_i.ravel(), kind="stable")[:12]  # the 12 most confident cells, no peak picking
candidates, confidence = cell_boxes.reshape(-1, 4)[top], heat_i.ravel()[top]
kept = nms_fn(candidates, confidence, 0.5)
viz.nms_plot(test.images[i], candidates, confidence, kept);
'''),
    *common.question("q_confusions"),
    *common.question("q_nms_removes_truth"),
    ("md", '''
## What to try next

* Which pairs of digits are confused most, and do their boxes look alike too?
* Give the class head a wider hidden layer (`hidden=128`) or a 5x5 kernel: does class accuracy rise, and what
  does it cost in time?
* Train the class head alone on top of a frozen backbone from lesson 1 (`backbone.trainable = False`): how
  much does sharing the backbone help?
* Next lesson: several digits, several boxes, and average precision.
'''),
]
