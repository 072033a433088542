"""Cells that every lesson shares: the setup cell, the dataset helper, training, evaluation, pictures."""


def setup(extra_imports: str = "") -> tuple:
    """The locked setup cell: install advice, imports, grading mode."""
    return ("setup", f'''
# Setup: run this cell first.
# This lesson needs the `mnistloc` package (it brings TensorFlow, Keras and nbgrader). Inside the course
# repository `make lab` installs it and opens JupyterLab. Anywhere else (Colab, another Jupyter), install the
# package as the course's README says (a wheel or the repository, with pip), then restart the kernel:
#     %pip install mnistloc-0.1.0-py3-none-any.whl     (or "mnistloc @ git+<the course repository's URL>")
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up logs quiet
try:
    import mnistloc
except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "This lesson needs the `mnistloc` package, which this kernel cannot import.\\n"
        "Install it as the course's README says and restart the kernel, e.g. in a notebook cell:\\n"
        "    %pip install mnistloc-0.1.0-py3-none-any.whl   (or \\"mnistloc @ git+<the course repository's URL>\\")\\n"
        "Inside the repository, `make lab` installs everything and opens the lessons."
    ) from None
import dataclasses

import keras
import matplotlib.pyplot as plt
import numpy as np

from mnistloc import boxes, canvas, data, decoder, evaluation, losses, metrics, models, targets, training, viz
from mnistloc.checks import check_exercise
{extra_imports}
GRADING = "NBGRADER_EXECUTION" in os.environ  # set by nbgrader's autograder: train for seconds, not minutes


def yours_or_reference(func, reference, *trial):
    """Your ``func`` if it runs on the arguments ``trial``, else (still ``NotImplementedError``) the reference.

    The lesson trains and evaluates with what this returns, and says which one it is.
    """
    try:
        func(*trial)
    except NotImplementedError:
        print(f"your {{func.__name__}} is not done yet: this lesson uses mnistloc's reference instead")
        return reference
    print(f"using your {{func.__name__}}")
    return func

print(f"mnistloc {{mnistloc.__version__}}, Keras {{keras.__version__}}"
      + (" (grading mode: short training)" if GRADING else ""))
''')


TAKE = ("code", '''
def take(ds, index):
    """The canvases ``index`` (int[k]) of a dataset, as a smaller dataset (for pictures)."""
    fields = ("images", "boxes", "mask", "classes", "count", "digit_ids")
    return dataclasses.replace(ds, **{f: getattr(ds, f)[index] for f in fields})
''')


def assemble(case: int, heads: dict) -> tuple:
    """The cell that builds the case's model from the backbone and ``heads`` (output name -> builder's name)."""
    heads = "{\n" + "".join(f"    {name!r}: {build},\n" for name, build in heads.items()).replace("'", '"') + "}"
    return ("code", f'''
def build_model(heads, size=128, widths=(16, 32, 64), hidden=64):
    """Backbone + heads: canvases (B, size, size) -> one named output per head."""
    backbone = models.build_backbone(size, widths)
    features = backbone.output  # (B, size / 8, size / 8, widths[-1])
    outputs = {{name: keras.layers.Identity(name=name)(build(widths[-1], hidden, name=name + "_head")(features))
               for name, build in heads.items()}}
    return keras.Model(backbone.input, outputs, name="case{case}")


SEED = 0  # the run's seed: starting weights and training canvases; change it to see how much a run varies
keras.utils.set_random_seed(SEED)
model = build_model({heads})
print(f"{{model.count_params():,}} parameters; outputs: {{', '.join(model.output_names)}}")
''')


def train(case: int, seconds: int, extra: str = "") -> tuple:
    """The training cell, tagged ``train``: ``seconds`` of all cores' CPU time (``clock="cpu"``: the wall time
    of an idle machine), a few seconds under the autograder; ``extra``: more arguments."""
    extra = f", {extra}" if extra else ""
    return ("train", f'''
# {seconds} s of all cores' CPU time: {seconds / 60:.1f} minutes on an idle laptop; a busy machine takes longer
# but trains as much. Under the autograder only a few seconds (the graded cells check your functions, not
# the trained model). The learning rate 2e-3 is gentler than the benchmark's: a short budget gives few warm-up
# steps, and a high rate can then silence the network for good (every loss stuck at its starting value).
if GRADING:
    model, history = training.train({case}, model=model, epochs=1, canvases_per_epoch=128, validation=0,
                                    seed=SEED, progress=False{extra})
else:
    model, history = training.train({case}, model=model, seconds={seconds}, clock="cpu", learning_rate=2e-3,
                                    seed=SEED{extra})
print(f"trained for {{history.seconds:.0f}} s ({{history.cpu_seconds:.0f}} s of CPU on {{os.cpu_count()}} cores): "
      f"{{len(history.history['loss'])}} epochs of fresh canvases")
''')


def evaluate(case: int, targets: dict) -> tuple:
    """The evaluation cell: the case's metrics on held-out digits, beside the reference targets."""
    return ("code", f'''
TARGETS = {targets!r}  # what the reference model reaches in 3 minutes
scores, test, outputs = evaluation.evaluate(model, {case}, n=200 if GRADING else 2000, return_predictions=True)
for name, value in scores.items():
    target = f"   target {{TARGETS[name]:.3f}}" if name in TARGETS else ""
    print(f"{{name:>18}}: {{value:.3f}}{{target}}")
''')


def pictures(case: int) -> list:
    """The best and the worst predictions on the test canvases."""
    return [("code", f'''
quality = evaluation.per_canvas_quality({case}, test, outputs)  # (n,) higher is better
best = np.argsort(-quality, kind="stable")[:8]
viz.sample_grid(take(test, best), n=8, predictions=evaluation.picture_predictions({case}, outputs, best))
'''), ("md", '''
And the worst ones: where does the model go wrong? Look before you read the numbers again.
'''), ("code", f'''
worst = np.argsort(quality, kind="stable")[:8]
viz.sample_grid(take(test, worst), n=8, predictions=evaluation.picture_predictions({case}, outputs, worst))
''')]


HISTORY = ("code", '''
viz.history_plot(history)  # loss per output, training (solid) and validation
''')


def question(name: str) -> list:
    """A written question: its prompt (markdown) and its answer cell with the model answer, graded by hand
    (``question:NAME``). Both texts are ``mnistloc.grading.questions``' (one home: ``--reveal`` shows the same)."""
    from mnistloc.grading.registry import QUESTIONS

    q = QUESTIONS[name]
    return [("md", q.prompt), (f"question:{name}", q.model_answer)]
