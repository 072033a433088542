"""Pages in a real browser: Debian's headless Chromium driven by Playwright's Python client.

``tests/conftest.py`` registers the fixtures once for the whole suite, so that one Playwright (and one
Chromium) serves every test of a worker: two sync Playwrights in one process clash (the second finds the first's
event loop running). A test module only names them::

    def test_my_page(browser_page, tmp_path):
        visit = browser_page(tmp_path / "out" / "index.html")   # a file, or "http://127.0.0.1:PORT/..."
        assert visit.problems() == []
        assert "hello" in visit.text()

``browser_page(target, name=None) -> Visit`` opens the page in a fresh tab and
records, while it loads: console errors and uncaught exceptions, JavaScript
dialogs (an ``alert`` means injected script ran), failed requests and HTTP
errors, and any request to another host than this machine (refused: nothing is
fetched from outside). Once loaded it checks every ``<img>`` loaded
(``naturalWidth > 0``) and every relative link resolves (a file that exists, or
an HTTP status below 400), and saves a full-page screenshot as
``<test's tmp_path>/screenshots/<name>.png``. ``Visit.problems()`` lists all of
it; ``Visit.page`` is Playwright's page for anything else.

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run``
installs it): Playwright's own browser download is impossible here and never used.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclasses.dataclass
class Visit:
    """What one page did while it loaded in Chromium (``browser_page`` fills it)."""

    page: object
    url: str
    screenshot: Path | None = None
    console_errors: list = dataclasses.field(default_factory=list)
    failed_requests: list = dataclasses.field(default_factory=list)
    dialogs: list = dataclasses.field(default_factory=list)
    broken_images: list = dataclasses.field(default_factory=list)
    broken_links: list = dataclasses.field(default_factory=list)

    def problems(self) -> list[str]:
        """Every problem found, one line each; ``[]`` for a clean page."""
        return ([f"console error: {m}" for m in self.console_errors] + [f"request failed: {r}" for r in self.failed_requests]
                + [f"dialog opened (script ran): {d}" for d in self.dialogs]
                + [f"image did not load: {i}" for i in self.broken_images]
                + [f"link does not resolve: {link}" for link in self.broken_links])

    def text(self) -> str:
        """The page's visible text (``document.body.innerText``)."""
        return self.page.evaluate("document.body.innerText")


def _local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("file", "data", "about") or (parsed.hostname or "") in {h.strip("[]") for h in LOCAL_HOSTS}


def _resolves(visit: Visit, href: str) -> bool:
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).is_file()
    response = visit.page.request.get(href.split("#")[0])
    return response.status < 400


def visit(browser, target, shots: Path, name: str | None = None, timeout_ms: int = 30_000) -> Visit:
    """Opens ``target`` (a path or a URL) in a new page of ``browser`` and checks it (see the module's text)."""
    url = Path(target).resolve().as_uri() if not str(target).startswith(("http://", "https://", "file:")) else str(target)
    page = browser.new_page()
    page.set_default_timeout(timeout_ms)
    seen = Visit(page, url)
    page.on("console", lambda m: m.type == "error" and seen.console_errors.append(f"{m.text} ({m.location})"))
    page.on("pageerror", lambda err: seen.console_errors.append(f"uncaught: {err}"))
    page.on("requestfailed", lambda r: seen.failed_requests.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and seen.failed_requests.append(f"{r.url}: HTTP {r.status}"))

    def on_dialog(dialog):
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def only_this_machine(route):
        if _local(route.request.url):
            route.continue_()
        else:
            seen.failed_requests.append(f"{route.request.url}: refused, not on this machine")
            route.abort()

    page.route("**/*", only_this_machine)
    page.goto(url, wait_until="load")
    seen.broken_images = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src)")
    links = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => [a.getAttribute('href'), a.href])")
    for raw, absolute in links:
        relative = not urlparse(raw).scheme and not raw.startswith("//") and not raw.startswith("#")
        if relative and not _resolves(seen, absolute):
            seen.broken_links.append(f"{raw} -> {absolute}")
    shots.mkdir(parents=True, exist_ok=True)
    seen.screenshot = shots / f"{name or Path(urlparse(url).path).stem or 'page'}.png"
    page.screenshot(path=str(seen.screenshot), full_page=True)
    return seen


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, headless, launched once per test session through Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium chromium-driver` (.ci/run does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, tmp_path):
    """``browser_page(target, name=None) -> Visit``: opens and checks a page; screenshots go to
    ``tmp_path/screenshots``; the pages are closed after the test."""
    opened = []

    def open_page(target, name: str | None = None) -> Visit:
        seen = visit(chromium, target, tmp_path / "screenshots", name)
        opened.append(seen.page)
        return seen

    yield open_page
    for page in opened:
        page.close()
