"""Measures one corpus of typical mistakes (``tests/mistakes/<corpus>.py``) as ``mnistloc check`` judges them.

For each mistake: whether it is rejected, whether the hint names it (one of its ``words``, case-insensitive,
as ``tests/test_mistake_corpus.py`` counts it) and whether the hint is a catalogued one. A catalogued hint
that names none of its words is a candidate *misnamed*; the lead reads every hint and records a judgement
(named, weak, misnamed, not named) in the result's entries afterwards. Writes the result with the commit
measured and the time.

    .venv/bin/python bench/blind.py blind_c bench/results/blind_c_first_run.json
"""
from __future__ import annotations

import collections
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import mistakes  # noqa: E402  (tests/mistakes: the corpora and the one verdict rule)


def measure(corpus: str) -> list[dict]:
    module = importlib.import_module(f"mistakes.{corpus}")
    entries = []
    for name, wrong, words in module.MISTAKES:
        judged = mistakes.verdict(name, wrong, words)
        entries.append({"exercise": name, "function": wrong.__name__,
                        "description": (wrong.__doc__ or "").strip(), "words": list(words),
                        **{k: judged[k] for k in ("rejected", "named", "catalogued", "hint")}})
        print(f"{'ok ' if entries[-1]['named'] else '?? ' if entries[-1]['rejected'] else 'PASS'} "
              f"{wrong.__name__}: {judged['hint'][:150]}", flush=True)
    return entries


def summary(entries: list[dict]) -> dict:
    per = collections.defaultdict(lambda: {"total": 0, "rejected": 0, "named": 0})
    for e in entries:
        per[e["exercise"]]["total"] += 1
        per[e["exercise"]]["rejected"] += e["rejected"]
        per[e["exercise"]]["named"] += e["named"]
    n = len(entries)
    rejected, named = sum(e["rejected"] for e in entries), sum(e["named"] for e in entries)
    return {"total": n, "rejected": rejected, "named": named, "rejected_share": rejected / n,
            "named_share": named / n,
            "catalogued_not_named": sum(e["catalogued"] and not e["named"] for e in entries),
            "per_exercise": dict(per)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    corpus, out = argv[0], Path(argv[1])
    code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "mnistloc"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip())
    entries = measure(corpus)
    result = {"measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "code": code + ("+uncommitted" if dirty else ""), "corpus": corpus, "entries": entries,
              "summary": summary(entries)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result["summary"].items() if k != "per_exercise"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
