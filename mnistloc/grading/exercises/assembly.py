"""Checks for the capstone of lesson 5, the student's assembled case-5 detector (filled in below)."""
from __future__ import annotations

EXERCISES: tuple = ()
