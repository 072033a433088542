"""The text of the five lessons, cell by cell, as ``(kind, source)`` pairs (see ``../build.py``)."""
from lessons_src import l01, l02, l03, l04, l05

LESSONS = {m.LESSON: m.CELLS for m in (l01, l02, l03, l04, l05)}
