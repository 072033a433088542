"""The shipped reference models: weights trained by ``bench/quality.py``, one file a case.

``mnistloc/weights/case<N>.weights.h5`` holds the weights of the case's model
trained on the seed whose score was the median of the benchmark's seeds, and
``case<N>.json`` says how (steps, seed, precision, the command) and what it
scored on the 2,000 test canvases when loaded here (float32). Made by one
command (the record's ``command`` gives the exact one; bit for bit on the same
machine and versions, since the budget is steps)::

    .venv/bin/python bench/quality.py --cases N --seeds 5 --steps 1500 --precision mixed_bfloat16 \
        --weights bench/logs/weights --install

and case 5 by ``bench/quality_case5.py`` (``run`` per seed, then ``install``).

Loading builds the model from its builder and reads only arrays from the file
(a ``.weights.h5`` has no configuration and no code), so a weights file cannot
run anything: stricter than Keras's safe mode, which guards ``.keras`` files.
"""
from __future__ import annotations

import json
from pathlib import Path

from mnistloc import cases

WEIGHTS = Path(__file__).resolve().parent / "weights"


def available() -> tuple[int, ...]:
    """The cases that have shipped weights."""
    return tuple(c for c in cases.ALL_CASES if (WEIGHTS / f"case{c}.weights.h5").is_file())


def record(case: int) -> dict:
    """How the weights of ``case`` were made, and their metrics on the test canvases (``metrics``)."""
    return json.loads((WEIGHTS / f"case{case}.json").read_text())


def model(case: int):
    """The reference model of ``case`` with its shipped weights.

    Args:
        case: 1 to 5.

    Returns:
        keras.Model: as ``models.build_model(case)`` (float32).

    Raises:
        ValueError: ``case`` is not 1 to 5.
        FileNotFoundError: no weights shipped for ``case``; the message says how to make them.
    """
    from mnistloc import models  # Keras: only when a model is asked for

    cases.get(case)
    path = WEIGHTS / f"case{case}.weights.h5"
    if not path.is_file():
        how = "bench/quality.py (cases 1-4) or bench/bump_width.py (case 5), as bench/README.md says"
        raise FileNotFoundError(f"No shipped weights for case {case} at {path}: make them with {how}.")
    net = models.build_model(case)
    net.load_weights(path)
    return net


def save_keras(case: int, path) -> Path:
    """Writes the shipped model of ``case`` as a ``.keras`` file (no optimizer), for tools that take one; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model(case).save(path)
    return path
