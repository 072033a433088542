"""Lesson 5: many digits at many sizes (case 5), the capstone: the student assembles the detector from their own
checked parts: bump_sigmas, detector_targets, detect_digits, choose_nms_threshold, and the open challenge."""
from lessons_src import common

LESSON = "05-many-digits"

CELLS = [
    ("md", '''
# Lesson 5: many digits, many sizes: assemble your detector

**What you will build.** A detector for crowded canvases: zero to six digits, each scaled from 0.6 to 1.6
times its usual size, frames allowed to overlap. No slots and no count head: a canvas holds as many digits as
its presence map has peaks. You assemble it from the parts you wrote in lessons 1 to 4: your heatmaps and box
targets become the detector's targets, your peaks, boxes and NMS become its decoder. Then you train it, score
it, and try to beat it in the class challenge.

**Why it matters.** The slot model of lesson 4 cannot count past two. Real detectors (CenterNet, FCOS) are
dense: every cell may report a digit, and non-maximum suppression (NMS) keeps one report per digit. In a crowd,
NMS's threshold decides whether two touching digits stay two, and a single bump width cannot fit both a small
digit and a large one.

**Plan.**
1. Your own functions from lessons 1 to 4, loaded from your earlier notebooks, each checked before it is used.
2. Crowded canvases.
3. Bumps that grow with the digit (`bump_sigmas`).
4. The detector's targets, on your heatmaps and box targets (`detector_targets`).
5. Train the detector on your targets with your losses.
6. Your decoder, on your peaks, boxes and NMS (`detect_digits`), scored with COCO mAP beside the reference's.
7. NMS in a crowd, and its threshold chosen on validation canvases (`choose_nms_threshold`).
8. Which digits are missed, and which parts of this detector are yours.
9. The challenge: improve the model within a fixed training budget, save it, and submit it to the leaderboard.
'''),
    common.setup("from mnistloc import nms_sweep\n"),
    ("md", '''
## 1. Your functions from lessons 1 to 4, checked first

A notebook cannot import another notebook, so `from_lesson` reads the cell that defines a function in *your*
notebook of an earlier lesson (the folder next to this one, e.g. `../04-multiple-digits/04-multiple-digits.ipynb`),
runs it here, and then runs that exercise's public check on it, as the check cell of that lesson did. Only a
function that passes is used. A failing one is named with the check's hint and replaced by `mnistloc`'s
reference, and so is one that is missing or not done, and every one under the autograder (which grades this
notebook alone). Its output says which one each part of this lesson uses.

To use your own function even though its check fails (say, to see what your bug does to the detector), put its
name in `USE_MY_OWN`, e.g. `USE_MY_OWN = {"nms"}`, and run the cell again.
'''),
    ("code", '''
import json
from pathlib import Path

from mnistloc.checks import check

USE_MY_OWN = set()  # names of your earlier functions to use even when their check fails, e.g. {"nms"}


def from_lesson(name, lesson, reference):
    """Your function ``name`` from your notebook of ``lesson`` when it passes that exercise's public check (or is in
    ``USE_MY_OWN``), else ``reference``; prints which, and why."""
    path = Path("..") / lesson / f"{lesson}.ipynb"
    why = "the autograder grades this notebook alone" if GRADING else f"{path} is not there"
    if not GRADING and path.is_file():
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        source = [c["source"] for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == name]
        why = f"no cell of {name} in {path}"
        if source:
            space = {"np": np, "keras": keras}  # what every exercise cell may use
            try:
                exec("".join(source[0]) if isinstance(source[0], list) else source[0], space)
                result = check(name, space[name])  # the public cases of the check cell of that lesson
            except Exception as exc:  # a broken earlier cell should not stop this lesson
                why = f"its cell fails to run ({type(exc).__name__}: {exc})"
            else:
                if result.passed or name in USE_MY_OWN:
                    note = "" if result.passed else f", in USE_MY_OWN though its check fails: {result.hint}"
                    print(f"{name}: yours, from {path}{note}")
                    return space[name]
                why = f"yours fails its check: {result.hint}"
    print(f"{name}: mnistloc's reference ({why})")
    return reference


L1, L2, L3, L4 = "01-single-digit", "02-presence", "03-multi-class", "04-multiple-digits"
cells_fn = from_lesson("boxes_from_cells", L1, decoder.boxes_from_cells)
heat_fn = from_lesson("heatmap_targets", L2, targets.heatmap_targets)
box_fn = from_lesson("box_targets", L2, targets.box_targets)
peaks_fn = from_lesson("find_peaks", L2, decoder.find_peaks)
focal = from_lesson("focal_loss", L2, losses.focal_loss)
box_iou_loss = from_lesson("iou_loss", L3, losses.iou_loss)
nms_fn = from_lesson("nms", L3, decoder.nms)
match_fn = from_lesson("match_detections", L4, metrics.match_detections)
ap_fn = from_lesson("average_precision", L4, metrics.average_precision)
'''),
    ("md", '''
## 2. Crowded canvases

`canvas.make_dataset(5, n, seed=...)`: up to six digits, each resized (area resampling) and its tight box
measured again, placed so that two frames overlap by IoU 0.3 at most; a later digit is drawn over an earlier
one with `maximum`. Boxes, classes and the mask are padded to six slots; `count` says how many are used.
'''),
    ("code", '''
ds = canvas.make_dataset(5, 16, seed=5)
print("digits per canvas:", ds.count[:8].tolist(), "  boxes:", ds.boxes.shape, " mask:", ds.mask.shape)
viz.sample_grid(ds, n=8)
'''),
    ("md", '''
## 3. Bumps that grow with the digit

Your `heatmap_targets` puts a Gaussian bump of one width, `sigma` cells, on each digit's centre cell. With
digits from about 12 to 45 pixels, one width cannot fit all: 1 cell is wide for a small digit (its bump spills
onto a close neighbour) and narrow for a large one (only its centre cell says "digit", though the cells next
to it sit well inside the digit too). CenterNet scales the bump with the box.

What it buys, measured (`bench/bump_width.py`: the reference detector trained for the same 2,570 steps on
each width, seeds 0, 1 and 2, scored on 2,000 test canvases; median over the seeds): bumps by digit size reach
mAP 0.750 against 0.741 for one width, AP50 0.951 against 0.952. The gain is in the large digits (the largest
third: recall 0.995 against 0.988, mAP 0.736 against 0.713) and the middle third (mAP 0.661 against 0.645); the
smallest third loses a little (recall 0.917 against 0.928, mAP 0.598 against 0.608), since their bumps are
narrower than 1 cell. A small, honest difference: check it against your own run at the end of the lesson.

**Exercise: `bump_sigmas`** (2 points). The bump's width in cells for each box, growing with the digit's size
`sqrt(w h)` (the side of a square of its area; clip each side at 0 first, so an inverted box has no size),
in cells of `stride` pixels: `max(0.5, 0.4 sqrt(w h) / stride)` cells, so that a median digit (20 px) keeps the
1-cell bump of lesson 2, a 12 px digit gets 0.6 cell and a 45 px digit 2.25. Boxes of any leading shape
`(..., 4)`; float32. About 3 lines.
'''),
    ("solution:bump_sigmas", '''
def bump_sigmas(boxes, stride=8):
    """The centre bump's width in cells for each box, growing with the digit.

    The digit's size is s = sqrt(w h) pixels (each side clipped at 0); the width is max(0.5, 0.4 s / stride) cells:
    a 20 px digit gets 1 cell (at stride 8), a 12 px one 0.6, a 45 px one 2.25.

    Args:
        boxes (float[..., 4]): xyxy pixel boxes (unused slots: zeros).
        stride (int): pixels per cell side.

    Returns:
        float32[...]: one width per box, in cells.
    """
    ### BEGIN SOLUTION
    b = np.asarray(boxes, dtype=np.float32)
    w, h = np.clip(b[..., 2] - b[..., 0], 0, None), np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * np.sqrt(w * h) / stride).astype(np.float32)
    ### END SOLUTION
'''),
    ("test:bump_sigmas", '''
check_exercise("bump_sigmas", bump_sigmas)
### BEGIN HIDDEN TESTS
check_exercise("bump_sigmas", bump_sigmas, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
sigma_fn = yours_or_reference(bump_sigmas, targets.size_sigmas, np.zeros((1, 4)))
sizes = np.array([[0, 0, 12, 12], [0, 0, 24, 24], [0, 0, 45, 45]], np.float32)  # a small, a medium, a large digit
print("widths in cells for 12, 24 and 45 px digits:", np.round(sigma_fn(sizes), 2))
'''),
    ("md", '''
## 4. The detector's targets, on your parts

The model learns three maps per canvas, one value per cell (16x16 cells of 8 pixels): the `presence` heatmap,
the `box` distances and the `class`. Build them from your own parts, which the lesson passes to your function:

* `presence` `(N, G, G, 1)`: each digit's bump, as wide as `sigma_fn` says (your `bump_sigmas`); a cell keeps
  the larger bump where two meet. Your `heatmap_targets` of lesson 2 (`heatmap_fn`) draws bumps of one width
  `sigma`, but a bump of width `s` is the unit bump to the power `1 / s**2`:
  `exp(-d**2 / 2) ** (1 / s**2) = exp(-d**2 / (2 s**2))`. So call it once per slot with `sigma=1.0` on that slot
  alone (`boxes[:, k:k+1]`, `mask[:, k:k+1]`), and raise it to each canvas's power.
* `box` `(N, G, G, 5)`: a weight, then the distances `(l, t, r, b)` of your `box_targets` of lesson 2 (`box_fn`).
  The weight is the presence heat at the cells `box_fn` marks, 0 elsewhere: cells near a centre learn most.
* `class` `(N, G, G, 11)`: the same weight, then the one-hot class of the digit that the cell learns the box of
  (the nearest centre cell, the earlier slot on a tie, as in `box_targets`), zeros where no box is learned.

**Exercise: `detector_targets`** (4 points). About 15 lines.
'''),
    ("solution:detector_targets", '''
def detector_targets(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """The case-5 detector's targets, built on the heatmap, box targets and bump widths given.

    Args:
        boxes (float[N, K, 4]): xyxy pixels, K slots per canvas.
        classes (int[N, K]): each digit's class (-1 in unused slots).
        mask (bool[N, K]): which slots hold a digit.
        heatmap_fn: ``heatmap_fn(boxes, mask, size=, stride=, sigma=)`` -> float[N, G, G] (lesson 2).
        box_fn: ``box_fn(boxes, mask, size=, stride=)`` -> (float[N, G, G, 4], bool[N, G, G]) (lesson 2).
        sigma_fn: ``sigma_fn(boxes)`` -> float[N, K], each bump's width in cells.
        size (int): the canvas side in pixels; cells of 8 pixels, G = size // 8.

    Returns:
        dict of float32 arrays: presence (N, G, G, 1); box (N, G, G, 5): weight, l, t, r, b; class (N, G, G, 11):
        weight, then the one-hot class.
    """
    ### BEGIN SOLUTION
    stride = 8
    b, m, g = np.asarray(boxes, np.float32), np.asarray(mask, bool), size // stride
    sigma = np.asarray(sigma_fn(b), np.float64)  # [N, K]
    heat = np.zeros((len(b), g, g))
    for k in range(b.shape[1]):  # one slot at a time: the unit bump, to the power 1 / sigma^2
        unit = np.asarray(heatmap_fn(b[:, k:k + 1], m[:, k:k + 1], size=size, stride=stride, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (1 / sigma[:, k, None, None] ** 2))
    distances, cells = box_fn(b, m, size=size, stride=stride)  # [N, G, G, 4], [N, G, G]
    weight = np.where(cells, heat, 0)[..., None]  # [N, G, G, 1]
    centre = np.clip(np.floor((b[..., :2] + b[..., 2:]) / 2 / stride), 0, g - 1)  # [N, K, 2] column, row
    i = np.arange(g)
    d2 = (i[:, None] - centre[..., 1, None, None]) ** 2 + (i[None, :] - centre[..., 0, None, None]) ** 2
    owner = np.argmin(np.where(m[..., None, None], d2, np.inf), axis=1)  # [N, G, G] the nearest centre's slot
    cls = np.take_along_axis(np.where(m, classes, -1), owner.reshape(len(b), -1), axis=1).reshape(owner.shape)
    one_hot = (cls[..., None] == np.arange(10)) & cells[..., None]  # [N, G, G, 10]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, distances], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, one_hot], axis=-1).astype(np.float32)}
    ### END SOLUTION
'''),
    ("test:detector_targets", '''
check_exercise("detector_targets", detector_targets)
### BEGIN HIDDEN TESTS
check_exercise("detector_targets", detector_targets, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
A crowded scene's heatmaps: your `heatmap_targets` with one width (1 cell) above, *your* detector's targets
below, the bumps as wide as *your* `bump_sigmas` says. Look at the smallest digits next to a neighbour, and at
the largest ones.
'''),
    ("code", '''
def reference_targets(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """mnistloc's encoder on the same parts (stands in when your detector_targets is not done)."""
    return targets.encode_targets(boxes, classes, mask, size=size, sigma="size", heatmap_fn=heatmap_fn,
                                  box_fn=box_fn, sigma_fn=sigma_fn)


targets_fn = yours_or_reference(detector_targets, reference_targets, np.zeros((1, 1, 4)), np.zeros((1, 1), int),
                                np.zeros((1, 1), bool), heat_fn, box_fn, sigma_fn)
crowded = np.argsort(-ds.count, kind="stable")[:4]  # the fullest canvases
fixed = np.asarray(heat_fn(ds.boxes[crowded], ds.mask[crowded], size=128, stride=8, sigma=1.0))
sized = targets_fn(ds.boxes[crowded], ds.classes[crowded], ds.mask[crowded], heat_fn, box_fn, sigma_fn)
viz.heatmap_plot(ds.images[crowded], {"one width": fixed, "bumps by digit size": sized["presence"][..., 0]},
                 boxes=[ds.boxes[i][ds.mask[i]] for i in crowded], titles=[f"{ds.count[i]} digits" for i in crowded])
plt.show()
'''),
    ("md", '''
## 5. The detector and its training

The backbone and the three dense heads of lessons 1 to 3 (`models.build_model(5)`: presence, box and class
per 8x8 cell, no count head). It trains on *your* targets (your `detector_targets` on your heatmaps, box targets
and bump widths), the presence map with *your* `focal_loss`, the boxes with the masked L1 plus *your*
`iou_loss`.
'''),
    ("code", '''
SEED = 0  # the run's seed: starting weights and training canvases; change it to see how much a run varies
keras.utils.set_random_seed(SEED)
model = models.build_model(5)


def box_loss(y_true, y_pred):
    """Per cell (B, 16, 16, 5) vs (B, 16, 16, 4): the masked L1 plus your IoU loss."""
    return losses.masked_box_loss(y_true, y_pred) + box_iou_loss(y_true, y_pred)


def compile_detector(model, learning_rate=training.LEARNING_RATE):
    """Adam and the three losses, weighted as the reference's (``losses.LOSS_WEIGHTS``)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss={"presence": focal, "box": box_loss, "class": losses.masked_class_loss},
                  loss_weights={name: losses.LOSS_WEIGHTS[name] for name in ("presence", "box", "class")})
    return model


def student_targets(batch):
    """What the model trains on for a batch of canvases: your detector_targets on your parts."""
    return targets_fn(batch.boxes, batch.classes, batch.mask, heat_fn, box_fn, sigma_fn, size=batch.size)


compile_detector(model)
print(f"{model.count_params():,} parameters; outputs: {', '.join(model.output_names)}")
'''),
    ("train", '''
# 175 s of all cores' CPU time (the reference's budget): about 3 minutes on an idle 2-core laptop; a busy
# machine takes longer but trains as much. Under the autograder only a few seconds.
SECONDS = 175
if GRADING:
    model, history = training.train(5, model=model, encode=student_targets, epochs=1, canvases_per_epoch=128,
                                    validation=0, seed=SEED, progress=False)
else:
    model, history = training.train(5, model=model, encode=student_targets, seconds=SECONDS, clock="cpu",
                                    seed=SEED)
print(f"trained for {history.seconds:.0f} s ({history.cpu_seconds:.0f} s of CPU on {os.cpu_count()} cores): "
      f"{history.steps} steps, {len(history.history['loss'])} epochs of fresh canvases")
'''),
    common.HISTORY,
    ("md", '''
## 6. Your decoder

From the model's outputs to scored, labelled detections, on *your* parts (the lesson passes them):

1. `peaks_fn(heat, k=k)` (your `find_peaks`) on the presence map `outputs["presence"][..., 0]` `(n, G, G)`: the
   `k` best peaks of each canvas (row = col = -1 where there are fewer);
2. `cells_fn(outputs["box"])` (your `boxes_from_cells`): the box each cell predicts, `(n, G, G, 4)`; read at each
   peak and clip to the canvas, `[0, G * 8]`;
3. per canvas, `nms_fn(boxes, scores, iou_threshold)` (your `nms`) on the peaks' boxes and presence scores;
4. each kept peak is one detection: its class is the most probable at its cell (`outputs["class"]`), its score
   presence x that probability; drop those scoring below `min_score`.

**Exercise: `detect_digits`** (4 points). Return three lists with one array per canvas: boxes `(m, 4)`
float32, labels `(m,)` int64, scores `(m,)` float32, best score first (`np.argsort(-scores, kind="stable")`).
About 15 lines.
'''),
    ("solution:detect_digits", '''
def detect_digits(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Scored, labelled detections from a case-5 model's outputs.

    Args:
        outputs (dict): presence (n, G, G, 1), box (n, G, G, 4) distances in cells, class (n, G, G, 10).
        peaks_fn: ``peaks_fn(heat, k=)`` -> rows, cols, scores, each (n, k) (lesson 2's find_peaks).
        cells_fn: ``cells_fn(distances)`` -> xyxy pixels (n, G, G, 4) (lesson 1's boxes_from_cells).
        nms_fn: ``nms_fn(boxes, scores, iou_threshold)`` -> kept indices, best first (lesson 3's nms).
        k (int): peaks per canvas; iou_threshold (float): NMS's; min_score (float): the lowest score kept.

    Returns:
        (boxes, labels, scores): lists with one array per canvas: float32 (m, 4), int64 (m,), float32 (m,), best
        score first.
    """
    ### BEGIN SOLUTION
    heat = np.asarray(outputs["presence"])[..., 0]  # [n, G, G]
    probs = np.asarray(outputs["class"])  # [n, G, G, 10]
    rows, cols, scores = (np.asarray(a) for a in peaks_fn(heat, k=k))  # [n, k] each
    cell_boxes = np.asarray(cells_fn(outputs["box"]))  # [n, G, G, 4]
    boxes, labels, joint = [], [], []
    for i in range(len(heat)):
        found = rows[i] >= 0
        r, c, s = rows[i][found], cols[i][found], scores[i][found]
        b = np.clip(cell_boxes[i, r, c], 0, heat.shape[1] * 8)  # [m, 4]
        keep = np.asarray(nms_fn(b, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]  # [kept, 10]
        score = s[keep] * p.max(axis=-1)
        good = np.flatnonzero(score >= min_score)
        good = good[np.argsort(-score[good], kind="stable")]  # best first
        boxes.append(b[keep][good].astype(np.float32))
        labels.append(p.argmax(axis=-1)[good].astype(np.int64))
        joint.append(score[good].astype(np.float32))
    return boxes, labels, joint
    ### END SOLUTION
'''),
    ("test:detect_digits", '''
check_exercise("detect_digits", detect_digits)
### BEGIN HIDDEN TESTS
check_exercise("detect_digits", detect_digits, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
COCO *mAP* (.50:.95), *AP50* and *AP75* on held-out digits with *your* decoder on your parts, beside the
reference decoder (`mnistloc.decoder`), which adds two things: it averages the boxes and classes of the
agreeing cells around each peak (refinement), and it reports each peak under every class, scored presence x
that class's probability (an unsure digit is found under both labels). The *count accuracy* is the share of
canvases where the number of peaks scoring at least 0.5 is right.
'''),
    ("code", '''
def reference_detect(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """mnistloc's decoder on the same parts, without refinement, one label per peak (stands in for yours)."""
    found = decoder.detect(outputs, k=k, iou_threshold=iou_threshold, refine_boxes=False, peaks_fn=peaks_fn,
                           cells_fn=cells_fn, nms_fn=nms_fn)
    return decoder.detections(found, all_labels=False, min_score=min_score)


decode_fn = yours_or_reference(detect_digits, reference_detect, {"presence": np.zeros((1, 2, 2, 1)),
                               "box": np.zeros((1, 2, 2, 4)), "class": np.full((1, 2, 2, 10), 0.1)},
                               peaks_fn, cells_fn, nms_fn)
TARGETS = evaluation.TARGETS[5]  # what the reference model reaches in 175 s
scores, test, outputs = evaluation.evaluate(model, 5, n=200 if GRADING else 1000, return_predictions=True)
mine = metrics.mean_average_precision(*test.box_lists(), *decode_fn(outputs, peaks_fn, cells_fn, nms_fn))
print(f"{'':>15}  {'your decoder':>12}  {'reference decoder':>17}")
for name in ("map", "map50", "map75", "count_accuracy"):
    target = f"   target {TARGETS[name]:.3f}" if name in TARGETS else ""
    yours = f"{mine[name]:12.3f}" if name in mine else f"{'':12}"
    print(f"{name:>15}: {yours}  {scores[name]:17.3f}{target}")
'''),
    ("md", '''
## 7. NMS in a crowd

Every candidate is a 3x3 local maximum; in a crowd two digits' bumps merge and a large digit may show two
maxima, so NMS has real work: a threshold too low merges touching digits into one, too high keeps a digit
twice. The fullest test canvas before NMS, and after *your* NMS at IoU thresholds 0.2 and 0.7 (peaks scoring
at least 0.3).
'''),
    ("code", '''
def candidates(outputs, k=20):
    """Every peak with its box and score, before NMS: boxes (n, k, 4), scores (n, k); a missing peak scores 0."""
    heat = outputs["presence"][..., 0]
    rows, cols, found = peaks_fn(heat, k=k)
    rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)  # padding (-1) scores 0 anyway
    i = np.arange(len(heat))[:, None]
    boxes = np.clip(np.asarray(cells_fn(outputs["box"]))[i, rows, cols], 0, heat.shape[1] * 8)  # [n, k, 4]
    return boxes, np.asarray(found, np.float32)


boxes, peak_scores = candidates(outputs)
i = int(np.argmax(test.count))
shown = np.flatnonzero(peak_scores[i] >= 0.3)
for threshold in (0.2, 0.7):
    keep = nms_fn(boxes[i][shown], peak_scores[i][shown], threshold)
    fig = viz.nms_plot(test.images[i], boxes[i][shown], peak_scores[i][shown], keep)
    fig.axes[1].set_title(f"after NMS at {threshold}: {len(keep)} kept, {test.count[i]} digits", fontsize=9)
    plt.show()
'''),
    ("md", '''
### Choosing the threshold on validation canvases

Pick NMS's IoU threshold where it counts best, on canvases the model did not train on and that are not the
test canvases either: fresh canvases of the *training* digits. `nms_sweep.nms_keeps` runs your `nms` on every
canvas at each threshold and returns `keeps (T, n, k)`.

**Exercise: `choose_nms_threshold`** (3 points). A canvas's count at threshold `t` is the number of its
peaks that NMS kept (`keeps[t]`) *and* that score at least `min_score`. Return the threshold whose count is
right on the largest share of canvases (of equals, the first) and that share at every threshold (float64,
`(T,)`). About 4 lines.
'''),
    ("solution:choose_nms_threshold", '''
def choose_nms_threshold(keeps, scores, counts, thresholds, min_score=0.5):
    """The NMS IoU threshold whose count is right on the most canvases.

    Args:
        keeps (bool[T, n, k]): the peaks NMS kept at each threshold.
        scores (float[n, k]): the peaks' presence scores.
        counts (int[n]): the true number of digits on each canvas.
        thresholds (float[T]): the thresholds tried.
        min_score (float): the presence score that counts as a digit.

    Returns:
        (best, accuracy): best (float), the threshold with the highest count accuracy (the first of
        equals); accuracy (float64[T]), the share of canvases counted right at each threshold.
    """
    ### BEGIN SOLUTION
    counted = (np.asarray(keeps, bool) & (np.asarray(scores) >= min_score)).sum(axis=-1)  # [T, n]
    accuracy = (counted == np.asarray(counts)[None, :]).mean(axis=-1).astype(np.float64)  # [T]
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy
    ### END SOLUTION
'''),
    ("test:choose_nms_threshold", '''
check_exercise("choose_nms_threshold", choose_nms_threshold)
### BEGIN HIDDEN TESTS
check_exercise("choose_nms_threshold", choose_nms_threshold, secret=True)
### END HIDDEN TESTS
'''),
    ("code", '''
choose = yours_or_reference(choose_nms_threshold, nms_sweep.choose_nms_threshold, np.ones((1, 1, 1), bool),
                            np.ones((1, 1)), np.ones(1, np.int64), np.ones(1))
val = canvas.make_dataset(5, 100 if GRADING else 500, seed=55, split="train")  # training digits, fresh canvases
val_boxes, val_scores = candidates(evaluation.predict(model, val))
thresholds = np.array(nms_sweep.NMS_THRESHOLDS)
best, accuracy = choose(nms_sweep.nms_keeps(val_boxes, val_scores, thresholds, nms_fn=nms_fn), val_scores,
                        val.count, thresholds)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(thresholds, accuracy, "o-")
ax.axvline(best, color="red", ls="--", label=f"chosen: {best:.1f}")
ax.set(xlabel="NMS IoU threshold", ylabel="count accuracy (validation)", title="counting a crowd")
ax.legend()
plt.show()
chosen = metrics.mean_average_precision(*test.box_lists(), *decode_fn(outputs, peaks_fn, cells_fn, nms_fn,
                                                                      iou_threshold=best))
print(f"test mAP with your decoder: {mine['map']:.3f} at NMS 0.5, {chosen['map']:.3f} at the chosen {best:.1f}")
'''),
    ("md", '''
## 8. Which digits are missed?

A digit is found when a detection of your decoder covers it by IoU >= 0.5; *your* `match_detections` decides
(class agnostic here: every detection scoring at least 0.3, best first, against every true box). Recall by
size: small digits have `sqrt(w h)` under 16 pixels, large ones 24 or more (`nms_sweep.size_groups`).
'''),
    ("code", '''
det_boxes, det_labels, det_scores = decode_fn(outputs, peaks_fn, cells_fn, nms_fn)
hits, groups = [], []
for j in range(len(test)):
    truth = test.boxes[j][test.mask[j]]
    sure = det_scores[j] >= 0.3
    matched = match_fn(det_boxes[j][sure], det_scores[j][sure], truth, 0.5)  # [D] true index or -1
    hits.append(np.isin(np.arange(len(truth)), matched))
    groups.append(nms_sweep.size_groups(truth))
hits, groups = np.concatenate(hits), np.concatenate(groups)
recall = [hits[groups == g].mean() if (groups == g).any() else 0.0 for g in range(3)]
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(nms_sweep.SIZE_NAMES, recall, color=["#ff851b", "#0074d9", "#2ecc40"])
for g, r in enumerate(recall):
    ax.text(g, r, f"{r:.2f}\\n({(groups == g).sum()} digits)", ha="center", va="bottom", fontsize=8)
ax.set(ylim=(0, 1.15), ylabel="recall at IoU 0.5", title="found digits by size")
plt.show()
'''),
    ("md", '''
And AP50 of your decoder's detections with *your* `average_precision`, per class, as in lesson 4, beside
`mnistloc.metrics`' on the same detections.
'''),
    ("code", '''
truth = test.box_lists()


def class_detections(c, threshold=0.5):
    """Class c over all test canvases: scores (D,), matched (D,) bool, and the number of its true boxes."""
    s, m, num_true = [np.zeros(0)], [np.zeros(0, bool)], 0
    for tb, tl, pb, pl, ps in zip(*truth, det_boxes, det_labels, det_scores):
        t, p, sc = tb[tl == c], pb[pl == c], ps[pl == c]
        num_true += len(t)
        s.append(sc)
        m.append(match_fn(p, sc, t, threshold) >= 0)
    return np.concatenate(s), np.concatenate(m), num_true


present = [c for c in range(10) if any((labels == c).any() for labels in truth[1])]
aps = {c: ap_fn(*class_detections(c)) for c in present}
print(f"AP50 with your average_precision: {np.mean(list(aps.values())):.4f}   mnistloc.metrics: {mine['map50']:.4f}")
'''),
    ("md", '''
The worst test canvases (a wrong count first, then the loosest boxes), decoded by the reference decoder: what
goes wrong in a crowd?
'''),
    common.TAKE,
    ("code", '''
worst = np.argsort(evaluation.per_canvas_quality(5, test, outputs), kind="stable")[:8]
viz.sample_grid(take(test, worst), n=8, predictions=evaluation.picture_predictions(5, outputs, worst))
'''),
    *common.question("q_crowd_nms"),
    ("md", '''
### Which parts of this detector are yours

Every part the detector above was built, trained, decoded and scored with, and whose it was (a part of yours is
used when its check passes, or when you put it in `USE_MY_OWN`).
'''),
    ("code", '''
PARTS = {  # the part -> (what the lesson used, mnistloc's reference)
    "boxes_from_cells (lesson 1)": (cells_fn, decoder.boxes_from_cells),
    "heatmap_targets (lesson 2)": (heat_fn, targets.heatmap_targets),
    "box_targets (lesson 2)": (box_fn, targets.box_targets),
    "find_peaks (lesson 2)": (peaks_fn, decoder.find_peaks),
    "focal_loss (lesson 2)": (focal, losses.focal_loss),
    "iou_loss (lesson 3)": (box_iou_loss, losses.iou_loss),
    "nms (lesson 3)": (nms_fn, decoder.nms),
    "match_detections (lesson 4)": (match_fn, metrics.match_detections),
    "average_precision (lesson 4)": (ap_fn, metrics.average_precision),
    "bump_sigmas": (sigma_fn, targets.size_sigmas),
    "detector_targets": (targets_fn, reference_targets),
    "detect_digits": (decode_fn, reference_detect),
    "choose_nms_threshold": (choose, nms_sweep.choose_nms_threshold),
}
for part, (used, reference) in PARTS.items():
    print(f"{part:>30}: {'mnistloc reference' if used is reference else 'yours'}")
mine_count = sum(used is not reference for used, reference in PARTS.values())
print(f"{mine_count} of {len(PARTS)} parts of this detector are yours.")
'''),
    ("md", '''
## 9. The challenge: a better detector in the same budget

Improve the model within **175 s of CPU time** (`seconds=175, clock="cpu"` as above: the same amount of
training on any machine). Anything that keeps the contract below is allowed: a wider or deeper backbone
(`models.build_backbone(widths=...)`), other heads, other loss weights or learning rate, wider or narrower
bumps, batch size, canvases per epoch. Your leaderboard score is the mAP on hidden canvases made from the
instructor's secret seed, decoded by the reference decoder (`mnistloc.decoder.detect`).

The contract (`mnistloc leaderboard` checks it and refuses anything else): a model saved with
`model.save("model.keras")` that Keras loads in safe mode with built-in layers only (no `Lambda`, no custom
layers), taking canvases `(None, 128, 128)` of pixels 0-255 and returning outputs named `presence`
`(None, 16, 16, 1)` (sigmoid), `box` `(None, 16, 16, 4)` (distances in cells) and `class` `(None, 16, 16, 10)`
(softmax), under 32 MB.

To enter: change the cells of section 5 (and this lesson's training cell), run the notebook top to bottom,
and run the cell below. It saves `model.keras` next to this notebook, loads it back as the leaderboard will,
and checks the contract. Submit the notebook's folder with it.
'''),
    ("code", '''
from mnistloc.grading.model_child import CONTRACT, GRID, SIZE

path = Path("model.keras")
model.save(path)
saved = keras.saving.load_model(path, safe_mode=True, compile=False)  # no custom objects: as the leaderboard
shapes = {name: tuple(out.shape) for name, out in zip(saved.output_names, saved.outputs)}
want = {name: (None, GRID, GRID, channels) for name, channels in CONTRACT.items()}
assert tuple(saved.input_shape) == (None, SIZE, SIZE), (
    f"input {saved.input_shape}; the leaderboard needs {(None, SIZE, SIZE)}")
assert shapes == want, f"outputs {shapes}; the leaderboard needs {want}"
print(f"saved {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB): the leaderboard can score it")
'''),
    ("md", '''
## What to try next

* Where does the time go? Compare `history.steps` with a smaller backbone: more steps, or a bigger model?
* Make your `bump_sigmas` grow faster or slower with the digit and retrain: what happens to the small digits'
  recall, and to the large ones'?
* Add refinement to your decoder: average the boxes of the cells around each peak whose box agrees with the
  peak's (IoU >= 0.5), weighted by their presence, as `mnistloc.decoder.refine` does. How much mAP does it buy?
* The count could come from a threshold on the presence score other than 0.5: choose it on the validation
  canvases as you chose NMS's threshold.
* You have now built a dense one-stage detector end to end, from synthetic crowds to COCO mAP: the same parts,
  at a larger scale, are CenterNet and FCOS.
'''),
]
