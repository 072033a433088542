"""CPU cost of a training step of a case's model, in float32 and in mixed_bfloat16, with and without op determinism.

    .venv/bin/python bench/precision.py float32 1          # precision, deterministic (1 or 0); case 3
    .venv/bin/python bench/precision.py mixed_bfloat16 1
    .venv/bin/python bench/precision.py mixed_bfloat16 1 5  # case 5 (canvases of 0-6 digits at any size)

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

from mnistloc import dtype_policy, training


def cpu_per_step(precision: str, deterministic: bool, few: int = 30, many: int = 130, case: int = 3) -> float:
    """CPU seconds of one step of 64 canvases of ``case``, from the difference of a short and a long run."""
    cpu = {}
    for steps in (few, many):
        _, history = training.train(case, steps=steps, precision=precision, deterministic=deterministic,
                                    validation=0, progress=False)
        cpu[steps] = history.cpu_seconds
    return (cpu[many] - cpu[few]) / (many - few)


if __name__ == "__main__":
    precision, deterministic = sys.argv[1], sys.argv[2] == "1"
    case = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    load_before = os.getloadavg()
    per_step = cpu_per_step(precision, deterministic, case=case)
    print(json.dumps({"case": case, "precision": precision, "deterministic": deterministic,
                      "cpu_seconds_per_step": round(per_step, 4), "canvases_per_cpu_second": round(64 / per_step, 1),
                      "load_before": load_before, "load": os.getloadavg(), "bfloat16_units": dtype_policy.bfloat16_supported()}))
