"""The demo's report page: ``index.html`` with its pictures and tables, opened from disk.

Every link is relative to the page's folder (the folder can be moved or zipped), and
every text that comes from data (grading reasons, student names) is escaped.
"""
from __future__ import annotations

import datetime
import html
from pathlib import Path
from urllib.parse import quote

from mnistloc.cases import name as case_name

FULL_SECONDS = 175.0  # the budget the targets are for (bench/quality.py)

STYLE = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{padding:.25em .6em;text-align:left;vertical-align:top;
border-bottom:1px solid #ddd}th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.met,.passed{color:#070}.below,.failed,.error,.timeout,.crash,.forbidden,.missing,.duplicated,.unreadable,
.not-submitted{color:#a00}figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
figure img{max-width:34em;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}code{font-size:.95em}"""


def write_index(page: dict, out_dir) -> Path:
    """Writes ``out_dir/index.html`` from the demo's results (``mnistloc.demo.run``'s ``page``).

    Args:
        page: dict with ``data`` (``rows``, ``grids``: case -> PNG path), ``models`` (rows of
            ``demo.score_models``), optionally ``live`` (``demo.train_live`` without the model)
            and ``grading`` (``demo.grade_class``), and ``seconds``/``cpu_seconds``.
        out_dir: the folder that holds the pictures; links are made relative to it.

    Returns:
        Path: the page written.
    """
    out = Path(out_dir)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h1>mnistloc: the demo</h1>\n<p>Written by <code>mnistloc demo</code> on {_e(when)} in "
             f"{page.get('seconds', 0):.0f} s of wall time ({page.get('cpu_seconds', 0):.0f} s of CPU time).</p>",
             _data(page["data"], out), _models(page["models"], out)]
    if page.get("live"):
        parts.append(_live(page["live"], out))
    if page.get("grading"):
        parts.append(_grading(page["grading"], out))
    path = out / "index.html"
    path.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mnistloc demo</title>"
                    f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return path


def _e(text) -> str:
    return html.escape(str(text))


def _link(path, out: Path) -> str:
    """A URL for ``path`` relative to ``out``, percent-encoded."""
    return quote(Path(path).resolve().relative_to(out.resolve()).as_posix())


def _figure(path, out: Path, caption: str) -> str:
    if not Path(path).is_file():
        return ""
    return (f"<figure><a href=\"{_link(path, out)}\"><img src=\"{_link(path, out)}\" alt=\"{_e(caption)}\"></a>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table; the cells are HTML already (escape before)."""
    cells = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + f"</tr>\n{cells}\n</table>"


def _checks(checks: list[dict]) -> str:
    return "<br>".join(f"<code>{_e(c['metric'])}</code> {c['value']:.3f} (&ge; {c['target']}: "
                       f"<span class=\"{'met' if c['met'] else 'below'}\">{'met' if c['met'] else 'below'}</span>)"
                       for c in checks)


def _data(data: dict, out: Path) -> str:

    rows = [[_e(case_name(r["case"])), f"{r['canvases']:,}", f"{r['digits']:.2f}",
             f"{r['empty']:.2f} / {r['one']:.2f} / {r['two']:.2f}", f"{r['width']:.1f} x {r['height']:.1f}"]
            for r in data["rows"]]
    figures = "".join(_figure(p, out, f"case {case_name(c)}: true boxes in green") for c, p in data["grids"].items())
    return ("<h2>1. Data</h2>\n<p>Canvases made from the bundled MNIST digits (training split), with tight "
            "boxes.</p>\n" + _table(["case", "canvases", "digits per canvas", "share of 0 / 1 / 2+ digits",
                                    "mean box w x h (px)"], rows) + f"\n<div>{figures}</div>")


def _models(rows: list[dict], out: Path) -> str:

    n = rows[0]["metrics"]["test_canvases"] if rows else 0
    table = _table(["case", "model", "metrics against the targets"],
                   [[_e(case_name(r["case"])), _e(r["how"]), _checks(r["checks"])] for r in rows])
    figures = "".join(_figure(out / "models" / f"case{r['case']}" / f"{name}.png", out,
                              f"case {case_name(r['case'])}: {what}")
                      for r in rows for name, what in (("predictions", "first test canvases (prediction red)"),
                                                       ("worst", "its worst test canvases")))
    return (f"<h2>2. Reference models</h2>\n<p>Each case's model, scored on {n:,} canvases of held-out test digits "
            "and compared with its targets.</p>\n" + table + f"\n<div>{figures}</div>")


def _live(live: dict, out: Path) -> str:

    text = (f"Case {_e(case_name(live['case']))} trained here for {live['seconds']:.0f} s of both cores "
            f"({live['steps']:,} steps, {live['wall_seconds']:.0f} s of wall time, {live['cpu_seconds']:.0f} s of "
            f"CPU time). The targets are for {FULL_SECONDS:.0f} s.")
    figures = "".join(_figure(out / "live" / f"{name}.png", out, what) for name, what in (
        ("history", "training curves"), ("predictions", "first test canvases (prediction red)")))
    return f"<h2>3. Live training</h2>\n<p>{text}</p>\n<p>{_checks(live['checks'])}</p>\n<div>{figures}</div>"


def _grading(graded: dict, out: Path) -> str:
    by_student: dict[str, list] = {}
    for r in graded["rows"]:
        by_student.setdefault(r.student, []).append(r)
    rows = []
    for student, mine in by_student.items():
        folder = graded["students"].get(student, "")
        page = out / "grading" / "feedback" / student / f"{mine[0].lesson}.html"
        name = f"<a href=\"{_link(page, out)}\">{_e(student)}</a>" if page.is_file() else _e(student)
        exercises = "<br>".join(f"<code>{_e(r.exercise)}</code> {r.points}/{r.max_points} "
                                f"<span class=\"{_e(r.status)}\">{_e(r.status)}</span>"
                                + (f": {_e(r.reason[:160])}" if r.reason and r.status != "passed" else "")
                                for r in mine)
        rows.append([name, f"<code>{_e(folder)}</code>: {_e(graded['why'].get(folder, ''))}",
                     f"{sum(r.points for r in mine)}/{sum(r.max_points for r in mine)}", exercises])
    csv = out / "grading" / "grades.csv"
    link = f" (<a href=\"{_link(csv, out)}\">grades.csv</a>)" if csv.is_file() else ""
    return (f"<h2>4. Grading</h2>\n<p>A sample class: notebooks of the package's lesson 1 with the answers of five students it ships "
            f"(<code>mnistloc.course</code>), put in a temporary course folder and graded by the hardened grader (as <code>mnistloc grade</code>) in "
            f"{graded['seconds']:.0f} s{link}. Each name links to the student's feedback page.</p>\n"
            + _table(["student", "notebook", "points", "exercises"], rows)
            + f"\n<pre>{_e(graded['summary'])}\n\n{_e(graded.get('sandbox', ''))}</pre>")
