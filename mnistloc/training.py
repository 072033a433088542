"""Training the case models: a feeder of fresh canvases, a time budget, saving and loading.

``train(case, seconds=...)`` builds the case's model (``mnistloc.models``),
feeds it canvases made on the fly from the training digits (new positions
and pairings every epoch, so the model never sees the same canvas twice;
making 5,000 canvases takes about 0.2 s) and stops cleanly when the time
budget or the epochs run out. The learning rate follows a cosine from its
start to zero over the budget (measured in time when the budget is time), so
the last steps are small whichever limit ends the run: with a fixed budget
this is worth more than any extra epoch.

Two facts measured on a 2-core CPU shaped this: Keras's NumPy-array input
stalled for up to 40 s at some epoch starts, which a ``keras.utils.PyDataset``
feeder removed; and ``jit_compile`` was slower, so it is off.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnistloc import canvas, decoding, evaluation, models  # noqa: E402

CANVASES_PER_EPOCH = 5000
VALIDATION = 500  # canvases from the training digits (the test digits stay for evaluation)
BATCH_SIZE = 64
LEARNING_RATE = 6e-3  # with the cosine to zero: better than 2e-3 and 4e-3 at 10 epochs
TRAINING_CANVASES = {3: {"case": 4, "mix": (0, 0, 1)}}
"""Case 3's model learns from canvases of two digits each: twice the digits a step for the
same compute. The dense model finds every digit where it is, so one digit at test time is just
fewer peaks; its class and box heads see twice the examples within the budget."""
WARMUP = 0.02
CLOCKS = ("wall", "cpu")  # fraction of the budget with a rising learning rate


class CanvasFeeder(keras.utils.PyDataset):
    """Batches of canvases and their dense targets, new canvases every epoch.

    Epoch ``e`` is ``canvas.make_dataset(case, n, seed=[seed, e])`` (or the same
    canvases every epoch with ``fresh=False``); targets are encoded per batch.

    Args:
        case: 1 to 4.
        n: canvases per epoch.
        batch_size: canvases per batch.
        seed: an int.
        split: where the digits come from.
        fresh: new canvases every epoch.
        outputs: the model's output names (which targets to yield).
        source: passed to ``make_dataset``.
        encode: ``encode(ds) -> {name: array}`` for a CanvasDataset slice; default
            ``decoding.encode_targets`` (the dense models' targets).
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
        self.encode = encode or _dense_targets
        self.epoch = 0
        self._make()

    def _make(self) -> None:
        make = dict(self.make)
        self.ds = canvas.make_dataset(make.pop("case"), self.n, seed=[self.seed, self.epoch], **make)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index: int):
        index = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.n))
        batch = evaluation.subset(self.ds, index)
        t = self.encode(batch)
        return batch.images.astype(np.float32), {name: t[name] for name in self.outputs}

    def on_epoch_end(self) -> None:
        if self.fresh:
            self.epoch += 1
            self._make()


def _dense_targets(ds) -> dict[str, np.ndarray]:
    if ds.case == 5:
        return ds.targets()  # scale-aware centre bumps (mnistloc.dense)
    return decoding.encode_targets(ds.boxes, ds.classes, ds.mask, size=ds.size)


class Budget(keras.callbacks.Callback):
    """Stops training after ``seconds`` (checked after every batch) and sets a cosine learning rate.

    The fraction of the budget used is ``max(elapsed / seconds, steps / total_steps)``
    over the limits given; the learning rate rises linearly over the first
    ``WARMUP`` of it, then follows ``0.5 * (1 + cos(pi * fraction))``.
    A tqdm bar shows the progress and the loss when ``progress`` is true.

    ``clock="wall"`` measures wall-clock seconds. ``clock="cpu"`` measures this
    process's CPU time divided by the machine's cores: "``seconds`` of every
    core", which on a machine shared with other jobs is the same amount of
    compute whatever they do (the wall time then grows instead).
    """

    def __init__(self, learning_rate: float, seconds: float | None = None, total_steps: int | None = None,
                 progress: bool = True, clock: str = "wall"):
        super().__init__()
        if clock not in CLOCKS:
            raise ValueError(f"`clock` should be one of {CLOCKS}. Got clock={clock!r}.")
        self.base, self.seconds, self.total_steps, self.progress = learning_rate, seconds, total_steps, progress
        self.clock = clock
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
        warm = min(f / WARMUP, 1.0)
        self.model.optimizer.learning_rate.assign(self.base * warm * 0.5 * (1 + math.cos(math.pi * f)))


def train(case: int, *, seconds: float | None = None, epochs: int | None = None, seed: int = 0,
          batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
          canvases_per_epoch: int = CANVASES_PER_EPOCH, validation: int = VALIDATION, source="auto",
          progress: bool = True, model: keras.Model | None = None, loss_weights: dict | None = None,
          encode=None, canvases: dict | None = None, clock: str = "wall", **sizes):
    """Trains the model of ``case`` for a time budget, a number of epochs, or whichever ends first.

    Args:
        case: 1 to 4.
        seconds: time budget for ``fit`` (validation included); None for no limit.
        epochs: passes of ``canvases_per_epoch`` fresh canvases; None for no limit.
            With neither given, ``seconds=180``.
        seed: seeds Keras, NumPy and TensorFlow (``keras.utils.set_random_seed``) and the canvases.
        batch_size: canvases per step.
        learning_rate: the peak learning rate (Adam).
        canvases_per_epoch: canvases per epoch.
        validation: canvases (training digits, another seed) scored after each epoch; 0 for none.
        source: the digits, as ``mnistloc.data.load_digits``.
        progress: show a progress bar.
        model: a model to train instead of a new one; compiled here unless it is already.
        loss_weights: overrides of ``models.LOSS_WEIGHTS``.
        encode: targets for another kind of model (see ``CanvasFeeder``); then ``model``
            must be given, compiled, and is not checked against the case.
        canvases: overrides of ``make_dataset``'s arguments for the training canvases;
            default ``TRAINING_CANVASES[case]`` for the dense models, else the case's own.
        clock: ``"wall"`` (wall-clock seconds) or ``"cpu"`` (seconds of all the machine's
            cores, from this process's CPU time: fair on a machine shared with other jobs).
        **sizes: passed to ``models.build_model`` (``widths``, ``hidden``).

    Returns:
        (model, history): the trained ``keras.Model`` and its ``keras.callbacks.History``
        (``history.history`` maps ``loss``, ``<output>_loss`` and their ``val_`` versions to
        one value per epoch; ``history.seconds`` is the wall-clock training time and
        ``history.cpu_seconds`` the process's CPU time during it).
    """
    if case not in models.ALL_CASES:
        raise ValueError(f"`case` should be one of {models.ALL_CASES}. Got case={case!r}.")
    for name, value in (("seconds", seconds), ("epochs", epochs)):
        if value is not None and not value > 0:
            raise ValueError(f"`{name}` should be > 0 or None. Got {name}={value!r}.")
    if seconds is None and epochs is None:
        seconds = 180.0
    keras.utils.set_random_seed(seed)
    if model is None:
        model = models.build_model(case, **sizes)
    if encode is None:
        check_case(model, case)
    if not getattr(model, "compiled", False):
        models.compile_model(model, learning_rate, loss_weights)
    if canvases is None and encode is None:
        canvases = TRAINING_CANVASES.get(case)
    feed = {"source": source, "outputs": model.output_names, "encode": encode, "canvases": canvases}
    feeder = CanvasFeeder(case, canvases_per_epoch, batch_size=batch_size, seed=seed, **feed)
    val = None
    if validation:
        val = CanvasFeeder(case, validation, batch_size=256, seed=seed + 10_000, fresh=False, **feed)
    budget = Budget(learning_rate, seconds, epochs * len(feeder) if epochs else None, progress, clock)
    history = model.fit(feeder, validation_data=val, epochs=epochs or 10_000, callbacks=[budget], verbose=0)
    history.seconds, history.cpu_seconds = budget.elapsed, budget.cpu
    return model, history


def model_case(model: keras.Model) -> int | None:
    """The case a model was built for (from its name ``case<N>``), or None."""
    name = getattr(model, "name", "")
    return int(name[4:]) if name.startswith("case") and name[4:] in ("1", "2", "3", "4", "5") else None


def check_case(model: keras.Model, case: int) -> None:
    """Raises ValueError unless ``model`` has the outputs of ``case``'s model."""
    names = tuple(getattr(model, "output_names", ()) or ())
    built = model_case(model)
    if set(names) != set(models.OUTPUTS[case]) or built not in (None, case):
        raise ValueError(f"This model does not fit case {case}: it was built for case {built} with outputs "
                         f"{sorted(names)}; case {case} needs outputs {sorted(models.OUTPUTS[case])}. "
                         f"Pass --case {built} or train a model for case {case}." if built else
                         f"This model does not fit case {case}: its outputs are {sorted(names)}; "
                         f"case {case} needs {sorted(models.OUTPUTS[case])}.")


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


def load_model(path) -> keras.Model:
    """Reads a model written by ``save_model`` (the losses are registered by ``mnistloc.models``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}: train one with `mnistloc train --case N --out DIR`.")
    return keras.models.load_model(path, custom_objects=models.CUSTOM_OBJECTS)
