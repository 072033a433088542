"""Which float types a model computes in: float32, or bfloat16 where the CPU has bfloat16 units.

Under Keras's ``mixed_bfloat16`` policy the layers compute in bfloat16 and keep
float32 weights; the case models' output layers stay float32
(``models.build_model``), so the outputs and the losses are float32 either way.
A CPU without bfloat16 units (flags ``avx512_bf16`` or ``amx_bf16``) emulates it,
slower than float32, so ``default_precision`` picks float32 there.
"""
from __future__ import annotations

import contextlib

import keras

PRECISIONS = ("float32", "mixed_bfloat16")
"""Dtype policies a case model can be built with (``keras.mixed_precision``)."""


def bfloat16_supported(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (flags ``avx512_bf16`` or ``amx_bf16``).

    Without them TensorFlow emulates bfloat16, which is slower than float32.
    """
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def default_precision() -> str:
    """``"mixed_bfloat16"`` where the CPU has bfloat16 units (``bfloat16_supported``), else ``"float32"``."""
    return "mixed_bfloat16" if bfloat16_supported() else "float32"


@contextlib.contextmanager
def precision_policy(name: str):
    """Layers made inside use the dtype policy ``name`` (one of ``PRECISIONS``); the old one comes back after."""
    if name not in PRECISIONS:
        raise ValueError(f"`precision` should be one of {PRECISIONS}. Got precision={name!r}.")
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
