"""CPU cost of a training step of case 3's model, in float32 and in mixed_bfloat16, with and without op determinism.

    .venv/bin/python bench/precision.py float32 1          # precision, deterministic (1 or 0)
    .venv/bin/python bench/precision.py mixed_bfloat16 1

Trains for 30 and then 130 steps (two runs in one process) and prints the
process's CPU time of the extra 100 steps, per step: the first steps' tracing
cancels out. CPU time rather than wall time, because the machine is shared
(but a thread waiting for a core still counts some, so load inflates it).
One configuration a process: op determinism cannot be turned off once on.
"""
from __future__ import annotations

import json
import os
import sys

from mnistloc import training


def cpu_per_step(precision: str, deterministic: bool, few: int = 30, many: int = 130) -> float:
    """CPU seconds of one step of 64 canvases, from the difference of a short and a long run."""
    cpu = {}
    for steps in (few, many):
        _, history = training.train(3, steps=steps, precision=precision, deterministic=deterministic,
                                    validation=0, progress=False)
        cpu[steps] = history.cpu_seconds
    return (cpu[many] - cpu[few]) / (many - few)


if __name__ == "__main__":
    precision, deterministic = sys.argv[1], sys.argv[2] == "1"
    per_step = cpu_per_step(precision, deterministic)
    print(json.dumps({"precision": precision, "deterministic": deterministic,
                      "cpu_seconds_per_step": round(per_step, 4), "canvases_per_cpu_second": round(64 / per_step, 1),
                      "load": os.getloadavg(), "bfloat16_units": training.bfloat16_supported()}))
