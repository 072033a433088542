"""Typical wrong answers, written as a student would from the lessons' text and the stubs' docstrings.

Each module lists ``MISTAKES``: ``(exercise, wrong function, words)``, where ``words`` are phrases of
which at least one belongs in a hint that names this mistake (a catalogued hint or a named property),
and ``()`` when only a comparison can be expected. ``tests/test_mistake_corpus.py`` runs them all, and
``bench/blind.py`` measures one corpus; both judge an entry with ``verdict``.
"""
from __future__ import annotations


def verdict(name: str, wrong, words) -> dict:
    """What ``mnistloc check`` makes of one wrong answer: ``rejected``; ``named`` (one of ``words`` in the hint,
    case-insensitive, not counting the failing case's own note, whose arithmetic names nothing); ``catalogued``
    (the hint is a catalogued mistake's); ``misnamed`` (catalogued, but none of the words); the ``hint``."""
    from mnistloc.checks import EXERCISES, check

    result = check(name, wrong)
    catalogued = any(result.hint == f"{name}: {hint}" for hint, _ in EXERCISES[name].mistakes)
    said = result.hint
    for case in EXERCISES[name].fixed() if not catalogued else ():
        said = said.replace(case.get("note", ""), "") if case.get("note") else said
    named = any(w.lower() in said.lower() for w in words)
    return {"rejected": not result.passed, "named": named, "catalogued": catalogued,
            "misnamed": catalogued and not named, "hint": result.hint}
