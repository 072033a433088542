"""Lesson 2: is there a digit at all? (case 2): union_box, heatmap_targets, box_targets, find_peaks, masked_box_loss,
focal_loss."""
from lessons_src import common

LESSON = "02-presence"

CELLS = [
    ("md", '''
# Lesson 2: is there a digit at all?

**What you will build.** A model that says whether a canvas holds any digit, and if it does, draws the box
around all of them: canvases now hold no digit, one digit or two, of any class.

**Why it matters.** Real images often contain nothing of interest. A localizer that always answers with a
box is wrong on every empty image, and a loss that asks for a box on an empty canvas teaches nonsense. This
lesson adds a *presence* output and a *masked* loss: no box loss where there is no box.

**Plan.**
1. The label of a canvas with two digits: the union box (`union_box`).
2. What the presence output learns: a heatmap of digit centres (`heatmap_targets`); which cell learns which
   digit's box when two digits are close (`box_targets`); and how to read digits off the heatmap: its peaks
   (`find_peaks`).
3. The losses: a box loss that ignores canvases (and cells) without a digit (`masked_box_loss`), and a focal
   loss for a heatmap that is almost all background (`focal_loss`).
4. Train with your targets and losses, evaluate with your peaks (presence accuracy, mean IoU on canvases with
   digits), look at the mistakes.

Boxes are `xyxy` pixels with an exclusive max, as in lesson 1.
'''),
    common.setup(),
    ("code", '''
ds = canvas.make_dataset(2, 16, seed=2)
print("digits per canvas:", ds.count[:8], " mask of the first canvases:\\n", ds.mask[:4])
viz.sample_grid(ds, n=8)
'''),
    ("md", '''
## 1. The label: the union box

A canvas keeps two slots for digits: `boxes (N, 2, 4)`, and `mask (N, 2)` says which slots hold one. Unused
slots hold zeros. The case's label is the smallest box holding every digit of the canvas.

**Exercise: `union_box`** (2 points). The minimum of `x0, y0` and the maximum of `x1, y1` over the used slots
only; `[0, 0, 0, 0]` for a canvas with no digit. About 5 lines; `np.where(mask[..., None], ..., np.inf)`
keeps unused slots out of a minimum.
'''),
    ("solution:union_box", '''
def union_box(boxes, mask):
    """The smallest xyxy box holding every used box of each canvas.

    Args:
        boxes (float[N, K, 4]): xyxy boxes, K slots per canvas.
        mask (bool[N, K]): which slots hold a box.

    Returns:
        float32[N, 4]: the union box of each canvas; zeros where no slot is used.
    """
    ### BEGIN SOLUTION
    m = np.asarray(mask, bool)[..., None]  # [N, K, 1]
    lo = np.where(m, boxes[..., :2], np.inf).min(axis=1)  # [N, 2]
    hi = np.where(m, boxes[..., 2:], -np.inf).max(axis=1)  # [N, 2]
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(axis=1), out, 0).astype(np.float32)
    ### END SOLUTION
'''),
    ("test:union_box", '''
check_exercise("union_box", union_box)
### BEGIN HIDDEN TESTS
check_exercise("union_box", union_box, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
print("your union boxes:\\n", union_box(ds.boxes[:4], ds.mask[:4]))
print("presence:", (ds.count[:4] > 0).astype(int))
'''),
    ("md", '''
## 2. A heatmap of centres

The model says for every cell of its 16x16 grid how likely it is that a digit's *centre* lies there. Its
target is a *heatmap* (CenterNet): 1 at each digit's centre cell (row `floor(cy / stride)`, column
`floor(cx / stride)`, with `(cx, cy)` the box's centre), and a Gaussian bump around it,
`exp(-((i - row)^2 + (j - col)^2) / (2 sigma^2))` at cell (i, j), distances in cells. The bump tells the
loss that a cell next to the centre is *almost* right. With two digits a cell keeps the larger bump.

**Exercise: `heatmap_targets`** (3 points). About 8 lines, no loop: distances of shape `(N, K, G, G)` by
broadcasting, unused slots (mask False) set to 0, then the max over the slots.
'''),
    ("solution:heatmap_targets", '''
def heatmap_targets(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """The centre heatmap: a Gaussian bump, 1 at each digit's centre cell.

    Args:
        boxes (float[N, K, 4]): xyxy pixels, K slots per canvas.
        mask (bool[N, K]): which slots hold a digit.
        size (int): the canvas side in pixels, a multiple of stride.
        stride (int): pixels per cell side; the grid is G x G, G = size // stride.
        sigma (float): the bump's width, in cells.

    Returns:
        float32[N, G, G]: the heatmap; 0 on an empty canvas.
    """
    ### BEGIN SOLUTION
    b, m, g = np.asarray(boxes, np.float64), np.asarray(mask, bool), size // stride
    centre = np.clip(np.floor((b[..., :2] + b[..., 2:]) / 2 / stride), 0, g - 1)  # [N, K, 2] column, row
    i = np.arange(g)
    d2 = (i[:, None] - centre[..., 1, None, None]) ** 2 + (i[None, :] - centre[..., 0, None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]  # [N, K, G, G]
    return heat.max(axis=1, initial=0.0).astype(np.float32)
    ### END SOLUTION
'''),
    ("test:heatmap_targets", '''
check_exercise("heatmap_targets", heatmap_targets)
### BEGIN HIDDEN TESTS
check_exercise("heatmap_targets", heatmap_targets, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
heat_fn = yours_or_reference(heatmap_targets, targets.heatmap_targets, np.zeros((1, 1, 4)), np.zeros((1, 1), bool))
show = np.argsort(-ds.count, kind="stable")[:4]  # four canvases, those with the most digits
viz.heatmap_plot(ds.images[show], {"your centre heatmap": heat_fn(ds.boxes[show], ds.mask[show])},
                 boxes=[b[m] for b, m in zip(ds.boxes[show], ds.mask[show])])
'''),
    ("md", """
## 3. Which cell learns which digit's box

Lesson 1's box head learned, at the 3x3 block of cells around a digit's centre cell (`radius=1`), the distances
from each cell's centre `((j + 0.5) * stride, (i + 0.5) * stride)` to the box's sides, in cells:
`(l, t, r, b) = (cx - x0, cy - y0, x1 - cx, y1 - cy) / stride`. With one digit a canvas had one block. Now two
digits may sit close enough that their blocks meet, and a cell can learn only one box: it learns the box of the
digit whose centre cell is *nearest* (squared distance in cells; on a tie, the earlier slot, as `np.argmin`
picks).

**Exercise: `box_targets`** (3 points). For each canvas and each used slot (mask True), fill the cells within
`radius` rows and columns of its centre cell with the distances, by the ownership rule above. Also return which
cells learn a box. Cells that learn nothing hold zeros. About 12 lines; work on the whole grid with
broadcasting: `np.arange(g)` for rows and columns, distances of shape `(N, K, G, G)`.
"""),
    ("solution:box_targets", '''
def box_targets(boxes, mask, *, size=128, stride=8, radius=1):
    """Per cell: the distances (l, t, r, b), in cells, from the cell's centre to its digit's box.

    Args:
        boxes (float[N, K, 4]): xyxy pixels, K slots per canvas.
        mask (bool[N, K]): which slots hold a digit.
        size (int): the canvas side in pixels, a multiple of stride.
        stride (int): pixels per cell side; the grid is G x G, G = size // stride.
        radius (int): cells (in rows and in columns) around a centre cell that learn its box.

    Returns:
        (float32[N, G, G, 4], bool[N, G, G]): the distances (zeros where no box is learned), and the cells
        that learn a box.
    """
    ### BEGIN SOLUTION
    b, m, g = np.asarray(boxes, np.float64), np.asarray(mask, bool), size // stride
    centre = np.clip(np.floor((b[..., :2] + b[..., 2:]) / 2 / stride), 0, g - 1)  # [N, K, 2] column, row
    i = np.arange(g)
    dr = i[:, None] - centre[..., 1, None, None]  # [N, K, G, 1] rows from each centre cell
    dc = i[None, :] - centre[..., 0, None, None]  # [N, K, 1, G] columns
    near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius) & m[..., None, None]  # [N, K, G, G]
    d2 = np.where(m[..., None, None], dr ** 2 + dc ** 2, np.inf)  # [N, K, G, G]
    owner = np.argmin(d2, axis=1) if b.shape[1] else np.zeros((len(b), g, g), int)  # [N, G, G]
    own = np.take_along_axis(b, owner.reshape(len(b), -1, 1), axis=1).reshape(len(b), g, g, 4)
    ctr = (i + 0.5) * stride  # [G] cell centres in pixels
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], -1) / stride
    cells = near.any(axis=1)
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells
    ### END SOLUTION
'''),
    ("test:box_targets", '''
check_exercise("box_targets", box_targets)
### BEGIN HIDDEN TESTS
check_exercise("box_targets", box_targets, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
Your targets on the canvases with the most digits: the cells that learn a box, coloured by the slot whose box
they learn (1: the first digit, 2: the second). Where two blocks meet, each cell follows the nearer centre.
'''),
    ("code", '''
box_fn = yours_or_reference(box_targets, targets.box_targets, np.zeros((1, 1, 4)), np.zeros((1, 1), bool))
distances, learns = box_fn(ds.boxes[show], ds.mask[show])  # (4, 16, 16, 4), (4, 16, 16)
decoded = decoder.boxes_from_cells(distances)  # (4, 16, 16, 4): the box each cell learns, back in pixels
owner = np.zeros(learns.shape, np.float32)  # 0: no box, 1 + the slot of the box the cell learns
for slot in range(ds.boxes.shape[1]):
    owner[learns & np.isclose(decoded, ds.boxes[show][:, None, None, slot], atol=1e-3).all(-1)] = slot + 1
viz.heatmap_plot(ds.images[show], {"which digit each cell learns": owner / 2},
                 boxes=[b[m] for b, m in zip(ds.boxes[show], ds.mask[show])])
'''),
    ("md", '''
## 4. Reading digits off a heatmap: peaks

A trained heatmap is a bump around each digit, not a single bright cell. A digit is where a cell scores at
least as high as its eight neighbours: a *peak* (CenterNet's "NMS", a 3x3 max-pool). One digit gives one
peak, two digits two.

**Exercise: `find_peaks`** (3 points). For each map, the cells that no neighbour beats (cells off the grid do
not count; equal neighbours are both peaks) and that score at least `threshold`, the `k` highest of them by
descending score (equal scores in row-major order: `np.argsort(-scores, kind="stable")` on the flattened map).
A map with fewer than `k` peaks pads with row = col = -1 and score 0. About 10 lines: pad the maps with
`-np.inf`, and take the max of the nine shifted copies.
'''),
    ("solution:find_peaks", '''
def find_peaks(heatmap, *, k=10, threshold=0.0):
    """The k highest local maxima (3x3) of each map.

    Args:
        heatmap (float[N, H, W]): scores.
        k (int): peaks per map.
        threshold (float): the lowest score a peak may have.

    Returns:
        (int64[N, k], int64[N, k], float32[N, k]): rows, columns and scores of the peaks, best first; -1, -1, 0
        where a map has fewer than k peaks.
    """
    ### BEGIN SOLUTION
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local_max = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)  # [N, H, W]
    peak = np.where((heat >= local_max) & (heat >= threshold), heat, -np.inf).reshape(n, h * w)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
    scores = np.take_along_axis(peak, idx, axis=1)
    scores[:, h * w:] = -np.inf  # k > H * W: no cell left
    found = np.isfinite(scores)
    return (np.where(found, idx // w, -1).astype(np.int64), np.where(found, idx % w, -1).astype(np.int64),
            np.where(found, scores, 0).astype(np.float32))
    ### END SOLUTION
'''),
    ("test:find_peaks", '''
check_exercise("find_peaks", find_peaks)
### BEGIN HIDDEN TESTS
check_exercise("find_peaks", find_peaks, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
peaks_fn = yours_or_reference(find_peaks, decoder.find_peaks, np.zeros((1, 3, 3)))
rows, cols, top = peaks_fn(heat_fn(ds.boxes[show], ds.mask[show]), k=3, threshold=0.5)  # (4, 3) each
for i, c in enumerate(show):
    found = [(int(r), int(col)) for r, col in zip(rows[i], cols[i]) if r >= 0]
    print(f"canvas {c}: {ds.count[c]} digit(s); peaks at (row, column) {found}")
'''),
    ("md", '''
## 5. A box loss with a mask

The box target of an empty canvas is `[0, 0, 0, 0]`: not a box, a placeholder. A loss that asks the model to
predict it there would pull every prediction toward the corner. The fix: carry a mask with the target and count
the error only where the mask is 1. Our targets put the mask in the first channel: `y_true[..., 0]` is the
mask, `y_true[..., 1:]` the four box numbers. The same loss works per canvas `(B, 5)` and per cell
`(B, H, W, 5)`.

**Exercise: `masked_box_loss`** (3 points). The mean absolute error of the four numbers, times the mask,
summed, divided by the number of masked entries (at least 1, so an all-empty batch gives 0, not NaN). Use
`keras.ops` (`ops.abs`, `ops.mean`, `ops.sum`, `ops.maximum`), not numpy, so Keras can differentiate it.
About 4 lines.
'''),
    ("solution:masked_box_loss", '''
def masked_box_loss(y_true, y_pred):
    """Mean absolute box error over the entries that hold a digit; nothing elsewhere.

    Args:
        y_true (float[..., 5]): the mask (1 where a digit is, else 0), then the four box numbers.
        y_pred (float[..., 4]): the predicted box numbers.

    Returns:
        A scalar tensor: sum(mask * mean(|box_true - box_pred|, last axis)) / max(sum(mask), 1).
    """
    ### BEGIN SOLUTION
    ops = keras.ops
    mask = y_true[..., 0]
    error = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * error) / ops.maximum(ops.sum(mask), 1.0)
    ### END SOLUTION
'''),
    ("test:masked_box_loss", '''
check_exercise("masked_box_loss", masked_box_loss)
### BEGIN HIDDEN TESTS
check_exercise("masked_box_loss", masked_box_loss, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
## 6. A focal loss for the heatmap

A 16x16 heatmap has 256 cells and one or two centres: a plain cross-entropy is dominated by the easy empty
cells, and the model learns to say "nothing" everywhere. CenterNet's *penalty-reduced focal loss* fixes both
problems. With `p` the predicted probability (clipped to `[1e-6, 1 - 1e-6]`) and `y` the target heatmap: a
centre cell (`y == 1`) costs `-(1 - p)^alpha * log(p)`; any other cell `-(1 - y)^beta * p^alpha * log(1 - p)`,
so confident cells count little and cells near a centre are forgiven for scoring high. Sum over all cells and
divide by the number of centres (at least 1).

**Exercise: `focal_loss`** (3 points). With `keras.ops`, so Keras can differentiate it. About 6 lines.
'''),
    ("solution:focal_loss", '''
def focal_loss(y_true, y_pred, alpha=2.0, beta=4.0):
    """CenterNet's penalty-reduced focal loss on the presence heatmap, per centre.

    Args:
        y_true (float[B, H, W, 1]): 1 at centres, a Gaussian bump around them, 0 elsewhere.
        y_pred (float[B, H, W, 1]): probabilities.
        alpha (float): the focusing power.
        beta (float): how much cells near a centre are forgiven.

    Returns:
        A scalar tensor: the summed loss of all cells divided by max(number of centres, 1).
    """
    ### BEGIN SOLUTION
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(y_true >= 1.0, p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)
    ### END SOLUTION
'''),
    ("test:focal_loss", '''
check_exercise("focal_loss", focal_loss)
### BEGIN HIDDEN TESTS
check_exercise("focal_loss", focal_loss, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
## 7. The model and its training

The presence and box heads (`models.build_presence_head` and `models.build_box_head`: your `build_head` of
lesson 1 with `outputs=1, activation="sigmoid"` and with `outputs=4`) on the same backbone, trained on *your*
heatmaps and *your* box targets, the presence output with *your* `focal_loss`, the box output with *your*
`masked_box_loss` per cell (plus the reference's IoU loss, `losses.iou_loss`, which scores overlap as the metrics
do). The evaluation reads the digits at *your* peaks. A wrong function shows in the model.
'''),
    common.assemble(2, {"presence": "models.build_presence_head", "box": "models.build_box_head"}),
    ("code", '''
box_l1 = yours_or_reference(masked_box_loss, losses.masked_box_loss, np.zeros((2, 5), np.float32),
                            np.zeros((2, 4), np.float32))


def box_loss(y_true, y_pred):
    """Per cell (B, 16, 16, 5) vs (B, 16, 16, 4): the masked L1 above plus the IoU loss."""
    return box_l1(y_true, y_pred) + losses.iou_loss(y_true, y_pred)


focal = yours_or_reference(focal_loss, losses.focal_loss, np.zeros((1, 2, 2, 1), np.float32),
                           np.full((1, 2, 2, 1), 0.5, np.float32))
model.compile(optimizer=keras.optimizers.Adam(2e-3), loss={"presence": focal, "box": box_loss})


def student_targets(ds):
    """What the model trains on for a batch of canvases: your heatmap and your box distances."""
    return targets.encode_targets(ds.boxes, ds.classes, ds.mask, size=ds.size, heatmap_fn=heat_fn, box_fn=box_fn)
'''),
    common.train(2, 150, extra="encode=student_targets"),
    common.HISTORY,
    ("md", '''
## 8. Evaluation

*Presence accuracy*: the share of test canvases where "any digit?" is answered right. *Mean IoU*: of the
predicted union box, on the canvases that hold digits.
'''),
    common.TAKE,
    common.evaluate(2, {"presence_accuracy": 0.995, "mean_iou": 0.85}),
    ("md", '''
The digits read at *your* peaks, scored against the union boxes that *your* `union_box` draws around the test
digits:
'''),
    ("code", '''
your_union = yours_or_reference(union_box, boxes.union_box, np.zeros((1, 2, 4)), np.zeros((1, 2), bool))
true_union = your_union(test.boxes, test.mask)  # (n, 4) xyxy pixels, zeros on empty canvases
pred = decoder.decode(2, outputs, peaks_fn=peaks_fn)  # the digits at your peaks
has = test.mask.any(axis=1)
print(f"presence accuracy with your peaks: {((pred['count'] > 0) == has).mean():.3f}   "
      f"(mnistloc: {scores['presence_accuracy']:.3f})")
print(f"mean IoU on the {has.sum()} canvases with digits, against your union boxes: "
      f"{boxes.iou(true_union[has], boxes.union_box(pred['boxes'], pred['mask'])[has]).mean():.3f}   (mnistloc: {scores['mean_iou']:.3f})")
'''),
    *common.pictures(2),
    *common.question("q_mask_on_empty"),
    ("code", '''
import tensorflow as tf

big = canvas.make_dataset(2, 1000, seed=3).targets()  # presence (n, 1), box (n, 4) in rel_xyxy
y_true = np.concatenate([big["presence"], big["box"]], axis=-1).astype(np.float32)  # (n, 5): mask, box
empty = y_true[y_true[:, 0] == 0]  # the canvases without a digit


def unmasked_l1(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_true[..., 1:] - y_pred))


guess = tf.Variable(np.tile(np.float32([0.3, 0.3, 0.7, 0.7]), (len(empty), 1)))  # a centred box everywhere
for name, loss in (("masked_box_loss", box_l1), ("unmasked L1", unmasked_l1)):
    with tf.GradientTape() as tape:
        value = loss(empty, guess)
    grad = np.asarray(tape.gradient(value, guess)).sum(axis=0)  # (4,) summed over the empty canvases
    print(f"{name:>21}: loss {float(value):.3f} on {len(empty)} empty canvases; gradient (x0, y0, x1, y1) {grad}")
has = y_true[:, 0] == 1
print("best constant box (the median of what the loss compares), masked:  ", np.median(y_true[has, 1:], axis=0))
print("best constant box (the median of what the loss compares), unmasked:", np.median(y_true[:, 1:], axis=0))
'''),
    ("md", '''
## What to try next

* Train without the mask: compile a copy of the model with `unmasked_l1` (from the question's cell) as its box
  loss and compare its mean IoU with the masked model's.
* Change the mix of empty, one- and two-digit canvases (`make_dataset(..., mix=(0.6, 0.2, 0.2))`): which
  metric suffers first?
* Lower the decoding threshold (`decoder.decode(2, outputs, threshold=0.3)`): more canvases called present,
  and which mistakes appear?
* Next lesson: which digit is it? A class head.
'''),
]
