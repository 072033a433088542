"""Lesson 5: many digits at many sizes (case 5): scale_sigmas, choose_nms_threshold, and the open challenge."""
from lessons_src import common

LESSON = "05-many-digits"

CELLS = [
    ("md", '''
# Lesson 5: many digits, many sizes

**What you will build.** A detector for crowded canvases: zero to six digits, each scaled from 0.6 to 1.6
times its usual size, frames allowed to overlap. No slots and no count head: a canvas holds as many digits as
its presence map has peaks. You assemble it from the parts you wrote in lessons 1 to 4, add the two things
crowds need, train it, and then try to beat it in the class challenge.

**Why it matters.** The slot model of lesson 4 cannot count past two. Real detectors (CenterNet, FCOS) are
dense: every cell may report a digit, and non-maximum suppression (NMS) keeps one report per digit. In a crowd,
NMS's threshold decides whether two touching digits stay two, and a single bump width cannot fit both a small
digit and a large one.

**Plan.**
1. Your own functions from lessons 1 to 4, loaded from your earlier notebooks.
2. Heatmap bumps that grow with the digit (`scale_sigmas`), and a crowded scene's heatmap.
3. Train the detector with your targets and losses; evaluate with COCO mAP.
4. Your decoder (your peaks, your boxes from cells, your NMS), and NMS's threshold chosen on validation
   canvases (`choose_nms_threshold`).
5. Which digits are missed: recall by size.
6. The challenge: improve the model within a fixed training budget, save it, and submit it to the leaderboard.
'''),
    common.setup("from mnistloc import nms_sweep\n"),
    ("md", '''
## 1. Your functions from lessons 1 to 4

A notebook cannot import another notebook, so `from_lesson` reads the cell that defines a function in *your*
notebook of an earlier lesson (the folder next to this one, e.g. `../04-multiple-digits/04-multiple-digits.ipynb`)
and runs it here. It falls back to `mnistloc`'s reference, and says so, when that notebook is not there, the
function still raises `NotImplementedError` or fails on a small trial, and always under the autograder (which
grades this notebook alone). Its output says which one each part of this lesson uses.
'''),
    ("code", '''
import json
from pathlib import Path


def from_lesson(name, lesson, reference, *trial):
    """Your function ``name`` from your notebook of ``lesson`` if it runs on ``trial``, else ``reference``."""
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
                space[name](*trial)
                print(f"{name}: yours, from {path}")
                return space[name]
            except NotImplementedError:
                why = "yours is not done yet"
            except Exception as exc:  # a broken earlier answer should not stop this lesson
                why = f"yours fails on a small trial ({type(exc).__name__}: {exc})"
    print(f"{name}: mnistloc's reference ({why})")
    return reference


L1, L2, L3, L4 = "01-single-digit", "02-presence", "03-multi-class", "04-multiple-digits"
heat_fn = from_lesson("heatmap_targets", L2, targets.heatmap_targets, np.zeros((1, 1, 4)), np.zeros((1, 1), bool))
cells_fn = from_lesson("boxes_from_cells", L1, decoder.boxes_from_cells, np.zeros((1, 2, 2, 4), np.float32))
peaks_fn = from_lesson("find_peaks", L2, decoder.find_peaks, np.zeros((1, 3, 3)))
nms_fn = from_lesson("nms", L3, decoder.nms, np.zeros((1, 4)), np.ones(1))
focal = from_lesson("focal_loss", L2, losses.focal_loss, np.zeros((1, 2, 2, 1), np.float32),
                    np.full((1, 2, 2, 1), 0.5, np.float32))
box_iou_loss = from_lesson("iou_loss", L3, losses.iou_loss, np.ones((1, 5), np.float32), np.ones((1, 4), np.float32))
match_fn = from_lesson("match_detections", L4, metrics.match_detections, np.zeros((1, 4)), np.ones(1), np.zeros((1, 4)))
ap_fn = from_lesson("average_precision", L4, metrics.average_precision, np.ones(1), np.ones(1, bool), 1)
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

**Exercise: `scale_sigmas`** (2 points). The bump's width in cells for each box: the box's side as the
geometric mean `sqrt(w h)` of its width and height (0 for an inverted box: clip each side at 0), in cells (8
pixels a cell), divided by 6, and never below 0.5 cell. Boxes of any leading shape `(..., 4)`; float32. About
3 lines.
'''),
    ("solution:scale_sigmas", '''
def scale_sigmas(boxes):
    """The centre bump's width in cells for each box: max(0.5, sqrt(w h) / 8 / 6).

    Args:
        boxes (float[..., 4]): xyxy pixel boxes (unused slots: zeros).

    Returns:
        float32[...]: one width per box, in cells.
    """
    ### BEGIN SOLUTION
    b = np.asarray(boxes, dtype=np.float32)
    w, h = np.clip(b[..., 2] - b[..., 0], 0, None), np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, np.sqrt(w * h) / 8 / 6).astype(np.float32)
    ### END SOLUTION
'''),
    ("test:scale_sigmas", '''
check_exercise("scale_sigmas", scale_sigmas)
### BEGIN HIDDEN TESTS
check_exercise("scale_sigmas", scale_sigmas, secret=True)
### END HIDDEN TESTS
'''),
    ("md", '''
A crowded scene's targets: your `heatmap_targets` with one width (1 cell) above, the scale-aware bumps of
*your* `scale_sigmas` below. Look at the smallest digits next to a neighbour, and at the largest ones.
'''),
    ("code", '''
sigma_fn = yours_or_reference(scale_sigmas, targets.size_sigmas, np.zeros((1, 4)))
crowded = np.argsort(-ds.count, kind="stable")[:4]  # the fullest canvases
fixed = np.asarray(heat_fn(ds.boxes[crowded], ds.mask[crowded], size=128, stride=8, sigma=1.0))
scaled = targets.encode_targets(ds.boxes[crowded], ds.classes[crowded], ds.mask[crowded], sigma="size",
                                sigma_fn=sigma_fn)
viz.heatmap_plot(ds.images[crowded], {"one width": fixed, "scale-aware": scaled["presence"][..., 0]},
                 boxes=[ds.boxes[i][ds.mask[i]] for i in crowded], titles=[f"{ds.count[i]} digits" for i in crowded])
plt.show()
'''),
    ("md", '''
## 4. The detector and its training

The backbone and the three dense heads of lessons 1 to 3 (`models.build_model(5)`: presence, box and class
per 8x8 cell, no count head). It trains on *your* scale-aware heatmaps, the presence map with *your*
`focal_loss`, the boxes with the masked L1 plus *your* `iou_loss`. Each cell within one cell of a digit's centre
learns that digit's box distances and class, as your `box_targets` taught it; in a crowd a cell belongs to the
digit whose centre is nearest (as your `box_targets` decides).
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
    """What the model trains on for a batch of canvases: bumps as wide as your scale_sigmas says."""
    return targets.encode_targets(batch.boxes, batch.classes, batch.mask, size=batch.size, sigma="size",
                                  sigma_fn=sigma_fn)


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
## 5. Evaluation

COCO *mAP* (.50:.95), *AP50* and *AP75* on held-out digits, and the *count accuracy* (the share of canvases
where the number of peaks scoring at least 0.5 is right), decoded by `mnistloc.decoder.detect`: peaks, boxes
averaged over the agreeing cells around each peak, NMS at IoU 0.5.
'''),
    ("code", '''
TARGETS = evaluation.TARGETS[5]  # what the reference model reaches in 175 s
test = evaluation.test_dataset(5, n=200 if GRADING else 1000)
outputs = evaluation.predict(model, test)
scores = evaluation.score(5, test, outputs)
for name, value in scores.items():
    target = f"   target {TARGETS[name]:.3f}" if name in TARGETS else ""
    print(f"{name:>15}: {value:.3f}{target}")
'''),
    ("md", '''
## 6. Your decoder, and NMS in a crowd

Now the same outputs through *your* parts: `find_peaks` on the presence map, `boxes_from_cells` at each peak,
then `nms` per canvas. Every candidate is a 3x3 local maximum; in a crowd two digits' bumps merge and a large
digit may show two maxima, so NMS has real work: a threshold too low merges touching digits into one, too high
keeps a digit twice.
'''),
    ("code", '''
def candidates(outputs, k=20):
    """Every peak with its box, score and class probabilities, before NMS: boxes (n, k, 4), scores (n, k),
    probs (n, k, 10); a missing peak scores 0."""
    heat = outputs["presence"][..., 0]
    rows, cols, found = peaks_fn(heat, k=k)
    rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)  # padding (-1) scores 0 anyway
    i = np.arange(len(heat))[:, None]
    boxes = np.clip(np.asarray(cells_fn(outputs["box"]))[i, rows, cols], 0, heat.shape[1] * 8)  # [n, k, 4]
    return boxes, np.asarray(found, np.float32), outputs["class"][i, rows, cols]


def your_map(ds, outputs, iou_threshold=0.5):
    """COCO AP of your decoder: each kept peak under every class, scored presence x class probability."""
    boxes, peak_scores, probs = candidates(outputs)
    kept = nms_sweep.nms_keeps(boxes, peak_scores, [iou_threshold], nms_fn=nms_fn)[0]
    found = {"boxes": boxes, "scores": peak_scores, "probs": probs, "kept": kept}
    return metrics.mean_average_precision(*ds.box_lists(), *decoder.detections(found))


print(f"your decoder: mAP {your_map(test, outputs)['map']:.3f}; the reference decoder "
      f"(boxes averaged around each peak): {scores['map']:.3f}")
'''),
    ("md", '''
The fullest test canvas before NMS, and after NMS at IoU thresholds 0.2 and 0.7 (peaks scoring at least 0.3).
'''),
    ("code", '''
boxes, peak_scores, _ = candidates(outputs)
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
val_boxes, val_scores, _ = candidates(evaluation.predict(model, val))
thresholds = np.array(nms_sweep.NMS_THRESHOLDS)
best, accuracy = choose(nms_sweep.nms_keeps(val_boxes, val_scores, thresholds, nms_fn=nms_fn), val_scores, val.count,
                        thresholds)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(thresholds, accuracy, "o-")
ax.axvline(best, color="red", ls="--", label=f"chosen: {best:.1f}")
ax.set(xlabel="NMS IoU threshold", ylabel="count accuracy (validation)", title="counting a crowd")
ax.legend()
plt.show()
chosen = your_map(test, outputs, best)
print(f"test mAP with your decoder: {your_map(test, outputs)['map']:.3f} at NMS 0.5, {chosen['map']:.3f} at the "
      f"chosen {best:.1f}")
'''),
    ("md", '''
## 7. Which digits are missed?

A digit is found when a kept detection covers it by IoU >= 0.5; *your* `match_detections` decides (class
agnostic here: every kept peak, best first, against every true box). Recall by size: small digits have
`sqrt(w h)` under 16 pixels, large ones 24 or more (`nms_sweep.size_groups`).
'''),
    ("code", '''
found = decoder.detect(outputs)
hits, groups = [], []
for j in range(len(test)):
    truth = test.boxes[j][test.mask[j]]
    kept = found["kept"][j] & (found["scores"][j] >= 0.3)
    matched = match_fn(found["boxes"][j][kept], found["scores"][j][kept], truth, 0.5)  # [D] true index or -1
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
And AP50 with *your* `average_precision`, per class, as in lesson 4, beside the reference's.
'''),
    ("code", '''
det = decoder.detections(found)
truth = test.box_lists()


def class_detections(c, threshold=0.5):
    """Class c over all test canvases: scores (D,), matched (D,) bool, and the number of its true boxes."""
    s, m, num_true = [np.zeros(0)], [np.zeros(0, bool)], 0
    for tb, tl, pb, pl, ps in zip(*truth, *det):
        t, p, sc = tb[tl == c], pb[pl == c], ps[pl == c]
        num_true += len(t)
        s.append(sc)
        m.append(match_fn(p, sc, t, threshold) >= 0)
    return np.concatenate(s), np.concatenate(m), num_true


present = [c for c in range(10) if any((labels == c).any() for labels in truth[1])]
aps = {c: ap_fn(*class_detections(c)) for c in present}
print(f"AP50 with your average_precision: {np.mean(list(aps.values())):.4f}   mnistloc.metrics: {scores['map50']:.4f}")
'''),
    ("md", '''
The worst test canvases (a wrong count first, then the loosest boxes): what goes wrong in a crowd?
'''),
    common.TAKE,
    ("code", '''
worst = np.argsort(evaluation.per_canvas_quality(5, test, outputs), kind="stable")[:8]
viz.sample_grid(take(test, worst), n=8, predictions=evaluation.picture_predictions(5, outputs, worst))
'''),
    *common.question("q_crowd_nms", '''
**Question** (2 points, graded by hand). Two digits' frames may overlap by IoU up to 0.3 on these canvases.
What does NMS at an IoU threshold of 0.2 do to such a pair, and what does a threshold of 0.9 do to a single
large digit? Use your validation curve to say which mistake costs more here.
''', '''
At 0.2 the lower-scored digit of a pair whose boxes overlap by more than 0.2 is suppressed: a true digit is
removed and the count is one short. At 0.9 almost nothing is suppressed: a large digit whose bump has two local
maxima (or a peak next to it) keeps two boxes, counted twice. The curve is lowest at the high end when
duplicates are common and at the low end when crowded pairs are; its maximum (about 0.3 to 0.5 here) is where
the two errors balance.
'''),
    ("md", '''
## 8. The challenge: a better detector in the same budget

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

To enter: change the cells of section 4 (and this lesson's training cell), run the notebook top to bottom,
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
* Change `scale_sigmas`' divisor (6) to 4 or 10 and retrain: what happens to the small digits' recall?
* The count could come from a threshold on the presence score other than 0.5: choose it on the validation
  canvases as you chose NMS's threshold.
* You have now built a dense one-stage detector end to end, from synthetic crowds to COCO mAP: the same parts,
  at a larger scale, are CenterNet and FCOS.
'''),
]
