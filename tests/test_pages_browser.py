"""The pages a person reads, opened in headless Chromium (tests/browser.py): the class dashboard, a feedback page,
the leaderboard and the demo. Each loads with no console error, no failed request and no dialog; every image
loads and every relative link resolves; a student id full of HTML and CSV metacharacters shows as text.
Screenshots are kept under each test's tmp_path/screenshots."""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import classroom
from classroom import HOSTILE, LESSON

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

NO_INJECTION = "document.querySelectorAll('img[src=\"x\"], b b, script').length"  # what the id would inject


@pytest.fixture(scope="module")
def grades(tmp_path_factory) -> Path:
    course = classroom.make_class(tmp_path_factory.mktemp("pages"))
    classroom.grade(course)
    return course / "mnistloc_grades"


def _shows_the_id_as_text(visit) -> None:
    assert HOSTILE in visit.text()
    assert visit.page.evaluate(NO_INJECTION) == 0


def test_the_dashboard_in_chromium(browser_page, grades):
    visit = browser_page(grades / "class.html", "dashboard")
    assert visit.problems() == []
    _shows_the_id_as_text(visit)
    widths = visit.page.evaluate("Array.from(document.images, i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # the histogram
    assert visit.screenshot.stat().st_size > 10_000


def test_the_dashboard_over_http_and_its_link_to_a_feedback_page(browser_page, grades):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(grades))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        visit = browser_page(f"http://127.0.0.1:{server.server_port}/class.html", "dashboard-http")
        assert visit.problems() == []
        link = visit.page.get_by_role("link", name=HOSTILE, exact=True)
        link.click()
        visit.page.wait_for_load_state("load")
        assert visit.page.url.endswith(f"/{LESSON}.html") and HOSTILE in visit.text()
        assert visit.page.evaluate(NO_INJECTION) == 0
    finally:
        server.shutdown()


def test_a_feedback_page_in_chromium(browser_page, grades):
    visit = browser_page(grades / "feedback" / HOSTILE / f"{LESSON}.html", "feedback")
    assert visit.problems() == []
    _shows_the_id_as_text(visit)
    assert "the Python process died" in visit.text()  # its crash


def test_the_leaderboard_page_in_chromium(browser_page, tmp_path):
    course = tmp_path / "course"
    for student in (HOSTILE, "bob"):
        (course / "submitted" / student / "05-many-digits").mkdir(parents=True)
    (course / "submitted" / "bob" / "05-many-digits" / "model.keras").write_bytes(b"not a zip")
    (course / "secret_seed").write_text("7\n")
    done = subprocess.run([sys.executable, "-m", "mnistloc", "leaderboard", str(course), "--canvases", "10"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    visit = browser_page(course / "mnistloc_leaderboard" / "leaderboard.html", "leaderboard")
    assert visit.problems() == []
    _shows_the_id_as_text(visit)
    assert "not-a-keras-file" in visit.text()


def test_the_demo_page_in_chromium(browser_page, tmp_path):
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras-home")}  # the bundled digits, as tests/test_demo.py
    done = subprocess.run([sys.executable, "-m", "mnistloc", "demo", "--quick", "--seconds", "0", "--no-grading",
                           "--out", "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    visit = browser_page(tmp_path / "out" / "index.html", "demo")
    assert visit.problems() == []
    widths = visit.page.evaluate("Array.from(document.images, i => i.naturalWidth)")
    assert len(widths) >= 5 and all(w > 0 for w in widths)  # a grid per case, the models' predictions
