"""Helpers for the course tests: the repository's paths and nbgrader run in a temporary course folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LESSON_IDS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and p.name[:2].isdigit())


def solution(lesson: str) -> Path:
    return REPO / "solutions" / lesson / f"{lesson}.ipynb"


def release(lesson: str) -> Path:
    return REPO / "lessons" / lesson / f"{lesson}.ipynb"


def nbgrader(*args: str, course: Path, release_dir: Path | None = None, timeout: float = 600,
             **env: str) -> subprocess.CompletedProcess:
    """Runs ``nbgrader ARGS`` with ``grader/nbgrader_config.py`` and the course root ``course``."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "MNISTLOC_COURSE_ROOT": str(course),
                "MNISTLOC_RELEASE_DIR": str(release_dir or course / "release"), **env}
    full_env.pop("NBGRADER_EXECUTION", None)
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=REPO / "grader", env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def cells(path: Path) -> list:
    return nbformat.read(str(path), as_version=4).cells


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")
