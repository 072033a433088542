"""The class leaderboard: every student's case 5 detector, scored safely on hidden canvases.

``leaderboard(COURSE_DIR)`` finds each ``submitted/<student>/05-many-digits/model.keras``,
opens it here without following links or blocking (a regular file of at most
``max_bytes``, or a status), and hands the open file to a fresh confined child
(``mnistloc.grading.model_child``: time and memory limits, no network, the
course folder hidden, its own uid as root) together with hidden case 5 canvases
made here from the secret seed (the seed never reaches the child). The child
vets the zip and its architecture, loads it in Keras safe mode, checks the
contract below and sends back raw float32 maps; this process decodes them with
the reference peaks and NMS (``mnistloc.decoder``) and scores them.

The contract (what lesson 5's save cell writes): ``keras.saving.load_model``
with ``safe_mode=True`` and built-in layers only gives a model taking one
input ``(None, 128, 128)`` (pixels 0-255) and returning outputs named
``presence`` ``(None, 16, 16, 1)`` (sigmoid), ``box`` ``(None, 16, 16, 4)``
(distances left, top, right, bottom from each cell's centre, in cells) and
``class`` ``(None, 16, 16, 10)`` (softmax), as ``models.build_model(5)``.

Writes ``leaderboard.csv`` and ``leaderboard.html`` (every text escaped); a
failing model gets a status from ``STATUSES`` and the batch goes on.
"""
from __future__ import annotations

import csv
import dataclasses
import html
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mnistloc.grading import warden
from mnistloc.grading.launcher import MAX_NAME, Child, Inbox, Refused, open_regular, plain_id
from mnistloc.grading.model_child import CONTRACT, GRID, MAX_JSON
from mnistloc.grading.registry import secret_seed
from mnistloc.grading.wire import MAX_DEPTH, printable

LESSON = "05-many-digits"
MODEL_FILE = "model.keras"
BONUS_CELL = "test_choose_nms_threshold"  # the graded cell of LESSON that carries the leaderboard's extra credit
MAX_BYTES = 32 * 1024 * 1024  # the size cap of a model file (the reference model: about 1 MB)
WARM_TIMEOUT = 180  # seconds to start Python and import Keras, before the model's own time starts
STATUSES = {
    "ok": "scored",
    "missing": f"no {LESSON}/{MODEL_FILE} submitted",
    "bad-id": "the student folder's name is not a plain id",
    "not-a-folder": "a file in submitted/ where a student folder should be",
    "not-a-file": "not a regular file (a link, folder or pipe)",
    "too-large": "over the size limit",
    "not-a-keras-file": "not a .keras zip with a config.json",
    "forbidden-layer": "a Lambda (or other code-running) layer",
    "custom-object": "a custom or registered object",
    "load-error": "Keras safe mode could not load it",
    "wrong-shape": "input or outputs differ from the contract",
    "run-error": "failed while running on the canvases",
    "bad-output": "NaN or infinite outputs",
    "timeout": "took longer than the time limit",
    "crash": "the child process died or broke the reply format",
}
COLUMNS = ("rank", "student", "entry", "map", "map50", "map75", "count_accuracy", "parameters", "ms_per_canvas",
           "status", "message")


@dataclasses.dataclass
class Entry:
    """One row of the leaderboard; metrics are None unless ``status == "ok"``."""

    student: str
    entry: str = "student"  # or "reference"
    status: str = "ok"
    message: str = ""
    map: float | None = None
    map50: float | None = None
    map75: float | None = None
    count_accuracy: float | None = None
    parameters: int | None = None
    ms_per_canvas: float | None = None
    rank: int | None = None


def leaderboard(course_dir, *, out=None, reference=None, students=None, canvases: int = 200,
                timeout: float = 120, memory_mb: int = 4096, max_bytes: int = MAX_BYTES,
                force: bool = False) -> list[Entry]:
    """Scores every submitted model of a class; writes leaderboard.csv and leaderboard.html.

    Args:
        course_dir: the nbgrader course folder (with ``submitted/``).
        out: results folder (default ``COURSE_DIR/mnistloc_leaderboard``).
        reference: a trusted ``model.keras`` (e.g. from ``mnistloc train --case 5``) scored alongside, or
            ``"shipped"``: the package's case 5 weights (``mnistloc.pretrained``), written to ``out/reference.keras``.
        students: student ids to score (default: every folder in ``submitted/``).
        canvases: hidden case 5 canvases each model runs on.
        timeout: seconds for each model to load and run (Python and Keras start outside it).
        memory_mb: address space of each child process.
        max_bytes: the largest model file opened.
        force: overwrite existing results.

    Returns:
        list[Entry], ranked (the order of the files).

    Raises:
        ValueError: no ``submitted/`` folder, no secret seed, or a bad argument.
        FileExistsError: results exist and ``force`` is False.
    """
    course = Path(course_dir)
    submitted = course / "submitted"
    if not submitted.is_dir():
        raise ValueError(f"`course_dir` should hold nbgrader's submitted/<student>/{LESSON}/ folders; "
                         f"there is no {submitted}")
    for name, value in (("canvases", canvases), ("timeout", timeout), ("memory_mb", memory_mb),
                        ("max_bytes", max_bytes)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"`{name}` should be > 0. Got {name}={value!r}.")
    out = Path(out) if out is not None else course / "mnistloc_leaderboard"
    paths = [out / "leaderboard.csv", out / "leaderboard.html"]
    if not force and any(p.exists() for p in paths):
        raise FileExistsError(f"{paths[0]} exists; pass force=True (--force) to overwrite it")
    if str(reference) == "shipped":
        from mnistloc import pretrained
        with warden.own_keras_home():  # Keras in this process: nothing of it left in a shared /tmp
            reference = pretrained.save_keras(5, out / "reference.keras")
    warden.guard_this_process()  # this process holds the secret seed
    ds = hidden_canvases(secret_seed(course), int(canvases))
    names = sorted(students or (p.name for p in submitted.iterdir()))
    hide = [course.resolve(), *([out.resolve()] if out.exists() else [])]
    limits = dict(timeout=timeout, memory_mb=memory_mb, max_bytes=int(max_bytes), hide=hide)
    entries = []
    for name in names:
        if not plain_id(name):
            shown = name.encode("unicode_escape").decode("ascii")[:MAX_NAME]  # no control or bidi characters
            entries.append(Entry(shown, status="bad-id", message=STATUSES["bad-id"]))
        elif not students and not (submitted / name).is_dir() and not (submitted / name).is_symlink():
            entries.append(Entry(name, status="not-a-folder", message=f"submitted/{name} is a file, not a student "
                                                                        "folder: nothing scored"))
        else:
            entries.append(score_model(submitted / name / LESSON / MODEL_FILE, ds, student=name, root=submitted,
                                       **limits))
    if reference is not None:  # its row is told apart by `entry`, never by its name: a student may be `reference`
        entries.append(score_model(Path(reference), ds, student="reference", entry="reference", **limits))
    entries = rank(entries)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(entries, paths[0])
    paths[1].write_text(to_html(entries, len(ds)), encoding="utf-8")
    return entries


def hidden_canvases(seed: int, n: int):
    """``n`` case 5 test canvases from the secret ``seed`` (its own stream: not the exercises' cases)."""
    from mnistloc import canvas

    return canvas.make_dataset(5, n, seed=np.random.default_rng([seed, 5, 0x1eade]), split="test")


def score_model(path: Path, ds, *, student: str, entry: str = "student", root: Path | None = None,
                timeout: float = 120, memory_mb: int = 4096, max_bytes: int = MAX_BYTES, hide=()) -> Entry:
    """One model's row: opened here, vetted and run in a confined child, scored here.

    Args:
        path: the model file.
        ds: the hidden canvases (``CanvasDataset`` of case 5, n canvases).
        student: the row's name.
        entry: ``"student"`` or ``"reference"``.
        root: a folder ``path`` must lie in (after resolving its folder), or None.
        timeout, memory_mb, max_bytes, hide: as ``leaderboard``.

    Returns:
        Entry: the metrics, or a failing status and its message.
    """
    row = Entry(student, entry=entry)
    try:
        fd = open_model(path, root, max_bytes)
        try:
            header, payload = _run_child(fd, ds.images, timeout=timeout, memory_mb=memory_mb,
                                         max_bytes=max_bytes, hide=hide)
        finally:
            os.close(fd)
        row.parameters, row.ms_per_canvas = _numbers(header)
        for key, value in score_outputs(ds, payload).items():
            setattr(row, key, value)
    except Refused as refusal:
        row.status, row.message = refusal.status, printable(refusal)[:500]
    except Exception as err:  # noqa: BLE001 - whatever its child sent costs this model only (RecursionError, ...)
        row = Entry(student, entry=entry, status="crash", message=f"its reply broke the scoring ({type(err).__name__})")
    return row


def open_model(path: Path, root: Path | None, max_bytes: int) -> int:
    """An open read-only descriptor of ``path`` (``launcher.open_regular``: a regular file with one link, at most
    ``max_bytes``, no link followed, no FIFO read; its folder inside ``root``).

    Raises:
        Refused: ``missing``, ``not-a-file`` or ``too-large``.
    """
    try:
        return open_regular(path, root, max_bytes, what=MODEL_FILE)
    except Refused as refusal:
        if refusal.status == "missing":
            raise Refused("missing", STATUSES["missing"]) from None
        raise


def _run_child(model_fd: int, images: np.ndarray, *, timeout, memory_mb, max_bytes, hide) -> tuple[dict, bytes]:
    """Runs ``model_child`` (``launcher.Child``) on the open model and the canvases; returns its ok header and
    payload."""
    n = len(images)
    with tempfile.TemporaryFile() as staged:  # unlinked: the child gets it by descriptor only
        staged.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        staged.flush()
        canvases_fd = os.dup(staged.fileno())
    os.lseek(canvases_fd, 0, os.SEEK_SET)
    config = {"model_fd": model_fd, "canvases_fd": canvases_fd, "n": n, "max_bytes": max_bytes}
    child = Child("mnistloc.grading.model_child", memory_mb=memory_mb, hide=hide, config=config,
                  pass_fds=(model_fd, canvases_fd), output=False)
    os.close(canvases_fd)
    try:
        return _collect(child, n * GRID * GRID * sum(CONTRACT.values()) * 4, timeout)
    finally:
        child.stop()


def _collect(child: Child, payload_bytes: int, timeout: float) -> tuple[dict, bytes]:
    """Reads the child's messages: ``warm`` (starts the model's clock), a header, then the payload if ok."""
    inbox, header, warm = Inbox(payload_bytes + 4 * MAX_JSON), None, False
    deadline = time.monotonic() + max(timeout, WARM_TIMEOUT)
    while True:
        data = inbox.take(MAX_JSON) if header is None else inbox.take(payload_bytes, exact=payload_bytes)
        if data is not None:
            if header is not None:
                return header, data
            message = _json(data)
            status = message.get("status")
            if message == {"phase": "warm"} and not warm:
                warm, deadline = True, time.monotonic() + timeout
            elif status == "ok":
                header = message
            elif isinstance(status, str) and status in STATUSES and status not in ("not-a-folder", "bad-id"):
                raise Refused(status, str(message.get("message", ""))[:500])
            else:
                raise Refused("crash", "sent a malformed reply")
            continue
        chunk = child.read(deadline)
        if chunk is None:
            raise Refused("timeout", f"took longer than {timeout:g} s to load and run"
                          if warm else "the sandbox did not start Keras in time")
        if not chunk:
            raise Refused("crash", "the process died (the memory limit, or a signal)")
        inbox.feed(chunk)


def _json(data: bytes) -> dict:
    """One JSON message of the child, decoded within ``wire``'s nesting budget."""
    depth = 0
    for byte in data:  # nesting counted before parsing: a reply 30,000 levels deep never reaches json
        depth += (byte in b"[{") - (byte in b"]}")
        if depth > MAX_DEPTH:
            raise Refused("crash", "sent a reply nested too deeply")
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        raise Refused("crash", "sent an unreadable reply") from None
    if not isinstance(message, dict):
        raise Refused("crash", "sent a malformed reply")
    return message


def _numbers(header: dict) -> tuple[int, float]:
    params, ms = header.get("parameters"), header.get("ms_per_canvas")
    if not (isinstance(params, int) and params >= 0 and isinstance(ms, (int, float)) and 0 <= ms < 1e9):
        raise Refused("crash", "sent malformed numbers")
    return params, float(ms)


def score_outputs(ds, payload: bytes) -> dict[str, float]:
    """Decodes the raw maps (reference peaks and NMS) and scores them against ``ds``.

    Args:
        ds: the n hidden canvases.
        payload: float32 ``presence`` (n, 16, 16, 1), ``box`` (n, 16, 16, 4), ``class`` (n, 16, 16, 10), C order,
            concatenated in that order.

    Returns:
        dict: ``map``, ``map50``, ``map75``, ``count_accuracy``.
    """
    from mnistloc import evaluation

    flat = np.frombuffer(payload, dtype=np.float32)
    if not np.isfinite(flat).all():
        raise Refused("bad-output", STATUSES["bad-output"])
    outputs, start = {}, 0
    for name, channels in CONTRACT.items():
        size = len(ds) * GRID * GRID * channels
        outputs[name] = flat[start:start + size].reshape(len(ds), GRID, GRID, channels)
        start += size
    outputs["presence"] = np.clip(outputs["presence"], 0, 1)
    outputs["class"] = np.clip(outputs["class"], 0, 1)
    return evaluation.score(5, ds, outputs)


def rank(entries: list[Entry]) -> list[Entry]:
    """Scored entries by mAP (then AP50, fewer parameters, name), ranked 1, 2, ... among students; then the rest."""
    ok = sorted((e for e in entries if e.status == "ok"), key=lambda e: (-e.map, -e.map50, e.parameters, e.student))
    place = 0
    for e in ok:
        if e.entry == "student":
            place += 1
            e.rank = place
    return ok + sorted((e for e in entries if e.status != "ok"), key=lambda e: (e.entry, e.student))


def write_csv(entries: list[Entry], path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for e in entries:
            row = dataclasses.asdict(e)
            writer.writerow({k: _cell(row[k], k) for k in COLUMNS})


def _cell(value, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if key == "ms_per_canvas" else f"{value:.4f}"
    text = printable(value)  # no terminal escapes or bidirectional controls
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no spreadsheet formulas


def to_html(entries: list[Entry], canvases: int) -> str:
    """The leaderboard as one self-contained page; every text is escaped."""
    head = ("rank", "student", "mAP", "AP50", "count accuracy", "parameters", "ms / canvas", "status")
    rows = []
    for e in entries:
        cells = (e.rank or ("ref" if e.entry == "reference" and e.status == "ok" else ""), e.student,
                 *(_cell(v, "") for v in (e.map, e.map50, e.count_accuracy)), _cell(e.parameters, ""),
                 _cell(e.ms_per_canvas, "ms_per_canvas"), e.status if e.status == "ok" else f"{e.status}: {e.message}")
        style = ' class="ref"' if e.entry == "reference" else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{html.escape(printable(c))}</td>" for c in cells) + "</tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mnistloc leaderboard</title><style>"
            "body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}tr.ref{font-style:italic;"
            "background:#eef}</style></head><body><h1>Case 5 leaderboard</h1>"
            f"<p>{canvases} hidden canvases of 0 to 6 digits at any size; COCO mAP (IoU .50:.95), AP50 and "
            "the share of canvases whose digits were counted right. Ranked by mAP.</p><table><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table></body></html>\n")
