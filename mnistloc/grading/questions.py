"""The lessons' written questions: answered in a markdown cell, graded by hand in formgrader.

A question's answer cell is an nbgrader *manually graded answer* (markdown,
``solution`` and ``grade`` true, ``points``), with ``grade_id`` = the
question's name (``solutions/build.py`` writes it). No code judges it: ``mnistloc
grade`` lists it with the status ``manual`` and 0 automatic points, and leaves
its score to the instructor in formgrader; ``mnistloc check`` does not score it.
The question's text is in the lesson, in the markdown cell just before.

Each question also holds its ``prompt`` (that markdown cell's text) and its
``model_answer`` (what the solution notebook's answer cell holds; the release
replaces it with "YOUR ANSWER HERE"), so that one place says both: the lesson
builder writes them, and ``mnistloc check --reveal QUESTION`` shows the model
answer to a self-learner who has written their own.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Question:
    """One written question: its ``name`` (the answer cell's grade id), ``lesson``, hand-graded ``points``, the
    ``prompt`` (markdown, the cell before the answer) and a ``model_answer`` (markdown)."""

    name: str
    lesson: str
    points: int
    prompt: str = ""
    model_answer: str = ""


QUESTIONS = (
    Question("q_classic_plateau", "01-single-digit", 2, prompt="""\
**Question** (2 points, graded by hand). The classic model of section 0 stalls far below the dense model, though
both see the same canvases. *First predict*, and write your prediction below before running the next cell:
is the classic model's mean IoU the same for digits near the canvas's centre and for digits near its edges? And
the dense model's? *Then run the cell after your answer*, which measures both on the test canvases, and explain
what you see in two to four sentences: what must a `Flatten` + `Dense` head learn for a digit at each position,
and what does a convolution share across positions instead?
""", model_answer="""\
(Numbers depend on the run.) The classic model is worse at the edges than near the centre (seed 0: mean IoU
0.54 near the centre, 0.36 at the edges), the dense model the same everywhere (0.89 and 0.89). The classic
model maps the flattened feature map to four coordinates through one big weight matrix: every position of the
digit uses different weights, so each position is learned only from the canvases with a digit there, and the
rare edge positions are learned worst; its boxes drift toward the average box. The dense model asks the same
local question in every cell with the same weights, so every canvas teaches every position; each cell only has
to find box sides a few pixels away, which a small receptive field does precisely.
"""),
    Question("q_tight_or_frame", "01-single-digit", 1, prompt="""\
**Question** (1 point, graded by hand). Why is the tight box a harder, and a more honest, target than the 28x28
frame box (`make_dataset(..., box="frame")`)? *First predict*, before running the next cell: a model that finds
every digit's *frame* perfectly, what mean IoU does it get against the tight boxes? And does a box one pixel
too wide lose more IoU on a tight box or on a frame box? *Then run the cell after your answer* and use its
numbers in your answer.
""", model_answer="""\
(About these numbers.) The perfect frame box scores a mean IoU of only about 0.25 against the tight boxes: a
"1" fills a few columns of its 28x28 frame. One pixel too wide costs a frame box about 0.035 of IoU, a tight box
about 0.1 on average (tight "1"s are about 10 px wide), and more on the thinnest. The frame box always has the same size and is fixed by where the digit was pasted, so a
model can score well by finding the frame's corner without looking at the ink; the tight box depends on the
ink, so the model must see the digit's extent, and IoU on it punishes small errors much more.
"""),
    Question("q_mask_on_empty", "02-presence", 2, prompt="""\
**Question** (2 points, graded by hand). *First predict*, and write your prediction below before running the
next cell: on a batch of empty canvases only, what does your `masked_box_loss` return, and what gradient does
the box head get from it? What would an unmasked L1 loss (every canvas counted, its placeholder `[0, 0, 0, 0]`
too) ask of the box head there? *Then run the cell after your answer*: it measures both losses and their
gradients on empty canvases, and the single box that each loss likes best over 1,000 canvases of this lesson (an
unmasked "training" of the simplest model there is: one constant box). Say, with its numbers, how an unmasked
loss would show in the boxes on canvases *with* digits.
""", model_answer="""\
(With the numbers of the cell.) On empty canvases the masked loss is 0 (the mask is 0 everywhere and the
denominator is clamped to 1) and its gradient is 0: the box head is neither pulled nor pushed. The unmasked L1
is about 0.5 there and its gradient is positive on all four numbers: it pulls every predicted box toward the
placeholder [0, 0, 0, 0], the top-left corner. Over all canvases the best constant box is the median of what the
loss compares: masked, a box around the middle of the canvas (about [0.3, 0.3, 0.7, 0.7] here); unmasked, the
empty third drags each coordinate down (its x1 and y1 fall toward 0.5 or below). A model trained unmasked would
draw boxes too small and shifted toward the origin on canvases with digits, and its IoU would fall.
"""),
    Question("q_confusions", "03-multi-class", 1, prompt="""\
**Question** (1 point, graded by hand). Name the pair of classes your model confuses most (from the matrix
above) and say, looking at the worst canvases, why those two digits are hard to tell apart.
""", model_answer="""\
(Depends on the run.) Typically 4 and 9, or 3 and 5, or 7 and 1: their strokes differ in a small region (an
open or closed top, a short bar), which a slanted or thin handwritten digit blurs; the box is right, the class
is the ambiguous part.
"""),
    Question("q_nms_removes_truth", "03-multi-class", 2, prompt="""\
**Question** (2 points, graded by hand). When does NMS remove a *true* digit? Describe a canvas where it
happens with an IoU threshold of 0.5, and say what a lower or a higher threshold would change.
""", model_answer="""\
When two true digits overlap (or sit so close that their boxes do) with IoU above the threshold, the box of
the weaker-scored digit is taken for a duplicate of the stronger one and dropped: a missed digit. Here digits
never overlap, so it happens only when a badly placed box of one digit covers the other. A lower threshold
drops more such near neighbours (more misses), a higher one keeps more duplicates (more false positives).
"""),
    Question("q_score_order", "04-multiple-digits", 1, prompt="""\
**Question** (1 point, graded by hand). Matching takes detections best score first. Why does the order
matter for AP? Give a case where matching in the given order instead would change the AP.
""", model_answer="""\
A true box can be matched only once. If a low-scored detection took it first, the high-scored detection on
the same digit would count as a false positive at the top of the ranking, lowering precision at every recall;
e.g. two boxes on one digit, scores 0.9 and 0.3, listed 0.3 first: in the given order AP drops from 1 to 0.5.
"""),
    Question("q_crowd_nms", "05-many-digits", 2, prompt="""\
**Question** (2 points, graded by hand). Two digits' frames may overlap by IoU up to 0.3 on these canvases.
Look at the two pictures above, NMS at 0.2 and at 0.7 on the fullest test canvas: what does NMS at 0.2 do to a
pair of close digits, and what does 0.7 do to a single large digit with two peaks? Count, in those pictures,
the digits each threshold loses or reports twice, then use your validation curve to say which mistake costs
more here.
""", model_answer="""\
At 0.2 the lower-scored digit of a pair whose boxes overlap by more than 0.2 is suppressed: a true digit is
removed and the count is one short. At 0.7 little is suppressed: a large digit whose bump has two local
maxima (or a peak next to it) keeps two boxes, counted twice. The curve is lowest at the high end when
duplicates are common and at the low end when crowded pairs are; its maximum (about 0.3 to 0.5 here) is where
the two errors balance.
"""),
)
