"""Typical wrong answers, written as a student would from the lessons' text and the stubs' docstrings.

Each module lists ``MISTAKES``: ``(exercise, wrong function, words)``, where ``words`` are phrases of
which at least one belongs in a hint that names this mistake (a catalogued hint or a named property),
and ``()`` when only a comparison can be expected. ``tests/test_mistake_corpus.py`` runs them all.
"""
