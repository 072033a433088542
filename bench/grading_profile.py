"""Where `mnistloc grade` spends its time on one student's lessons, phase by phase and exercise by exercise.

Calls the steps of ``mnistloc.grading.grade.grade_student`` one at a time on
the correct submission that ``bench/grading.py`` builds (every lesson in
``solutions/``, every answer the reference solution): reading each notebook
and making its cases (``judge.read_answers``, ``judge.plan``), the sandbox
child for all the lessons at once (as ``grade`` runs it), a child for one numpy exercise (the
child's own start-up) and one child per lesson, then judging each exercise in
this process under cProfile. Prints and writes the wall seconds of each
phase, this process's CPU time and the load before and after.

    .venv/bin/python bench/grading_profile.py bench/logs/grading_profile.json
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grading as gb  # noqa: E402  (bench/grading.py: the solo submission)

from mnistloc.grading import judge, sandbox  # noqa: E402
from mnistloc.grading.registry import EXERCISES, hidden_seed  # noqa: E402


def _timed(record: dict, key: str, func, *args, **kwargs):
    start = time.perf_counter()
    value = func(*args, **kwargs)
    record[key] = round(time.perf_counter() - start, 3)
    return value


def main(out: Path) -> dict:
    course = Path(tempfile.mkdtemp(prefix="mnistloc-grading-profile-")) / "solo"
    course.mkdir()
    gb.solo_submission(course)
    seed = hidden_seed(int(gb.SEED), "solo")
    result, per = {"load_before": os.getloadavg()}, {}
    start, cpu = time.perf_counter(), time.process_time()
    plans = {}
    for lesson in gb.LESSONS:
        path = course / "submitted" / "solo" / lesson / f"{lesson}.ipynb"
        answers = _timed(per, f"read {lesson}", judge.read_answers, path, lesson=lesson)
        for name in answers.exercises:
            _timed(per, f"cases {name}", EXERCISES[name].cases, seed)
        plans[lesson] = _timed(per, f"plan {lesson}", judge.plan, answers, seed)
    sources = {n: s for p in plans.values() for n, s in p.sources.items()}
    calls = [c for p in plans.values() for c in p.calls]
    secret = [f for p in plans.values() for f in p.secret]
    outcomes = _timed(result, f"child, {len(plans)} lessons", sandbox.run_exercises, sources, calls, secret=secret)
    public = [(n, c) for (n, c), s in zip(calls, secret) if n == "place_digit" and not s]
    _timed(result, "child, place_digit only", sandbox.run_exercises, {"place_digit": sources["place_digit"]}, public)
    for lesson, p in plans.items():
        _timed(result, f"child, {lesson} only", sandbox.run_exercises, p.sources, p.calls, secret=p.secret)
    profile, first = cProfile.Profile(), 0
    for lesson, p in plans.items():
        mine = outcomes[first:first + len(p.calls)]
        first += len(p.calls)
        for name in p.sources:
            trials = [(case, s, o) for (n, case), s, o in zip(p.calls, p.secret, mine) if n == name]
            profile.enable()
            verdict = _timed(per, f"judge {name}", judge.judge, EXERCISES[name], iter(trials))
            profile.disable()
            per[f"status {name}"] = verdict.status
    result.update(per=per, wall_seconds=round(time.perf_counter() - start, 1),
                  parent_cpu_seconds=round(time.process_time() - cpu, 1), load_after=os.getloadavg())
    for phase in ("read", "cases", "judge"):
        result[f"{phase} total"] = round(sum(v for k, v in per.items() if k.startswith(phase + " ")), 2)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    result["judge profile (cumulative)"] = text.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("per", "judge profile (cumulative)")}, indent=1))
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bench" / "logs" / "grading_profile.json")
