"""Training the case models: a feeder of fresh canvases, a budget, saving and loading.

``train(case, TrainConfig(steps=...))`` (or ``train(case, seconds=...)``) builds
the case's model (``mnistloc.models``), feeds it canvases made on the fly from
the training digits (new positions and pairings every epoch, so the model never
sees the same canvas twice; making 5,000 canvases takes about 0.2 s) and stops
cleanly when the budget runs out: steps, epochs, or seconds on a clock. The
learning rate warms up over ``WARMUP_STEPS`` steps, then follows a cosine to
zero over the budget, so the last steps are small whichever limit ends the
run: with a fixed budget this is worth more than any extra epoch.

Reproducible runs: the same seed and the same ``steps`` (or ``epochs``) give
the same weights bit for bit (seeded Keras, NumPy and TensorFlow, TensorFlow's
op determinism, canvases seeded per epoch). A clock budget cannot promise that:
load on the machine changes how many steps fit in it. Benchmarks budget in
steps; lessons and the CLI in seconds.

Two facts measured on a 2-core CPU shaped this: Keras's NumPy-array input
stalled for up to 40 s at some epoch starts, which a ``keras.utils.PyDataset``
feeder removed; and ``jit_compile`` was slower, so it is off.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnistloc import _quiet, canvas, cases, evaluation, losses, models, targets  # noqa: E402
from mnistloc.dtype_policy import PRECISIONS, default_precision, precision_policy  # noqa: E402


# Each model trained in a process gets its own train function, traced once, which TensorFlow counts as
# retracing after five models: keep its warning out (done at TensorFlow's import too, unless it came first).
_quiet.silence_retracing()

CANVASES_PER_EPOCH = 5000
VALIDATION = 500  # canvases from the training digits (the test digits stay for evaluation)
BATCH_SIZE = 64
LEARNING_RATE = 6e-3  # with the cosine to zero: better than 2e-3 and 4e-3 at 10 epochs
TRAINING_CANVASES = {3: {"case": 4, "mix": (0, 0, 1)}}
"""Case 3's model learns from canvases of two digits each: twice the digits a step for the
same compute. The dense model finds every digit where it is, so one digit at test time is just
fewer peaks; its class and box heads see twice the examples within the budget."""
WARMUP_STEPS = 300
"""Steps over which the learning rate rises linearly to its peak. Counted in steps, not in the budget's clock:
a warm-up of 2% of a 175 s budget was eaten by the first step's tracing (3 s of CPU), so Adam took its
first steps at 2.6e-3 .. 6e-3 and on unlucky seeds silenced most ReLU channels for good (case 3, seed 5:
94% of ``stage2``'s channels and of the class head's never positive after 80 steps, class accuracy at chance)."""
CLOCKS = ("wall", "cpu")
DEFAULT_SECONDS = 180.0  # the budget when none is given
STALL_CHECK_STEPS = 200
"""Runs of at least this many steps are checked for a model left at chance (``history.stalled``)."""
CHANCE = {"class_accuracy": 0.2, "mean_iou": 0.1, "map50": 0.05}
"""A trained model scoring below any of these on training canvases is flagged as stalled: twice chance for
ten classes; a box that barely touches the digit; almost no digit found."""


class CanvasFeeder(keras.utils.PyDataset):
    """Batches of canvases and their dense targets, new canvases every epoch.

    Epoch ``e`` is ``canvas.make_dataset(case, n, seed=[seed, e])`` (or the same
    canvases every epoch with ``fresh=False``); targets are encoded per batch.

    Args:
        case: 1 to 5.
        n: canvases per epoch.
        batch_size: canvases per batch.
        seed: an int.
        split: where the digits come from.
        fresh: new canvases every epoch.
        outputs: the model's output names (which targets to yield).
        source: passed to ``make_dataset``.
        encode: ``encode(ds) -> {name: array}`` for a CanvasDataset slice; default
            ``detector_targets`` (the detector's per-cell maps).
        canvases: overrides of ``make_dataset``'s arguments, e.g. ``{"case": 4, "mix": (0, 0, 1)}``
            for canvases of two digits each.

    Each item is ``(images float32 (B, 128, 128), {name: target})``.
    """

    def __init__(self, case: int, n: int, *, batch_size: int = BATCH_SIZE, seed: int = 0, split: str = "train",
                 fresh: bool = True, outputs=None, source="auto", encode=None, canvases: dict | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.case, self.n, self.batch_size, self.seed = case, n, batch_size, seed
        self.split, self.fresh, self.source = split, fresh, source
        self.make = {"case": case, "split": split, "source": source, **(canvases or {})}
        self.outputs = tuple(outputs or models.OUTPUTS[case])
        self.encode = encode or detector_targets
        self.epoch = 0
        self._make()

    def _make(self) -> None:
        make = dict(self.make)
        self.ds = canvas.make_dataset(make.pop("case"), self.n, seed=[self.seed, self.epoch], **make)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index: int):
        index = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.n))
        batch = canvas.subset(self.ds, index)
        t = self.encode(batch)
        return batch.images.astype(np.float32), {name: t[name] for name in self.outputs}

    def on_epoch_end(self) -> None:
        if self.fresh:
            self.epoch += 1
            self._make()


def detector_targets(ds, sigma: str | None = None) -> dict[str, np.ndarray]:
    """The per-cell maps the case's detector trains on (``targets.encode_targets``), as its spec says.

    Args:
        ds: a CanvasDataset.
        sigma: the bump-width policy (``"fixed"`` or ``"size"``); None for the case's own (``cases.Case.sigma``).
    """
    spec = cases.get(ds.case)
    return targets.encode_targets(ds.boxes, ds.classes, ds.mask, size=ds.size, sigma=sigma or spec.sigma,
                                  max_count=spec.slots if spec.count_head else None)


class Budget(keras.callbacks.Callback):
    """Stops training after ``seconds`` (checked after every batch) and sets a cosine learning rate.

    The fraction of the budget used is ``max(elapsed / seconds, steps / total_steps)``
    over the limits given; the learning rate is the peak times
    ``min(1, (step + 1) / warmup_steps)`` (a linear warm-up over the first
    steps, whatever the clock) times ``0.5 * (1 + cos(pi * fraction))``.
    A tqdm bar shows the progress and the loss when ``progress`` is true.

    ``clock="wall"`` measures wall-clock seconds. ``clock="cpu"`` measures this
    process's CPU time divided by the machine's cores: "``seconds`` of every
    core", which on a machine shared with other jobs is the same amount of
    compute whatever they do (the wall time then grows instead).
    """

    def __init__(self, learning_rate: float, seconds: float | None = None, total_steps: int | None = None,
                 progress: bool = True, clock: str = "wall", warmup_steps: int = WARMUP_STEPS):
        super().__init__()
        if clock not in CLOCKS:
            raise ValueError(f"`clock` should be one of {CLOCKS}. Got clock={clock!r}.")
        self.base, self.seconds, self.total_steps, self.progress = learning_rate, seconds, total_steps, progress
        self.clock, self.warmup_steps = clock, max(int(warmup_steps), 1)
        self.steps, self.start, self.start_cpu, self.elapsed, self.cpu, self.bar = 0, None, None, 0.0, 0.0, None

    def used_seconds(self) -> float:
        """Seconds of the budget used so far, on this budget's clock."""
        if self.clock == "cpu":
            return (time.process_time() - self.start_cpu) / (os.cpu_count() or 1)
        return time.perf_counter() - self.start

    def fraction(self) -> float:
        used = [0.0]
        if self.seconds:
            used.append(self.used_seconds() / self.seconds)
        if self.total_steps:
            used.append(self.steps / self.total_steps)
        return min(max(used), 1.0)

    def on_train_begin(self, logs=None):
        self.start, self.start_cpu = time.perf_counter(), time.process_time()
        if self.progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=1000, desc="training", bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        self._set_rate(0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        f = self.fraction()
        self._set_rate(f)
        if self.bar is not None:
            self.bar.update(int(1000 * f) - self.bar.n)
            if logs and self.steps % 10 == 0:
                self.bar.set_postfix(loss=f"{float(logs.get('loss', float('nan'))):.3f}")
        if f >= 1.0:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed = time.perf_counter() - self.start
        self.cpu = time.process_time() - self.start_cpu
        if self.bar is not None:
            self.bar.close()

    def _set_rate(self, f: float) -> None:
        warm = min((self.steps + 1) / self.warmup_steps, 1.0)  # the rate of the next step
        self.model.optimizer.learning_rate.assign(self.base * warm * 0.5 * (1 + math.cos(math.pi * f)))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train a case model: the budget, the optimiser, the canvases.

    Budget (whichever limit comes first ends the run; with none given, ``DEFAULT_SECONDS``):

    Attributes:
        steps: optimiser steps (batches); reproducible whatever the machine's load.
        epochs: passes of ``canvases_per_epoch`` fresh canvases.
        seconds: time for ``fit`` (validation included), on ``clock``.
        clock: ``"wall"`` (wall-clock seconds) or ``"cpu"`` (seconds of all the machine's cores,
            from this process's CPU time: the same compute on a machine shared with other jobs).

    Optimisation:

    Attributes:
        seed: seeds Keras, NumPy and TensorFlow (``keras.utils.set_random_seed``) and the canvases.
        learning_rate: the peak learning rate (Adam).
        warmup_steps: steps of the linear warm-up (``WARMUP_STEPS``).
        batch_size: canvases per step.
        loss_weights: overrides of ``losses.LOSS_WEIGHTS`` by output name.
        precision: the model's dtype policy when ``train`` builds it: ``"float32"``,
            ``"mixed_bfloat16"``, or ``"auto"`` (``default_precision()``: bfloat16 where the CPU
            has bfloat16 units). The outputs and the losses are float32 either way.
        deterministic: TensorFlow's op determinism (``tf.config.experimental.enable_op_determinism``),
            for runs that must be repeatable bit for bit; None: on when the budget is steps or
            epochs only (a clock budget is not repeatable anyway). It costs: a float32 step of the
            case-3 model took 0.199 s of CPU with it and 0.110 s without (2 cores, load 19-24), and
            once on it stays on in the process.

    Canvases:

    Attributes:
        canvases_per_epoch: canvases per epoch.
        validation: canvases (training digits, another seed) scored after each epoch; 0 for none.
        source: the digits, as ``mnistloc.data.load_digits``.
        canvases: overrides of ``make_dataset``'s arguments for the training canvases; None:
            ``TRAINING_CANVASES[case]`` for the dense models, else the case's own.
        sigma: the bump-width policy of the detector's targets, ``"fixed"`` or ``"size"``
            (``mnistloc.targets``); None for the case's own (``cases.Case.sigma``).
    """

    steps: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    clock: str = "wall"
    seed: int = 0
    learning_rate: float = LEARNING_RATE
    warmup_steps: int = WARMUP_STEPS
    batch_size: int = BATCH_SIZE
    loss_weights: dict | None = None
    precision: str = "auto"
    deterministic: bool | None = None
    canvases_per_epoch: int = CANVASES_PER_EPOCH
    validation: int = VALIDATION
    source: str = "auto"
    canvases: dict | None = None
    sigma: str | None = None

    def __post_init__(self):
        for name in ("steps", "epochs", "seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"`{name}` should be > 0 or None. Got {name}={value!r}.")
        if self.clock not in CLOCKS:
            raise ValueError(f"`clock` should be one of {CLOCKS}. Got clock={self.clock!r}.")
        if self.precision not in ("auto",) + PRECISIONS:
            raise ValueError(f"`precision` should be 'auto' or one of {PRECISIONS}. Got precision={self.precision!r}.")

    @property
    def time_limit(self) -> float | None:
        """``seconds``; with no budget at all, ``DEFAULT_SECONDS``."""
        none = self.steps is None and self.epochs is None and self.seconds is None
        return DEFAULT_SECONDS if none else self.seconds

    def resolved_precision(self) -> str:
        """``precision``, with ``"auto"`` replaced by what this CPU does best."""
        return default_precision() if self.precision == "auto" else self.precision


SIZES = ("widths", "hidden", "size")
"""Keywords of ``train`` that go to ``models.build_model`` rather than to ``TrainConfig``."""


def train(case: int, config: TrainConfig | None = None, *, model: keras.Model | None = None, encode=None,
          progress: bool = True, **changes):
    """Trains the model of ``case`` within the budget of ``config``.

    Args:
        case: 1 to 5.
        config: a ``TrainConfig``; None for the defaults.
        model: a model to train instead of a new one; compiled here unless it is already.
        encode: targets for another kind of model (see ``CanvasFeeder``); then ``model``
            must be given, compiled, and is not checked against the case.
        progress: show a progress bar.
        **changes: fields of ``TrainConfig`` to change (``train(3, steps=500, seed=1)``), and
            ``widths``, ``hidden``, ``size`` for ``models.build_model``.

    Returns:
        (model, history): the trained ``keras.Model`` and its ``keras.callbacks.History``
        (``history.history`` maps ``loss``, ``<output>_loss`` and their ``val_`` versions to
        one value per epoch; ``history.seconds`` is the wall-clock training time,
        ``history.cpu_seconds`` the process's CPU time during it, ``history.steps`` the steps taken,
        ``history.config`` the ``TrainConfig``; after ``STALL_CHECK_STEPS`` steps or more,
        ``history.stalled`` says whether the model was left at chance (``health_check``, which
        also warns) and ``history.health`` holds its scores).

    Raises:
        ValueError: an unknown case, a budget <= 0, an unknown clock or precision.
        TypeError: a keyword that is neither a ``TrainConfig`` field nor a size.
    """
    cases.get(case)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(changes) - fields - set(SIZES)
    if unknown:
        raise TypeError(f"train() got unknown keywords {sorted(unknown)}: expected fields of TrainConfig "
                        f"{sorted(fields)} or model sizes {SIZES}.")
    sizes = {k: changes.pop(k) for k in SIZES if k in changes}
    config = dataclasses.replace(config or TrainConfig(), **changes)
    deterministic = config.time_limit is None if config.deterministic is None else config.deterministic
    seed_everything(config.seed, deterministic=deterministic)
    if model is None:
        with precision_policy(config.resolved_precision()):
            model = models.build_model(case, **sizes)
    if encode is None:
        models.check_case(model, case)
    if not getattr(model, "compiled", False):
        models.compile_model(model, config.learning_rate, config.loss_weights)
    canvases = config.canvases
    if canvases is None and encode is None:
        canvases = TRAINING_CANVASES.get(case)
    if encode is None and config.sigma is not None:
        encode = functools.partial(detector_targets, sigma=config.sigma)
    feed = {"source": config.source, "outputs": model.output_names, "encode": encode, "canvases": canvases}
    feeder = CanvasFeeder(case, config.canvases_per_epoch, batch_size=config.batch_size, seed=config.seed, **feed)
    val = None
    if config.validation:
        val = CanvasFeeder(case, config.validation, batch_size=256, seed=config.seed + 10_000, fresh=False, **feed)
    limits = [n for n in (config.steps, config.epochs and config.epochs * len(feeder)) if n]
    seconds = config.time_limit
    budget = Budget(config.learning_rate, seconds, min(limits) if limits else None, progress, config.clock,
                    config.warmup_steps)
    epochs = config.epochs or (math.ceil(config.steps / len(feeder)) if config.steps and not seconds else 10_000)
    history = model.fit(feeder, validation_data=val, epochs=epochs, callbacks=[budget], verbose=0)
    history.seconds, history.cpu_seconds, history.steps = budget.elapsed, budget.cpu, budget.steps
    history.config, history.health, history.stalled = config, {}, False
    if encode is None and budget.steps >= STALL_CHECK_STEPS:
        history.health, history.stalled = health_check(model, case, seed=config.seed, source=config.source)
    return model, history


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seeds Python, NumPy and TensorFlow; with ``deterministic``, makes TensorFlow's ops deterministic.

    Op determinism makes the same seed and the same steps give the same weights, bit for bit, on
    the same machine and versions; TensorFlow cannot turn it off again in the process.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def health_check(model: keras.Model, case: int, *, n: int = 256, seed: int = 0, source="auto"):
    """Scores ``model`` on ``n`` canvases of training digits and warns if it sits at chance.

    Returns:
        (scores, stalled): the case's metrics (``mnistloc.evaluation.score``) and whether any of
        them is below its ``CHANCE`` level; a stalled model also raises a ``RuntimeWarning``
        naming the metrics, so that a run that went wrong is never silent.
    """
    ds = canvas.make_dataset(case, n, seed=[seed, 20_000], split="train", source=source)
    scores = evaluation.score(case, ds, evaluation.predict(model, ds))
    low = {k: round(v, 3) for k, v in scores.items() if k in CHANCE and v < CHANCE[k]}
    if low:
        warnings.warn(f"Training left the case {case} model at chance: {low} on {n} training canvases "
                      f"(flagged below {CHANCE}). Train again with a lower learning rate or a longer budget; "
                      f"the history says `stalled=True`.", RuntimeWarning, stacklevel=3)
    return scores, bool(low)


def save_model(model: keras.Model, path, *, force: bool = False) -> Path:
    """Writes ``model`` to a ``.keras`` file; refuses to replace one unless ``force``."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"`path` should end in .keras. Got {str(path)!r}.")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_model(path, compile: bool = True) -> keras.Model:
    """Reads a model written by ``save_model`` (the losses are registered by ``mnistloc.models``).

    ``compile=False`` reads it for predictions only, without its losses: a
    model compiled with functions of a notebook (lesson 5's challenge) loads too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}: train one with `mnistloc train --case N --out DIR`.")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ValueError(f"`path` should be a .keras file (a zip archive, as model.save writes it). Got {path}.")
    return keras.models.load_model(path, custom_objects=losses.CUSTOM_OBJECTS, compile=compile)
