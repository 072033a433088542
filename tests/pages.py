"""Reading a written HTML page as the tests need it: its links (``src`` and ``href``) and its text."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    """A parsed page: ``links`` (every ``src`` and ``href``, in order) and ``text`` (its text pieces)."""

    def __init__(self):
        super().__init__()
        self.links, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path: Path) -> Page:
    """The page at ``path``, parsed."""
    page = Page()
    page.feed(Path(path).read_text())
    return page
