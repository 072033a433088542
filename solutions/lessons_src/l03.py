"""Lesson 3: which digit, and where? (case 3): one_hot, build_class_head."""
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
2. The class head: per-cell class probabilities (`build_class_head`).
3. Train, evaluate (class accuracy, mean IoU, joint accuracy), look at the confusions.
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

**Exercise: `build_class_head`** (3 points). A `keras.Model` from features `(B, H, W, channels)` to
`(B, H, W, num_classes)`: a 3x3 `Conv2D` with `hidden` filters, `padding="same"`, ReLU, then a 1x1 `Conv2D`
with `num_classes` filters and a softmax. Name the model `name`. About 4 lines.
'''),
    ("solution:build_class_head", '''
def build_class_head(channels=64, hidden=64, num_classes=10, name="class"):
    """Per cell: the class of the digit centred there.

    Args:
        channels (int): C, the feature channels.
        hidden (int): filters of the hidden 3x3 layer.
        num_classes (int): the number of classes.
        name (str): the model's name.

    Returns:
        keras.Model: features (B, H, W, C) -> (B, H, W, num_classes), softmax over the last axis.
    """
    ### BEGIN SOLUTION
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(num_classes, 1, activation="softmax")(x)
    return keras.Model(features, out, name=name)
    ### END SOLUTION
'''),
    ("test:build_class_head", '''
check_exercise("build_class_head", build_class_head)
### BEGIN HIDDEN TESTS
check_exercise("build_class_head", build_class_head, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
## 3. The model and its training

The presence and box heads of the earlier lessons (the reference versions) and your class head. The class loss
is a cross-entropy counted only at cells near a digit's centre (`models.masked_class_loss`): the same mask idea
as lesson 2.
'''),
    common.assemble(3, {"presence": "models.build_presence_head", "box": "models.build_box_head",
                       "class": "build_class_head"}),
    common.train(3, 360),
    common.HISTORY,
    ("md", '''
## 4. Evaluation

*Class accuracy*; *mean IoU* of the box; *joint accuracy*: class right **and** IoU >= 0.5, what a user of
the model actually cares about.
'''),
    common.TAKE,
    common.evaluate(3, {"class_accuracy": 0.96, "mean_iou": 0.88, "joint_accuracy": 0.95}),
    ("md", '''
Which digits get confused? The confusion matrix, drawn by scikit-learn (`ConfusionMatrixDisplay`): rows are the
true class, columns the predicted one, each row normalised to 1, so the diagonal is each class's accuracy.
'''),
    ("code", '''
pred = decoding.decode(3, outputs)
viz.confusion_matrix_plot(test.classes[:, 0], pred["class"], normalize="true")
wrong = test.classes[:, 0] != pred["class"]
pairs, counts = np.unique(np.stack([test.classes[wrong, 0], pred["class"][wrong]], axis=1), axis=0, return_counts=True)
top = np.argsort(-counts, kind="stable")[:5]
print("most confused (true -> predicted: count):", ", ".join(f"{t} -> {p}: {c}" for (t, p), c in zip(pairs[top], counts[top])))
'''),
    *common.pictures(3),
    *common.question("q_confusions", '''
**Question** (1 point, graded by hand). Name the pair of classes your model confuses most (from the matrix
above) and say, looking at the worst canvases, why those two digits are hard to tell apart.
''', '''
(Depends on the run.) Typically 4 and 9, or 3 and 5, or 7 and 1: their strokes differ in a small region (an
open or closed top, a short bar), which a slanted or thin handwritten digit blurs; the box is right, the class
is the ambiguous part.
'''),
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
