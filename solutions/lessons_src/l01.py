"""Lesson 1: one digit, one box (case 1): classic_model, place_digit, tight_box, iou, boxes_from_cells, build_head."""
from lessons_src import common

LESSON = "01-single-digit"

CELLS = [
    ("md", '''
# Lesson 1: find one digit

**What you will build.** A Keras model that looks at a 128x128 canvas holding one handwritten digit "1"
somewhere and draws a tight box around it. This is *single-object localization*: there is always exactly
one object, and the model answers *where*.

**Why it matters.** Every detector, from this small one to the ones in self-driving cars, starts with the same
pieces: synthetic or labelled images, boxes in one agreed format, a measure of how good a box is (IoU), and a
network head that regresses boxes. You will write each of these pieces yourself.

**Plan.**
0. Start where most courses start: the *classic* model (convolutions, `Flatten`, `Dense` heads, a multi-output
   `compile`: `classic_model`). Train it briefly, measure it, and see it stall.
1. Make a canvas: paste a digit at a position (`place_digit`).
2. Label it: the tight box around the digit's ink (`tight_box`).
3. Score a box: intersection over union (`iou`).
4. Look at what a *dense* model learns instead: a heatmap of digit centres and, per cell, the distances to the
   box's sides, and turn those distances back into boxes (`boxes_from_cells`).
5. Build the dense model's heads with one function (`build_head`), train the model for a few minutes, evaluate
   it on digits it never saw with *your* `iou`, and look at its best and worst predictions.

**How this notebook works.** Each exercise is a function with a docstring giving shapes. Replace
`raise NotImplementedError()` with your code, run the cell, then run the check cell right after it: it prints
your points, or a hint that names the likely mistake. Keep everything an answer needs inside its cell (`np`
and `keras` are available there): graders and `mnistloc check` run each answer cell on its own.

Boxes are `xyxy` in pixels: `[x0, y0, x1, y1]` with an exclusive max, so `width = x1 - x0`; `x` is the
column and `y` the row.
'''),
    common.setup(),
    ("md", '''
## 0. The classic model, and where it stalls

The model most courses build first reads the whole canvas at once: three convolutions and poolings,
`Flatten`, one hidden `Dense` layer, then one `Dense` head per label. It has *named outputs*, so `compile`
takes one loss per output (a dict) and their weights. You build it for this lesson's case:

* `image` `(B, size, size)` -> `Reshape((size, size, 1))` -> `Rescaling(1 / 255)` -> three blocks of
  `Conv2D(f, 3, activation="relu")` (valid padding) and `AveragePooling2D(2)`, with `f` from `filters` ->
  `Flatten` -> `Dense(units, activation="relu")`;
* two heads, each a `Dense` layer named after its output: `presence` `Dense(1, sigmoid)` and `box`
  `Dense(4, sigmoid)`, the box in `rel_xyxy` (divided by the canvas size, so in [0, 1]).

**Exercise: `classic_model`** (3 points). Return a `keras.Model` whose outputs are a dict keyed by those
names: `{"presence": ..., "box": ...}`. About 10 lines.
'''),
    ("solution:classic_model", '''
def classic_model(*, size=128, filters=(16, 32, 64), units=128):
    """The classic model of case 1: convolutions, Flatten, a hidden Dense layer, a Dense head per label.

    Args:
        size (int): the canvas side in pixels.
        filters (tuple of 3 ints): the three convolutions' filters.
        units (int): the hidden Dense layer's units.

    Returns:
        keras.Model: image (B, size, size) -> a dict of named outputs: presence (B, 1) and box (B, 4) in
        rel_xyxy, both sigmoid.
    """
    ### BEGIN SOLUTION
    layers = keras.layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for f in filters:
        x = layers.AveragePooling2D(2)(layers.Conv2D(f, 3, activation="relu")(x))
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(images, {"presence": presence, "box": box})
    ### END SOLUTION
'''),
    ("test:classic_model", '''
check_exercise("classic_model", classic_model)
### BEGIN HIDDEN TESTS
check_exercise("classic_model", classic_model, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
Now compile it for case 1, one loss per named output: binary cross-entropy for the presence probability and
the mean absolute error of the four box numbers, weighted equally; then train it for 40 s (of all cores' CPU
time: 40 s on an idle machine) on fresh canvases and measure its boxes on 1,000 test canvases.
'''),
    ("code", '''
build_classic = yours_or_reference(classic_model, lambda **sizes: models.classic_model(1, **sizes))
keras.utils.set_random_seed(0)
classic = build_classic()
classic.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss={"presence": "binary_crossentropy", "box": "mean_absolute_error"},
                loss_weights={"presence": 1.0, "box": 1.0})
print(f"classic model: {classic.count_params():,} parameters; outputs: {', '.join(classic.output_names)}")
budget = dict(epochs=1, canvases_per_epoch=128, validation=0) if GRADING else dict(seconds=40, clock="cpu")
classic, classic_history = training.train(1, model=classic, encode=models.classic_targets, learning_rate=1e-3,
                                          progress=not GRADING, **budget)
test_classic = evaluation.test_dataset(1, 200 if GRADING else 1000)
classic_box = classic.predict(test_classic.images.astype(np.float32), verbose=0)["box"] * 128  # rel -> pixels
classic_iou = boxes.iou(test_classic.boxes[:, 0], classic_box)
print(f"after {classic_history.seconds:.0f} s: mean IoU {classic_iou.mean():.3f}, "
      f"IoU >= 0.5 on {(classic_iou >= 0.5).mean():.1%} of the test canvases")
viz.history_plot(classic_history)
'''),
    ("md", '''
The box loss falls fast at first, then flattens out far above zero: the boxes land near the digit but rarely
on it. Keep that number in mind; the model you build in this lesson will be compared with it.

## 1. A canvas

A canvas is a black `uint8` image, 128x128. A digit is a 28x28 `uint8` image from MNIST. Placing a digit with
its top-left pixel at column `x`, row `y` means writing its 28x28 pixels into the canvas there. Numpy indexes
images as `image[row, column]`, that is `image[y, x]`.

**Exercise: `place_digit`** (2 points). Return a *new* canvas; the one given must stay unchanged (the data
generator reuses it). About 3 lines.
'''),
    ("solution:place_digit", '''
def place_digit(canvas, digit, x, y):
    """Returns a copy of ``canvas`` with ``digit`` written with its top-left pixel at column x, row y.

    Args:
        canvas (uint8[S, S]): the canvas.
        digit (uint8[28, 28]): the digit.
        x (int): column of the digit's left edge, 0 <= x <= S - 28.
        y (int): row of the digit's top edge, 0 <= y <= S - 28.

    Returns:
        uint8[S, S]: a new canvas: the digit's pixels replace the canvas's pixels there.
    """
    ### BEGIN SOLUTION
    out = canvas.copy()
    out[y:y + digit.shape[0], x:x + digit.shape[1]] = digit
    return out
    ### END SOLUTION
'''),
    ("test:place_digit", '''
check_exercise("place_digit", place_digit)
### BEGIN HIDDEN TESTS
check_exercise("place_digit", place_digit, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
Here is your function at work: one training digit placed at column 70, row 20.
'''),
    ("code", '''
digits, labels = data.load_digits("train")
example = place_digit(np.zeros((128, 128), np.uint8), digits[labels == 1][0], 70, 20)
fig, ax = plt.subplots(figsize=(3, 3))
viz.draw_canvas(ax, example, np.zeros((0, 4)))
ax.set_title("a digit at column 70, row 20", fontsize=9);
'''),
    ("md", '''
## 2. The label: a tight box

The box we want is not the 28x28 frame of the digit but the *tight* box: the extent of its ink, the pixels
brighter than 0. A thin "1" has a narrow box; a frame box would reward a model for being sloppy.

**Exercise: `tight_box`** (2 points). Find the first and last columns and rows that contain ink. The max is
exclusive: `x1 = last ink column + 1`. An image with no ink gives `[0, 0, 0, 0]`. About 6 lines; `np.any`
along an axis and `np.flatnonzero` help.
'''),
    ("solution:tight_box", '''
def tight_box(image):
    """The xyxy box around the pixels of ``image`` that are > 0.

    Args:
        image (uint8[H, W]): one image.

    Returns:
        float32[4]: ``[x0, y0, x1, y1]``: x0 the first ink column, y0 the first ink row, x1 the last ink
        column + 1, y1 the last ink row + 1; ``[0, 0, 0, 0]`` for an image with no ink.
    """
    ### BEGIN SOLUTION
    cols = np.flatnonzero((image > 0).any(axis=0))
    rows = np.flatnonzero((image > 0).any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
    ### END SOLUTION
'''),
    ("test:tight_box", '''
check_exercise("tight_box", tight_box)
### BEGIN HIDDEN TESTS
check_exercise("tight_box", tight_box, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
box = tight_box(example)
fig, ax = plt.subplots(figsize=(3, 3))
viz.draw_canvas(ax, example, box)
ax.set_title(f"tight box {box}: {box[2] - box[0]:.0f} x {box[3] - box[1]:.0f} px", fontsize=9);
'''),
    ("md", '''
## 3. How good is a box? Intersection over union

A predicted box is good when it covers the true box and little else. IoU measures both at once: the area
where the two boxes overlap, divided by the area they cover together. 1 is perfect; 0 means no overlap.
Detection benchmarks call a box *found* when IoU >= 0.5, and *precise* when IoU >= 0.75.

**Exercise: `iou`** (3 points). For pairs of boxes `a[i]`, `b[i]`. The overlap's width is
`min(x1) - max(x0)`, clamped at 0 when the boxes do not overlap (and likewise the height). Boxes that only
touch, or two empty boxes, give 0, never NaN. About 7 lines, no loop.
'''),
    ("solution:iou", '''
def iou(a, b):
    """Intersection over union of boxes, pair by pair.

    Args:
        a (float[N, 4]): xyxy boxes.
        b (float[N, 4]): xyxy boxes.

    Returns:
        float[N]: IoU of a[i] and b[i], in [0, 1]; 0 where both boxes are empty.
    """
    ### BEGIN SOLUTION
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda box: np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    ### END SOLUTION
'''),
    ("test:iou", '''
check_exercise("iou", iou)
### BEGIN HIDDEN TESTS
check_exercise("iou", iou, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
How fast does IoU fall when a box slides? A box the size of a digit "1" (8x20 pixels) moved right by a few
pixels loses half its IoU after only 3 pixels: thin boxes must be placed precisely.
'''),
    ("code", '''
true = np.array([[60, 40, 68, 60]], np.float32)  # 8 wide, 20 tall
for dx in (0, 1, 2, 3, 4, 6, 8):
    print(f"shifted by {dx} px: IoU {iou(true, true + [dx, 0, dx, 0])[0]:.2f}")
'''),
    ("md", '''
## 4. The data set

`mnistloc.canvas.make_dataset` makes thousands of canvases per second with the same three steps you just
wrote, vectorised. Training canvases use the training digits; the test canvases use digit *instances* the
model never sees, so the score measures generalisation, not memory.
'''),
    ("code", '''
ds = canvas.make_dataset(1, 16, seed=1)
viz.sample_grid(ds, n=8)
'''),
    ("md", """
## 5. What the dense model learns: per-cell box distances

The dense model does not regress four numbers for the whole canvas. Its backbone cuts the canvas into a grid
of cells, 8x8 pixels each (16x16 cells on a 128-pixel canvas). A digit's *centre cell* holds its box's centre
`((x0 + x1) / 2, (y0 + y1) / 2)`: row `floor(cy / stride)`, column `floor(cx / stride)`. The cells within
`radius` rows and columns of it (the 3x3 block for `radius=1`) each learn the distances from their own centre,
`((j + 0.5) * stride, (i + 0.5) * stride)` for cell (row i, column j), to the box's four sides, in cells:
`(l, t, r, b) = (cx - x0, cy - y0, x1 - cx, y1 - cy) / stride`, positive when the cell's centre is inside the
box. A second map, the *heatmap* (lesson 2), says which cell holds a centre.

With one digit per canvas, every cell of the block belongs to that digit. Which digit a cell learns when two
digits' blocks meet is a question for lesson 2, where canvases first hold two digits and you write these
targets yourself (`box_targets`); here `mnistloc` makes them.
"""),
    ("md", '''
The targets for four training canvases: the cells that learn a box (bright), and the distances at one centre
cell. The model trains on exactly these (section 7).
'''),
    ("code", '''
distances, learns = targets.box_targets(ds.boxes[:4], ds.mask[:4])  # (4, 16, 16, 4) cells, (4, 16, 16) bool
viz.heatmap_plot(ds.images[:4], {"cells that learn the box": learns.astype(np.float32)}, boxes=ds.boxes[:4, :1])
row, col = np.argwhere(learns[0])[len(np.argwhere(learns[0])) // 2]  # the middle of the block: the centre cell
print(f"canvas 0, cell (row {row}, column {col}): (l, t, r, b) = {distances[0, row, col]} cells")
'''),
    ("md", '''
**Exercise: `boxes_from_cells`** (2 points). The inverse: the box each cell predicts from its distances,
`(cx - l * stride, cy - t * stride, cx + r * stride, cy + b * stride)` with the cell's centre `(cx, cy)` as
above. It works on any leading axes: `(..., H, W, 4)`. No clipping. About 5 lines. After training, the lesson
reads the model's box at the heatmap's peak with *your* function.
'''),
    ("solution:boxes_from_cells", '''
def boxes_from_cells(distances, *, stride=8):
    """The xyxy box in pixels that each cell's distances describe: the inverse of box_targets.

    Args:
        distances (float[..., H, W, 4]): (l, t, r, b) in cells, from each cell's centre.
        stride (int): pixels per cell side.

    Returns:
        float32[..., H, W, 4]: xyxy pixels.
    """
    ### BEGIN SOLUTION
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cy = ((np.arange(h) + 0.5) * stride)[:, None]  # [H, 1]
    cx = ((np.arange(w) + 0.5) * stride)[None, :]  # [1, W]
    out = np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride, cx + d[..., 2] * stride,
                    cy + d[..., 3] * stride], axis=-1)
    return out.astype(np.float32)
    ### END SOLUTION
'''),
    ("test:boxes_from_cells", '''
check_exercise("boxes_from_cells", boxes_from_cells)
### BEGIN HIDDEN TESTS
check_exercise("boxes_from_cells", boxes_from_cells, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
cells_fn = yours_or_reference(boxes_from_cells, decoder.boxes_from_cells, np.zeros((1, 1, 4)))
back = cells_fn(distances)[learns]  # (cells, 4): every learning cell's box, decoded
truth = np.repeat(ds.boxes[:4, 0], learns.reshape(4, -1).sum(axis=1), axis=0)
print(f"{len(back)} cells decoded; largest error against the true boxes: {np.abs(back - truth).max():.2g} px")
'''),
    ("md", '''
## 6. The model: a backbone and heads

The backbone (given) turns a canvas into a grid of features: one cell per 8x8 pixels, so 16x16 cells of 64
numbers. Heads read that grid. A digit looks the same wherever it lies, and a convolution asks the same
question in every cell with the same weights, so this design learns from every position at once:

* the **presence** head says, per cell, "is a digit's centre here?" (a probability);
* the **box** head says, per cell, how far the box's left, top, right and bottom sides are from the cell's
  centre, in cells. Read at the cell where the digit's centre lies, that gives the box;
* the **class** head (lesson 3) says, per cell, which digit is centred there (ten probabilities).

All three are the same small network: a 3x3 `Conv2D` with `hidden` filters, `padding="same"` and ReLU (each cell
sees its neighbours), then a 1x1 `Conv2D` with one filter per number the head predicts (`outputs`) and the
head's own activation: none for the box (distances can be any size and sign), `"sigmoid"` for presence (a
probability), `"softmax"` for the class (probabilities that sum to 1).

**Exercise: `build_head`** (4 points). A `keras.Model` from features `(B, H, W, channels)` to
`(B, H, W, outputs)` as above, named `name`. About 4 lines; start with
`features = keras.Input(shape=(None, None, channels))` so the head works on any grid size. This lesson builds
its box head with it; the later lessons build their presence and class heads with `mnistloc`'s copy of it.
'''),
    ("solution:build_head", '''
def build_head(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """A dense head: per cell, ``outputs`` numbers read from the features around it.

    Args:
        channels (int): C, the feature channels.
        hidden (int): filters of the hidden 3x3 layer.
        outputs (int): numbers per cell (4: box distances, 1: presence, 10: class probabilities).
        activation (str or None): the last layer's activation: None (linear), "sigmoid" or "softmax".
        name (str): the model's name.

    Returns:
        keras.Model: features (B, H, W, C) -> (B, H, W, outputs).
    """
    ### BEGIN SOLUTION
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)
    ### END SOLUTION
'''),
    ("test:build_head", '''
check_exercise("build_head", build_head)
### BEGIN HIDDEN TESTS
check_exercise("build_head", build_head, secret=True)
### END HIDDEN TESTS
'''),
    common.assemble(1, {"presence": "models.build_presence_head", "box": "build_head"}),
    ("md", '''
## 7. Training

Each step shows the model a batch of fresh canvases; the presence head learns a heatmap of digit centres, the
box head that *your* `build_head` made learns the distances of section 5, with an L1 + IoU loss counted only at
cells near a centre (`models.LOSSES`). The budget is all cores' CPU time (`clock="cpu"`): the learning rate
falls to zero as it runs out.
'''),
    common.train(1, 150),
    common.HISTORY,
    ("md", '''
## 8. Evaluation on digits the model never saw

2,000 test canvases. *Mean IoU* averages the IoU of the predicted box with the true box; *iou50* and *iou75*
are the shares of canvases where IoU reaches 0.5 and 0.75.
'''),
    common.TAKE,
    common.evaluate(1, {"mean_iou": 0.85, "iou50": 0.99}),
    ("md", '''
The same mean IoU measured with *your* `iou`, next to the classic model's from section 0 (a wrong `iou`
shows here as a disagreement with `mnistloc.metrics`):
'''),
    ("code", '''
your_iou = yours_or_reference(iou, boxes.iou, np.zeros((1, 4)), np.zeros((1, 4)))
predicted = decoder.decode(1, outputs, cells_fn=cells_fn)["boxes"][:, 0]  # (n, 4) xyxy pixels: your boxes_from_cells
dense_iou = your_iou(test.boxes[:, 0], predicted)
print(f"dense model:   mean IoU {dense_iou.mean():.3f} (mnistloc.metrics: {scores['mean_iou']:.3f}), "
      f"IoU >= 0.5 on {(dense_iou >= 0.5).mean():.1%}")
print(f"classic model: mean IoU {your_iou(test_classic.boxes[:, 0], classic_box).mean():.3f}")
'''),
    ("md", '''
## 9. Pictures: the best and the worst predictions

True boxes are green, predictions red and dashed.
'''),
    *common.pictures(1),
    ("md", '''
Look at the green boxes of the worst cases: a tight box counts every pixel brighter than 0, also the faint
ones at a stroke's edge that you can hardly see. A model that learns "the visible stroke" loses IoU there;
on a thin "1", one pixel of width is a lot (section 3).
'''),
    *common.question("q_classic_plateau"),
    ("code", '''
def by_position(true_boxes, ious, edge=24):
    """Mean IoU of the digits whose centre lies within `edge` px of the canvas's centre, and of the others."""
    centre = (true_boxes[:, :2] + true_boxes[:, 2:]) / 2  # (n, 2) x, y
    inner = np.abs(centre - 64).max(axis=1) < edge
    return ious[inner].mean(), ious[~inner].mean(), inner.mean()


for name, truth, got in (("classic", test_classic.boxes[:, 0], classic_box), ("dense", test.boxes[:, 0], predicted)):
    near, far, share = by_position(truth, your_iou(truth, got))
    print(f"{name:>8}: mean IoU {near:.3f} for digits near the centre ({share:.0%}), {far:.3f} near the edges")
'''),
    *common.question("q_tight_or_frame"),
    ("code", '''
tight = canvas.make_dataset(1, 1000, seed=7)
frame = canvas.make_dataset(1, 1000, seed=7, box="frame")  # the same canvases, labelled with their frames
t, f = tight.boxes[:, 0], frame.boxes[:, 0]  # (n, 4) each
print(f"same images: {np.array_equal(tight.images, frame.images)}")
print(f"a perfect frame box against the tight box: mean IoU {your_iou(t, f).mean():.3f}")
wider = np.float32([0, 0, 1, 0])  # one pixel more on the right
print(f"one pixel too wide: IoU {your_iou(f, f + wider).mean():.3f} on frame boxes, "
      f"{your_iou(t, t + wider).mean():.3f} on tight boxes (widths {t[:, 2].mean() - t[:, 0].mean():.1f} px on average)")
'''),
    ("md", '''
## What to try next

* Train longer (`seconds=300`): how much does mean IoU gain, and where does it stop?
* Train the dense model on frame boxes (`encode` on `canvas.make_dataset(1, n, seed=0, box="frame")`): does its
  IoU against the frames beat the IoU against tight boxes you measured above?
* Make the box head deeper (two hidden layers) or wider (`hidden=128`) and compare the IoU and the time.
* Next lesson: canvases that may hold no digit, or two, and a loss that knows the difference.
'''),
]
