"""The student's flow in JupyterLab, in a real browser: fetched lessons (``mnistloc lessons``), JupyterLab on
127.0.0.1 with a token, and headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright's Python
client: ``tests/browser.py``; no browser is downloaded) doing what a student does in lesson 1.

``test_a_student_answers_the_first_exercise`` opens lesson 1, runs its cells up to the first exercise's check
(the stub: "not done yet"), types a wrong answer into the answer cell and reads the catalogued hint from the
page, then types the right answer and reads the points. Screenshots of each step are kept under the test's
``tmp_path`` (``shots/``).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mnistloc import course
from mnistloc.checks import EXERCISES

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lab-browser")]

REPO = Path(__file__).resolve().parents[1]
LESSON = course.lesson_ids()[0]
# A wrong answer for lesson 1's first exercise: (the right answer -> a catalogued mistake, a phrase of that
# mistake's hint, which the check must show).
WRONG = {"classic_model": (lambda code: code.replace("AveragePooling2D", "MaxPooling2D"), "not MaxPooling2D")}
TIMEOUT_MS = 300_000  # for each step: a busy 2-core machine (TensorFlow's import alone takes 5-7 s idle)


def _right_answer(name: str) -> str:
    """The solution of exercise ``name`` in lesson 1 (``solutions/``, nbgrader's markers removed)."""
    cells = json.loads((REPO / "solutions" / LESSON / f"{LESSON}.ipynb").read_text())["cells"]
    code = next("".join(c["source"]) for c in cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == name)
    return re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", code)


# ---- JupyterLab and the browser ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on the fetched lessons: yields its base URL and token; its own settings, data and runtime
    folders (news and update checks off, every cell rendered); stopped afterwards."""
    lessons = tmp_path / "lessons"
    course.fetch_lessons(lessons)
    jupyter = {name: tmp_path / "jupyter" / name for name in ("config", "data", "runtime", "settings", "ipython")}
    settings = jupyter["settings"]
    for extension, values in {"apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                              "notebook-extension/tracker": {"windowingMode": "none"}}.items():
        path = settings / "@jupyterlab" / f"{extension}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(jupyter["config"]), "JUPYTER_DATA_DIR": str(jupyter["data"]),
           "JUPYTER_RUNTIME_DIR": str(jupyter["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jupyter" / "workspaces"),
           "IPYTHONDIR": str(jupyter["ipython"]), "KERAS_HOME": str(tmp_path / "keras-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "MNISTLOC_SECRET_SEED"):
        env.pop(name, None)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", str(lessons), "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/status?token={token}", server, tmp_path / "jupyterlab.log")
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def page(chromium):
    """A fresh tab of the session's headless Chromium (``tests/browser.py``: Debian's, through Playwright)."""
    tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
    yield tab
    tab.close()


# ---- the student's flow -------------------------------------------------------------------------------------

def _first_exercise() -> tuple[str, int, int]:
    """Lesson 1's first exercise: its name and the indices of its answer cell and its check cell."""
    cells = json.loads(course.lesson_bytes(LESSON))["cells"]
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells]
    name = next(i for i in ids if i in EXERCISES)
    return name, ids.index(name), ids.index(f"test_{name}")


def _type_into(page, cell, code: str) -> None:
    """Replaces the code of ``cell`` as a student does: click into it, select all, type (pasted in one go)."""
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)


def _shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / "shots" / f"{name}.png"), full_page=False)


def test_a_student_answers_the_first_exercise(lab, page, tmp_path):
    base, token = lab
    name, answer_at, check_at = _first_exercise()
    assert name in WRONG, f"add a wrong answer for {name}, lesson 1's first exercise, to WRONG"
    mistake, hint = WRONG[name]
    (tmp_path / "shots").mkdir()
    timeout = TIMEOUT_MS
    page.set_default_timeout(timeout)

    page.goto(f"{base}/lab/tree/{LESSON}/{LESSON}.ipynb?token={token}")
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    cells.nth(check_at).wait_for()
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    _shot(page, tmp_path, "1-opened")

    cells.nth(0).click()  # run from the top to the check, as a student presses Shift+Enter
    for _ in range(check_at + 1):
        page.keyboard.press("Shift+Enter")
    check = cells.nth(check_at).locator(".jp-OutputArea")
    _wait_text(check, f"{name}: not done yet", timeout)
    _shot(page, tmp_path, "2-stub-checked")

    right = _right_answer(name)
    _type_into(page, cells.nth(answer_at), mistake(right))
    page.keyboard.press("Shift+Enter")  # the answer cell, then its check
    page.keyboard.press("Shift+Enter")
    _wait_text(check, hint, timeout)
    shown = check.inner_text()
    catalogued = [text for text, _ in EXERCISES[name].mistakes if hint in text]
    assert catalogued and catalogued[0] in " ".join(shown.split()), shown  # the hint that names the mistake
    _shot(page, tmp_path, "3-wrong-answer-hint")

    _type_into(page, cells.nth(answer_at), right)
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    points = EXERCISES[name].points
    _wait_text(check, f"{name}: {points}/{points} points", timeout)
    _shot(page, tmp_path, "4-right-answer-points")
    assert "Error" not in check.inner_text()


def _wait_text(locator, text: str, timeout: float) -> None:
    """Waits until ``locator`` shows ``text`` (whitespace as rendered), or fails showing what it shows."""
    from playwright.sync_api import expect

    try:
        expect(locator).to_contain_text(text, timeout=timeout)
    except AssertionError as err:
        raise AssertionError(f"waited {timeout / 1000:.0f} s for {text!r}; the cell shows:\n"
                             f"{locator.inner_text()[-2000:]}") from err
