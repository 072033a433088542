"""Writes the hostile and broken submissions of ``tests/corpus/`` and their expected outcomes.

Each case is a student's copy of lesson 1 (``lessons/01-single-digit``), with
answer cells taken from the solutions (``solutions/01-single-digit``) or
replaced by hostile code, or a broken file. ``expected.json`` says, per case,
the file, why it is there, and the status each exercise must get from
``mnistloc grade`` (``passed`` earns the exercise's points, anything else 0).
Rebuild after the lesson changes:

    .venv/bin/python tests/corpus/build.py
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LESSON = "01-single-digit"
EXERCISES = ("place_digit", "tight_box", "iou", "build_head")  # what most cases vary
EVERY = EXERCISES + ("classic_model", "boxes_from_cells")  # every exercise of lesson 1


def _read(folder: str) -> dict:
    return json.loads((REPO / folder / LESSON / f"{LESSON}.ipynb").read_text())


def _gid(cell: dict):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solutions() -> dict[str, str]:
    """Answer code from the solution notebook, nbgrader's markers removed."""
    out = {}
    for cell in _read("solutions")["cells"]:
        if _gid(cell) in EVERY:
            text = "".join(cell["source"])
            out[_gid(cell)] = re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", text)
    return out


SOL = _solutions()
RELEASE = _read("lessons")


def _with(answers: dict[str, str]) -> dict:
    """The released notebook with these answer cells filled in (others stay stubs)."""
    nb = copy.deepcopy(RELEASE)
    for cell in nb["cells"]:
        if _gid(cell) in answers:
            cell["source"] = answers[_gid(cell)].splitlines(keepends=True)
    return nb


NUMPY = {k: SOL[k] for k in ("place_digit", "tight_box", "iou")}  # the head left as the stub


def _base(**changes) -> dict:
    return _with({**NUMPY, **changes})


def _fn(name: str, args: str, body: str) -> str:
    return f"def {name}({args}):\n" + "".join(f"    {line}\n" for line in body.strip("\n").splitlines())


def _first(src: str, stmt: str) -> str:
    """``src`` (one function with a docstring) with ``stmt`` as the first statement after the docstring."""
    end = src.index('"""', src.index('"""') + 3) + 3
    end = src.index("\n", end) + 1
    return src[:end] + f"    {stmt}\n" + src[end:]


def _drop(nb: dict, gid: str) -> dict:
    nb["cells"] = [c for c in nb["cells"] if _gid(c) != gid]
    return nb


def _duplicate(nb: dict, gid: str) -> dict:
    i = next(i for i, c in enumerate(nb["cells"]) if _gid(c) == gid)
    twin = copy.deepcopy(nb["cells"][i])
    twin["id"] = twin.get("id", "x") + "-copy"
    nb["cells"].insert(i + 1, twin)
    return nb


def _to_markdown(nb: dict, gid: str) -> dict:
    cell = next(c for c in nb["cells"] if _gid(c) == gid)
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    return nb


def _nbformat3(nb: dict) -> dict:
    cells = [{"cell_type": c["cell_type"], "metadata": c.get("metadata", {}),
              **({"input": c["source"], "language": "python", "outputs": []} if c["cell_type"] == "code"
                 else {"source": c["source"]})} for c in nb["cells"]]
    return {"metadata": {"name": LESSON}, "nbformat": 3, "nbformat_minor": 0,
            "worksheets": [{"cells": cells, "metadata": {}}]}


IOU_OWN = SOL["iou"].replace("def iou(", "def _my_iou(")
SEEKER = '''
import os
def _seed_visible():
    """Looks for the secret seed wherever a grader might leave it."""
    if "MNISTLOC_SECRET_SEED" in os.environ:
        return True
    for pid in {os.getppid(), 1}:
        for what in ("environ", "cwd/secret_seed"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    if b"MNISTLOC_SECRET_SEED" in f.read() or what.endswith("seed"):
                        return True
            except OSError:
                pass
    return False
'''
WRITER = '''
import os
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
def _write_everywhere():
    paths = ["../../mnistloc-corpus-pwned", "/mnistloc-corpus-pwned", f"/proc/{os.getppid()}/cwd/mnistloc-corpus-pwned"]
    paths += [os.path.join(d, "mnistloc-corpus-pwned") for d in _WORLD_WRITABLE]
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("pwned")
        except OSError:
            pass
'''

BOMB = '''
import os, pickle, struct
class _Bomb:
    def __reduce__(self):
        return (bytearray, (3_000_000_000,))  # 3 GB of zeros if the grader rebuilds it
def _send_bombs():
    frames = [pickle.dumps(("ok", _Bomb())),
              b'["ok", {"type": "ndarray", "value": {"dtype": "float64", "shape": [400000000], "data": ""}}]']
    for data in frames:
        for fd in range(3, 64):  # whichever is the result pipe
            try:
                os.write(fd, struct.pack(">Q", len(data)) + data)
            except OSError:
                pass
'''
RUNNER = '''
import os, time
def _start_runner():
    """A chain of processes, each forking the next and exiting at once, for 150 s: outruns a kill sweep."""
    if os.fork():
        return
    os.setsid()
    end = time.time() + 150
    while time.time() < end:
        if os.fork():
            os._exit(0)
    os._exit(0)
_start_runner()
'''
IPC = '''
import ctypes
_libc = ctypes.CDLL(None)
_IPC_CREAT, _IPC_PRIVATE = 0o1000, 0
_IPC_IDS = (_libc.shmget(_IPC_PRIVATE, 4096, _IPC_CREAT | 0o600), _libc.msgget(_IPC_PRIVATE, _IPC_CREAT | 0o600),
            _libc.semget(_IPC_PRIVATE, 1, _IPC_CREAT | 0o600))
'''
HOLDER = '''
import os, time
def _die_leaving_a_pipe_holder():
    if os.fork() == 0:
        time.sleep(120)  # keeps every inherited pipe open
        os._exit(0)
    os._exit(0)
'''
def _public_digests() -> dict[str, list[str]]:
    """The digests (as ``LEAK._digest`` makes them) of every public case's inputs, by exercise."""
    import hashlib
    import sys

    import numpy as np

    sys.path.insert(0, str(REPO))
    from mnistloc.checks import EXERCISES as ALL

    digest = lambda args: hashlib.sha256(b"".join(  # noqa: E731
        np.ascontiguousarray(np.asarray(a)).tobytes() for a in args)).hexdigest()[:16]
    return {name: sorted(digest(c["args"]) for c in ALL[name].cases(None) if "args" in c) for name in EXERCISES}


LEAK = '''
import builtins, hashlib, os
import numpy as _np
def _digest(args):
    """What a hidden case's inputs look like to the student; tests/test_grade.py recomputes it."""
    return hashlib.sha256(b"".join(_np.ascontiguousarray(_np.asarray(a)).tobytes() for a in args)).hexdigest()[:16]
def _hidden(name, args):
    """Whether this call is a hidden case: its inputs are none of the public cases' (known in advance)."""
    builtins.__dict__.setdefault("_seen", []).append(_digest(args))
    return _digest(args) not in PUBLIC_DIGESTS[name]
'''.replace("PUBLIC_DIGESTS", repr(_public_digests()))


KEYRING = '''
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _keep(text):
    """Stores ``text`` in the uid's keyring (add_key, @u): it outlived the child that stored it."""
    data = text.encode()
    _libc.syscall(248, b"user", b"mnistloc-leak", data, len(data), -4)
def _kept():
    key = _libc.syscall(250, 10, -4, b"user", b"mnistloc-leak", 0)  # KEYCTL_SEARCH
    buf = ctypes.create_string_buffer(256)
    n = _libc.syscall(250, 11, key, buf, 256) if key > 0 else -1  # KEYCTL_READ
    return buf.raw[:n].decode() if n > 0 else "nothing"
'''
HOARD = '''
import json as _json
import mnistloc.grading.child as _child
_child.encode_reply = lambda reply: _json.dumps(["ok", [0.5] * 1_400_000]).encode()  # 7 MB of floats, each reply
'''


def _public_sums() -> list[float]:
    import sys

    sys.path.insert(0, str(REPO))
    from mnistloc.checks import EXERCISES

    return sorted({round(float(c["args"][0].sum()), 2) for c in EXERCISES["iou"].cases(None)})


ALL_PASS = {"place_digit": "passed", "tight_box": "passed", "iou": "passed", "build_head": "passed"}
BASE = {**ALL_PASS, "build_head": "failed"}  # numpy exercises done, the head left as the stub


def cases() -> dict[str, tuple]:
    """case name -> (file name or None, notebook dict, raw bytes or a special kind, why, expected statuses, requires).

    A special kind (``"fifo"``, ``"symlink"``: a notebook path that is not a regular file, which git cannot
    hold; ``"big_output"``: 30 MB, too large to keep in git) is made by ``tests/test_grade.py`` in the course
    folder.

    ``requires``: a word that ``mnistloc.grading.warden.capabilities()`` must mention for the case to hold
    (as root: "own uid", "tmpfs"); tests skip the case elsewhere.
    """
    release_text = json.dumps(RELEASE, indent=1)
    return {
        "correct": ("01-single-digit.ipynb", _with(SOL), "every answer is the reference solution",
                    dict.fromkeys(EVERY, "passed"), None),
        "partial": ("01-single-digit.ipynb", _with({
            "place_digit": SOL["place_digit"],
            "tight_box": SOL["tight_box"].replace("+ 1", "")}),
            "place_digit right, tight_box off by one, iou and the head not done",
            {"place_digit": "passed", "tight_box": "failed", "iou": "failed", "build_head": "failed"}, None),
        "not_json": ("01-single-digit.ipynb", release_text[: len(release_text) // 2].encode(),
                     "the file was cut in half: not JSON", dict.fromkeys(EXERCISES, "unreadable"), None),
        "nbformat3": ("01-single-digit.ipynb", _nbformat3(_base()),
                      "saved as nbformat 3: converted to 4 and graded, as nbgrader does", BASE, None),
        "missing": (None, None, "the student submitted nothing", dict.fromkeys(EXERCISES, "not-submitted"), None),
        "renamed": ("my-lesson-1.ipynb", _base(), "the notebook was renamed; nbgrader collects only the lesson's name",
                    dict.fromkeys(EXERCISES, "not-submitted"), None),
        "deleted_answer": ("01-single-digit.ipynb", _drop(_base(), "iou"), "the answer cell of iou was deleted",
                           {**BASE, "iou": "missing"}, None),
        "deleted_test": ("01-single-digit.ipynb", _drop(_base(), "test_iou"),
                         "the test cell of iou was deleted: the function is still graded", BASE, None),
        "duplicated": ("01-single-digit.ipynb", _duplicate(_base(), "tight_box"),
                       "the answer cell of tight_box was duplicated (nbgrader refuses it too)",
                       {**BASE, "tight_box": "duplicated"}, None),
        "markdown": ("01-single-digit.ipynb", _to_markdown(_base(), "place_digit"),
                     "the answer cell of place_digit was turned into markdown: graded as code, as nbgrader does",
                     BASE, None),
        "infinite_loop": ("01-single-digit.ipynb", _base(iou=_fn("iou", "a, b", "while True:\n    pass")),
                          "iou loops forever", {**BASE, "iou": "timeout"}, None),
        "sys_exit": ("01-single-digit.ipynb", _base(tight_box="import sys\n" + _fn("tight_box", "image",
                                                                                   "sys.exit('bye')")),
                     "tight_box calls sys.exit", {**BASE, "tight_box": "error"}, None),
        "os_exit": ("01-single-digit.ipynb", _base(place_digit="import os\nos._exit(0)\n" + SOL["place_digit"]),
                    "the place_digit cell calls os._exit when it runs", {**BASE, "place_digit": "crash"}, None),
        "kill_self": ("01-single-digit.ipynb", _base(iou="import os, signal\n" + _fn(
            "iou", "a, b", "os.kill(os.getpid(), signal.SIGKILL)")), "iou kills its own process",
            {**BASE, "iou": "crash"}, None),
        "fork_bomb": ("01-single-digit.ipynb", _base(tight_box="import os\n" + _fn(
            "tight_box", "image", "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass")),
            "tight_box forks without end (bounded by the sandbox's process limit)",
            {**BASE, "tight_box": "timeout"}, None),
        "memory_hog": ("01-single-digit.ipynb", _base(iou=_fn(
            "iou", "a, b", "keep = []\nwhile True:\n    keep.append(np.empty(100_000_000))")),
            "iou reserves memory without end (address space; pages untouched)", {**BASE, "iou": "failed"}, None),
        "print_megabytes": ("01-single-digit.ipynb",
                            _base(place_digit=_first(SOL["place_digit"], 'print("spam " * 4_000_000)')),
            "place_digit prints 20 MB before answering correctly", BASE, None),
        "read_env": ("01-single-digit.ipynb", _base(iou=IOU_OWN + SEEKER + _fn(
            "iou", "a, b", "if _seed_visible():\n    return _my_iou(a, b)\nreturn np.zeros(len(a))")),
            "iou answers right only if it can see the secret seed (it cannot)", {**BASE, "iou": "failed"}, None),
        "write_outside": ("01-single-digit.ipynb",
                          _base(place_digit=WRITER + _first(SOL["place_digit"], "_write_everywhere()")),
            "place_digit tries to write outside its folder (it cannot), then answers right", BASE, "tmpfs"),
        "reference_call": ("01-single-digit.ipynb", _base(iou="from mnistloc.boxes import iou as _ref\n" + _fn(
            "iou", "a, b", "return _ref(a, b)")), "iou calls the mnistloc reference of iou",
            {**BASE, "iou": "forbidden"}, None),
        "reference_smuggled": ("01-single-digit.ipynb", _base(
            tight_box="import builtins\nbuiltins._r = getattr(__import__('mnist' + 'loc.boxes', fromlist=['x']), "
                      "'i' + 'ou')\n" + SOL["tight_box"],
            iou=_fn("iou", "a, b", "return _r(a, b)")),
            "the tight_box cell smuggles the reference of iou to the iou cell", {**BASE, "iou": "forbidden"}, None),
        "monkeypatch_checks": ("01-single-digit.ipynb", _base(iou=(
            "import mnistloc.checks as _c, mnistloc.grading.exercises.base as _k\n"
            "_k.compare = lambda *a, **k: None\n"
            "for _e in _c.EXERCISES.values():\n    object.__setattr__(_e, 'judge', lambda *a, **k: None)\n")
            + _fn("iou", "a, b", "return np.zeros(len(a))")),
            "iou patches the checks to pass anything, then answers zeros", {**BASE, "iou": "failed"}, None),
        "hardcoded_public": ("01-single-digit.ipynb", _base(iou=IOU_OWN + _fn(
            "iou", "a, b", f"if round(float(np.asarray(a).sum()), 2) in {_public_sums()}:\n    return _my_iou(a, b)\n"
                           "return np.zeros(len(a))")),
            "iou answers right only on the public cases (fails the hidden ones, whose values stay hidden)",
            {**BASE, "iou": "failed"}, None),
        "kill_parent": ("01-single-digit.ipynb", _base(tight_box="import os, signal\n" + _fn(
            "tight_box", "image", "os.kill(os.getppid(), signal.SIGKILL)\nreturn np.zeros(4)")),
            "tight_box tries to kill the grader", {**BASE, "tight_box": "failed"}, "own uid"),
        "reply_bomb": ("01-single-digit.ipynb", _base(iou=BOMB + _first(SOL["iou"], "_send_bombs()")),
            "iou writes 60-byte replies that would expand to gigabytes in the grader", {**BASE, "iou": "crash"}, None),
        "fork_runner": ("01-single-digit.ipynb", _base(iou=RUNNER + SOL["iou"]),
            "the iou cell leaves a chain of processes that fork and exit faster than a kill sweep", BASE, None),
        "ipc_objects": ("01-single-digit.ipynb", _base(place_digit=IPC + SOL["place_digit"]),
            "the place_digit cell creates a SysV shared-memory segment, message queue and semaphore set", BASE, None),
        "pipe_holder": ("01-single-digit.ipynb", _base(tight_box=HOLDER + _first(
            SOL["tight_box"], "_die_leaving_a_pipe_holder()")),
            "tight_box exits, leaving a forked child that holds the result pipe: a crash, not a timeout",
            {**BASE, "tight_box": "crash"}, None),
        "hidden_leak": ("01-single-digit.ipynb", _base(
            place_digit=LEAK + _first(SOL["place_digit"], "print('LEAK', _digest((canvas, digit, x, y)))\n"
                                                          "    _hidden('place_digit', (canvas, digit, x, y))"),
            tight_box=LEAK + _first(SOL["tight_box"], "if _hidden('tight_box', (image,)):\n"
                                                      "        print('LEAK', ' '.join(builtins._seen))\n"
                                                      "        os._exit(3)"),
            iou=LEAK + _first(SOL["iou"], "if _hidden('iou', (a, b)):\n"
                                          "        raise type('LEAK' + _digest((a, b)), (ValueError,), {})("
                                          "'LEAK ' + ' '.join(builtins._seen))"),
            build_head=LEAK + _fn("build_head", "*args, **kwargs",
                                      "raise ValueError('LEAK ' + ' '.join(builtins.__dict__.get('_seen', [])))")),
            "each exercise tries to show the inputs of hidden cases in its feedback (message, exception type, "
            "output before dying, inputs kept from an earlier exercise)",
            {"place_digit": "passed", "tight_box": "crash", "iou": "failed", "build_head": "failed"}, None),
        "keyring_leak": ("01-single-digit.ipynb", _base(
            tight_box=LEAK + KEYRING + _first(SOL["tight_box"], "if _hidden('tight_box', (image,)):\n"
                                                                "        _keep(_digest((image,)))\n"
                                                                "        os._exit(3)"),
            iou=LEAK + KEYRING + _first(SOL["iou"], "if _hidden('iou', (a, b)):\n"
                                                    "        raise ValueError('LEAK ' + _kept())")),
            "tight_box keeps a hidden input in the kernel keyring and dies; iou, in the next child, shows it",
            {**BASE, "tight_box": "crash", "iou": "failed"}, None),
        "reply_hoard": ("01-single-digit.ipynb", _base(iou=HOARD + SOL["iou"]),
            "the iou cell makes every later reply of its child 7 MB of floats, to fill the grader's memory: iou "
            "fails, and its child, whose replies no longer pair with the requests, is replaced, so the other "
            "exercises' hidden cases run in a fresh child",
            {**BASE, "iou": "failed"}, None),
        "big_cell": ("01-single-digit.ipynb", _base(iou="_PAD = [" + "1," * 60_000 + "]\n" + SOL["iou"]),
            "the iou cell is 120,000 characters long: refused by its size, never parsed by the grader",
            {**BASE, "iou": "error"}, None),
        "big_output": (None, "big_output", "a correct notebook with a 30 MB picture in an ungraded cell's output "
                       "(made by the test): outputs are never a reason to refuse it",
                       dict.fromkeys(EVERY, "passed"), None),
        "fifo": (None, "fifo", "the notebook is a named pipe (made by the test): never read", 
                 dict.fromkeys(EXERCISES, "unreadable"), None),
        "symlink_out": (None, "symlink", "the notebook is a symbolic link out of the course (made by the test)",
                        dict.fromkeys(EXERCISES, "unreadable"), None),
    }


def main() -> int:
    expected = {}
    for name, (file, content, why, expect, requires) in cases().items():
        special = content if isinstance(content, str) else None  # a FIFO or a symlink: made by the test
        if file is not None:
            folder = HERE / name
            folder.mkdir(exist_ok=True)
            data = content if isinstance(content, bytes) else (json.dumps(content, indent=1) + "\n").encode()
            (folder / file).write_bytes(data)
        expected[name] = {"file": file and f"{name}/{file}", "why": why, "expect": expect,
                          **({"requires": requires} if requires else {}), **({"special": special} if special else {})}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(expected)} cases to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
