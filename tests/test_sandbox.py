"""The sandbox runs untrusted exercise code in a confined child: limits, isolation, honest results."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mnistloc import checks
from mnistloc.grading import confine, sandbox, warden, warm_parent, wire

CAPS = warden.capabilities()
# Root in CI: a guarantee the README promises as root must be checked there, never skipped.
MUST_CHECK = os.geteuid() == 0 or bool(os.environ.get("CI"))


def needs(word: str, limit: str):
    """Skips a test when ``capabilities()[limit]`` lacks ``word``, except as root or in CI, where it fails."""
    missing = word not in CAPS.get(limit, "")
    return pytest.mark.skipif(missing and not MUST_CHECK, reason=CAPS.get(limit, "not probed"))

@pytest.fixture(autouse=True, params=["fresh", "warm"])
def child_kind(request, monkeypatch):
    """Every test runs twice: with a fresh child per run, and with children forked from a warm parent (the class
    grader's; ``warm_parent``). A test that starts its own grading process keeps that process's default."""
    if request.param == "warm":
        monkeypatch.setitem(sandbox.run_exercises.__kwdefaults__, "warm", True)
    return request.param


@pytest.fixture(scope="module", autouse=True)
def _end_the_warm_parent():
    yield
    warm_parent.close_shared()


IOU = textwrap.dedent("""
    def iou(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
        inter = wh.prod(-1)
        area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
        union = area(a) + area(b) - inter
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)
""")
TIGHT_BOX = textwrap.dedent("""
    def tight_box(image):
        rows, cols = np.nonzero(np.asarray(image))
        if rows.size == 0:
            return np.zeros(4, np.float32)
        return np.float32([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
""")


def _calls(*names, seed=None):
    return [(n, c) for n in names for c in checks.EXERCISES[n].cases(seed)]


def _verdicts(sources, names, seed=None, **limits) -> dict[str, set]:
    """Exercise -> the set of verdicts over its cases: "pass", a failing status, or "wrong"."""
    calls = _calls(*names, seed=seed)
    out = sandbox.run_exercises(sources, calls, **limits)
    verdicts: dict[str, set] = {n: set() for n in names}
    for (name, case), o in zip(calls, out):
        if o.status != "ok":
            verdicts[name].add(o.status)
            continue
        try:
            checks.EXERCISES[name].judge(o.value, case, secret=True)
            verdicts[name].add("pass")
        except checks.CheckFailure:
            verdicts[name].add("wrong")
    return verdicts


def _probe(body: str, **limits):
    """Runs ``body`` as the inside of ``iou`` (it returns a str); gives back that str or the exception's name."""
    src = "def iou(a, b):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    (outcome,) = sandbox.run_exercises({"iou": src}, _calls("iou")[:1], **limits)
    assert outcome.status == "ok", outcome
    return outcome.value.get("text", outcome.value.get("error"))


def test_correct_code_passes_public_and_secret_cases():
    assert _verdicts({"iou": IOU, "tight_box": TIGHT_BOX}, ["iou", "tight_box"], seed=7) == {
        "iou": {"pass"}, "tight_box": {"pass"}}


def test_a_missing_exercise_and_a_broken_cell_cost_only_themselves():
    sources = {"iou": "def iou(a, b)\n    return 0\n", "union_box": "x = 1\n", "tight_box": TIGHT_BOX}
    out = _verdicts(sources, ["iou", "union_box", "one_hot", "tight_box"])
    assert out == {"iou": {"error"}, "union_box": {"missing"}, "one_hot": {"missing"}, "tight_box": {"pass"}}


def test_a_hanging_exercise_times_out_and_the_next_one_still_runs():
    sources = {"iou": "def iou(a, b):\n    while True:\n        pass\n", "tight_box": TIGHT_BOX}
    assert _verdicts(sources, ["iou", "tight_box"], timeout=5) == {"iou": {"timeout"}, "tight_box": {"pass"}}


@pytest.mark.parametrize("body", ["os._exit(3)", "os.kill(os.getpid(), signal.SIGKILL)"])
def test_a_child_that_dies_costs_only_its_exercise(body):
    sources = {"iou": f"import os, signal\ndef iou(a, b):\n    {body}\n", "tight_box": TIGHT_BOX}
    assert _verdicts(sources, ["iou", "tight_box"]) == {"iou": {"crash"}, "tight_box": {"pass"}}


def test_sys_exit_is_an_error_of_the_exercise_not_of_the_child():
    sources = {"iou": "import sys\ndef iou(a, b):\n    sys.exit(0)\n", "tight_box": TIGHT_BOX}
    out = sandbox.run_exercises(sources, _calls("iou", "tight_box")[:1])
    assert out[0].status == "error" and "SystemExit" in out[0].value
    assert _verdicts(sources, ["iou", "tight_box"]) == {"iou": {"error"}, "tight_box": {"pass"}}


def test_allocating_without_end_hits_the_memory_limit():
    hog = "def iou(a, b):\n    keep = []\n    while True:\n        keep.append(np.ones(10_000_000))\n"
    (outcome,) = sandbox.run_exercises({"iou": hog}, _calls("iou")[:1], memory_mb=1024, timeout=30)
    # Exercise.call turns the student's exception into data: {"type": "error", "error": "MemoryError", ...}
    assert outcome.status == "ok" and outcome.value["error"] == "MemoryError"


def test_printing_megabytes_is_harmless():
    noisy = "def iou(a, b):\n    print('x' * 50_000_000)\n    return _iou(a, b)\n" + IOU.replace("def iou", "def _iou")
    assert _verdicts({"iou": noisy}, ["iou"]) == {"iou": {"pass"}}


@needs("own uid", "processes")
def test_a_fork_bomb_is_bounded_and_every_process_is_killed():
    bomb = textwrap.dedent("""
        import os
        def iou(a, b):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """)
    uid = int(_probe("import os\nreturn str(os.getuid())"))
    assert _verdicts({"iou": bomb}, ["iou"], timeout=2) == {"iou": {"timeout"}}
    assert [p for p, (owner, state) in warden.processes().items() if owner == uid and state != "Z"] == []


def test_the_child_never_sees_the_secret_seed(monkeypatch):
    monkeypatch.setenv(checks.SECRET_SEED_ENV, "31415926")
    seen = _probe("import os\nreturn repr(sorted(os.environ.items()))")
    assert "31415926" not in seen and checks.SECRET_SEED_ENV not in seen


@needs("own uid", "files")
def test_the_child_cannot_write_outside_its_folder(tmp_path):
    outside = [tmp_path / "outside.txt", Path(confine.PACKAGE_ROOT) / "pwned.txt", "/var/tmp/pwned.txt"]
    body = "import os\nresult = []\n"
    for path in outside:
        body += (f"try:\n    open({str(path)!r}, 'w').write('x')\n    result.append('wrote')\n"
                 f"except OSError as e:\n    result.append(type(e).__name__)\n")
    body += "open('mine.txt', 'w').write('fine')\nresult.append(os.getcwd())\nreturn repr(result)\n"
    seen = _probe(body)
    # The first two are refused; /var/tmp is a fresh tmpfs of the child's own, gone with it.
    assert "wrote" not in seen.split(",")[0] + seen.split(",")[1], seen
    assert not any(os.path.exists(p) for p in outside)


@needs("tmpfs", "files")
def test_hidden_folders_are_empty_for_the_child(tmp_path):
    (tmp_path / "secret_seed").write_text("271828")
    seen = _probe(f"import os\nreturn repr(os.listdir({str(tmp_path)!r}))", hide=[tmp_path])
    # An empty tmpfs; gone with the child's own /tmp; or, when the checkout (and so the venv) lies under /tmp and
    # /tmp is kept, pytest's root-only folder that the child's own uid cannot enter.
    assert seen in ("[]", "FileNotFoundError", "PermissionError")
    read = _probe(f"return open({str(tmp_path / 'secret_seed')!r}).read()", hide=[tmp_path])
    assert read in ("FileNotFoundError", "PermissionError")


@needs("empty network namespace", "network")
def test_the_child_has_no_network():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        seen = _probe(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                      f"    return 'connected'\nexcept OSError as e:\n    return type(e).__name__\n")
    finally:
        server.close()
    assert seen != "connected"


def test_calling_the_reference_scores_nothing_however_it_is_reached():
    direct = "from mnistloc.boxes import iou as ref\ndef iou(a, b):\n    return ref(a, b)\n"
    hidden = ("def iou(a, b):\n    m = __import__('mnist' + 'loc.boxes', fromlist=['x'])\n"
              "    return getattr(m, 'i' + 'ou')(a, b)\n")
    smuggled = {"tight_box": "import builtins\nbuiltins._r = __import__('mnistloc.boxes', fromlist=['x']).iou\n"
                             + TIGHT_BOX,
                "iou": "def iou(a, b):\n    return _r(a, b)\n"}
    assert _verdicts({"iou": direct}, ["iou"]) == {"iou": {"forbidden"}}
    assert _verdicts({"iou": hidden}, ["iou"]) == {"iou": {"forbidden"}}
    assert _verdicts(smuggled, ["tight_box", "iou"]) == {"tight_box": {"pass"}, "iou": {"forbidden"}}


def test_other_references_may_be_used():
    uses_tight_box = "from mnistloc.boxes import tight_box\ndef iou(a, b):\n    tight_box(np.zeros((3, 3)))\n" + IOU
    assert _verdicts({"iou": uses_tight_box}, ["iou"]) == {"iou": {"pass"}}


def test_patching_the_checks_from_inside_gains_nothing():
    patch = textwrap.dedent("""
        import mnistloc.checks as c
        for ex in c.EXERCISES.values():
            object.__setattr__(ex, "judge", lambda *a, **k: None)
        def iou(a, b):
            return np.zeros(len(a), np.float32)
    """)
    assert "wrong" in _verdicts({"iou": patch}, ["iou"])["iou"]  # judged in the parent, unpatched


def _frame(data: bytes) -> bytes:
    return struct.pack(">Q", len(data)) + data


def test_replies_are_plain_data_rebuilt_by_the_parent():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = wire.decode_reply(wire.encode_reply(("ok", {"value": arr, "n": [1, 2.5, "x", None, True]})))
    assert back[0] == "ok" and back[1]["n"] == [1, 2.5, "x", None, True]
    assert back[1]["value"].dtype == np.float32 and np.array_equal(back[1]["value"], arr)
    with pytest.raises(ValueError, match="reply"):
        wire.decode_reply(pickle.dumps(("ok", 5)))  # pickle is never read
    bomb = {"dtype": "float64", "shape": [400_000_000], "data": ""}  # 3.2 GB claimed in 60 bytes
    with pytest.raises(ValueError, match="reply"):
        wire.decode_reply(json.dumps(["ok", {"__array__": bomb}]).encode())
    deep = b"[" * 100 + b"]" * 100
    with pytest.raises(ValueError, match="reply"):
        wire.decode_reply(b'["ok", ' + deep + b"]")
    with pytest.raises(ValueError, match="reply"):
        wire.decode_reply(b'["ok", "' + b"x" * (wire.MAX_REPLY + 1) + b'"]')


def test_a_reply_that_would_expand_in_the_grader_is_a_crash_and_costs_no_memory():
    # 60 bytes that unpickle to bytearray(3e9): the grading process must not rebuild them.
    bomber = textwrap.dedent("""
        import os, pickle, struct
        class _Bomb:
            def __reduce__(self):
                return (bytearray, (3_000_000_000,))
        def iou(a, b):
            data = pickle.dumps(("ok", _Bomb()))
            for fd in range(3, 64):
                try:
                    os.write(fd, struct.pack(">Q", len(data)) + data)
                except OSError:
                    pass
            return np.zeros(len(a), np.float32)
    """)
    code = ("import json, resource, sys\nfrom mnistloc import checks\nfrom mnistloc.grading import sandbox\n"
            "calls = [('iou', c) for c in checks.EXERCISES['iou'].cases(None)[:1]]\n"
            "out = sandbox.run_exercises({'iou': sys.argv[1]}, calls)\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
            "print(json.dumps([out[0].status, int(hwm)]))\n")
    # VmHWM (this process's peak RSS since its exec, in kB), not ru_maxrss: that one keeps the peak of the
    # forked parent before exec, a pytest worker with TensorFlow loaded (1.9 GB) when the whole suite runs.
    done = subprocess.run([sys.executable, "-c", code, bomber], capture_output=True, text=True, timeout=300)
    status, peak_kb = json.loads(done.stdout.splitlines()[-1])
    assert status == "crash" and peak_kb < 1024 * 1024, (status, peak_kb)  # the grader stays under 1 GiB


def test_the_grading_process_gets_a_memory_limit_of_its_own():
    code = ("import resource\nfrom mnistloc.grading import warden\nwarden.limit_grader()\n"
            "print(resource.getrlimit(resource.RLIMIT_AS)[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    limit = int(done.stdout.split()[-1])
    assert 0 < limit <= warden.GRADER_MEMORY_MB * 1024 * 1024


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="sources"):
        sandbox.run_exercises(["def iou(): pass"], [])
    with pytest.raises(TypeError, match="calls"):
        sandbox.run_exercises({}, ["iou"])
    with pytest.raises(ValueError, match="timeout"):
        sandbox.run_exercises({}, [], timeout=0)


@pytest.mark.parametrize("payload", ["5", "os.system"])
def test_a_forged_result_on_the_pipe_costs_only_its_exercise(payload):
    forger = textwrap.dedent(f"""
        import os, pickle, struct
        def iou(a, b):
            data = pickle.dumps({payload})
            for fd in range(3, 64):  # whichever is the result pipe
                try:
                    os.write(fd, struct.pack(">Q", len(data)) + data)
                except OSError:
                    pass
            return np.zeros(len(a), np.float32)
    """)
    out = _verdicts({"iou": forger, "tight_box": TIGHT_BOX}, ["iou", "tight_box"])
    assert out == {"iou": {"crash"}, "tight_box": {"pass"}}


def test_a_well_formed_forged_result_is_found_out():
    forger = textwrap.dedent("""
        import os, pickle, struct
        def iou(a, b):
            data = pickle.dumps(("ok", {"type": "ndarray", "value": np.zeros(len(a), np.float32)}))
            for fd in range(3, 64):
                try:
                    os.write(fd, struct.pack(">Q", len(data)) + data)
                except OSError:
                    pass
            return np.zeros(len(a), np.float32)
    """)
    assert _verdicts({"iou": forger, "tight_box": TIGHT_BOX}, ["iou", "tight_box"]) == {
        "iou": {"crash"}, "tight_box": {"pass"}}


def test_a_forged_reply_in_the_wire_format_is_found_out_and_never_answers_the_next_exercise():
    # A right answer that also writes a well-formed reply of its own on its last call: read as that call's reply,
    # it leaves the real one in the pipe, where the next exercise's first call would take it for its own.
    last = len(_calls("iou"))
    forger = IOU.replace("def iou(a, b):", "def _right(a, b):") + textwrap.dedent(f"""
        import os, struct
        from mnistloc.grading.exercises.outputs import reduce
        from mnistloc.grading.wire import encode_reply
        seen = []
        def iou(a, b):
            value = _right(a, b)
            seen.append(1)
            if len(seen) == {last}:
                data = encode_reply(("ok", reduce(value)))
                for fd in range(3, 64):
                    try:
                        os.write(fd, struct.pack(">Q", len(data)) + data)
                    except OSError:
                        pass
            return value
    """)
    assert _verdicts({"iou": forger, "tight_box": TIGHT_BOX}, ["iou", "tight_box"]) == {
        "iou": {"crash"}, "tight_box": {"pass"}}


@needs("tmpfs", "files")
def test_a_course_folder_that_holds_the_package_is_hidden_around_it():
    # The repository itself may be the course root: the child still imports mnistloc from it,
    # but sees none of the course's own files (here: README.md and tests/ stand in for them). A clone under a
    # folder that gets a fresh tmpfs (/tmp) has only the kept folders bound back: the rest is absent, not empty.
    seen = _probe(f"import os\nroot = {confine.PACKAGE_ROOT!r}\n"
                  "def size(p):\n    try:\n        return len(open(p).read())\n    except FileNotFoundError:\n"
                  "        return 0\n"
                  "def names(p):\n    return os.listdir(p) if os.path.isdir(p) else []\n"
                  "return repr((size(os.path.join(root, 'README.md')), names(os.path.join(root, 'tests')),"
                  " os.path.isdir(os.path.join(root, 'mnistloc'))))",
                  hide=[confine.PACKAGE_ROOT])
    assert seen == "(0, [], True)"


def test_hidden_cases_show_the_check_s_words_only():
    # A hidden case's outcome never carries the student's message or output, and neither does any outcome
    # after a hidden case ran in the same child (it could replay inputs it kept).
    leak = textwrap.dedent("""
        import builtins
        def iou(a, b):
            builtins.__dict__.setdefault("kept", []).append(repr(np.asarray(a).tolist()))
            print("SAW", builtins.kept[-1])
            raise ValueError("SAW " + builtins.kept[-1])
    """)
    calls = _calls("iou", seed=7)
    public = len(checks.EXERCISES["iou"].cases(None))
    secret = [i >= public for i in range(len(calls))]
    out = sandbox.run_exercises({"iou": leak}, calls, secret=secret)
    assert all(o.status == "ok" and o.value["error"] == "ValueError" for o in out)
    assert all("SAW" not in json.dumps(o.value) for o, s in zip(out, secret) if s)
    assert "SAW" in out[0].value["message"]  # public cases may show it


def test_a_crash_on_a_hidden_case_shows_no_output():
    dies = "import os\ndef iou(a, b):\n    print('SAW', a)\n    os._exit(3)\n"
    calls = _calls("iou", seed=7)
    (o,) = sandbox.run_exercises({"iou": dies}, calls[-1:], secret=[True])
    assert o.status == "crash" and "SAW" not in o.value and "3" not in o.value


def test_a_crash_that_leaves_a_pipe_holder_is_not_a_timeout():
    holder = textwrap.dedent("""
        import os, time
        def iou(a, b):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            os._exit(0)
    """)
    start = time.monotonic()
    (o,) = sandbox.run_exercises({"iou": holder}, _calls("iou")[:1], timeout=40)
    assert o.status == "crash" and time.monotonic() - start < 20, o


RUNNER = textwrap.dedent("""
    import os, time
    def iou(a, b):
        if os.fork() == 0:
            os.setsid()
            start = time.time()
            while time.time() < start + 40:  # a chain: fork the next, exit at once, so a kill sweep never sees it
                if os.fork():
                    os._exit(0)
                if time.time() > start + 3:
                    try:
                        os.kill(-1, 9)  # all it may signal: the next student's child, if it shares the uid
                    except OSError:
                        pass
            os._exit(0)
        return str(os.getuid())
""")


@needs("own uid", "processes")
def test_a_leftover_process_cannot_touch_the_next_child():
    (first,) = sandbox.run_exercises({"iou": RUNNER}, _calls("iou")[:1])
    assert first.status == "ok"
    assert _verdicts({"iou": IOU}, ["iou"]) == {"iou": {"pass"}}  # a fresh uid (or namespace): out of its reach
    uid = int(first.value["text"])
    assert [p for p, (owner, st) in warden.processes().items() if owner == uid and st != "Z"] == []


@needs("IPC namespace", "ipc")
def test_ipc_objects_die_with_the_child():
    maker = textwrap.dedent("""
        import ctypes, os
        def iou(a, b):
            libc = ctypes.CDLL(None)
            ids = [libc.shmget(0, 4096, 0o1600), libc.msgget(0, 0o1600), libc.semget(0, 1, 0o1600)]
            return f"{os.getuid()} {ids}"
    """)
    (o,) = sandbox.run_exercises({"iou": maker}, _calls("iou")[:1])
    uid = int(o.value["text"].split()[0])
    assert "-1" not in o.value["text"], o  # all three were made
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        col = lines[0].split().index("uid")
        assert [ln for ln in lines[1:] if int(ln.split()[col]) == uid] == []


WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")


def _writes_everywhere(mark: str) -> str:
    body = "import os\nwrote = []\n"
    for folder in WORLD_WRITABLE:
        body += (f"try:\n    open(os.path.join({folder!r}, {mark!r}), 'w').write('x')\n    wrote.append({folder!r})\n"
                 "except OSError:\n    pass\n")
    return body + "return repr(wrote)\n"


@needs("tmpfs", "files")
def test_every_world_writable_folder_is_fresh_for_the_child():
    mark = f"mnistloc-sandbox-probe-{os.getpid()}"
    _probe(_writes_everywhere(mark))
    left = sorted({os.path.realpath(f) for f in WORLD_WRITABLE if os.path.exists(os.path.join(f, mark))})
    for f in left:
        os.remove(os.path.join(f, mark))
    assert left == []


@needs("tmpfs", "files")
def test_a_package_under_tmp_still_gets_a_fresh_tmp(tmp_path, monkeypatch):
    # A clone under /tmp (CI may put one anywhere): the package is bound back into the child's fresh /tmp.
    root = tmp_path / "clone"
    shutil.copytree(Path(confine.PACKAGE_ROOT) / "mnistloc", root / "mnistloc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(tmp_path, 0o755)
    monkeypatch.setattr(confine, "PACKAGE_ROOT", str(root))
    warm_parent.close_shared()  # a warm parent of the clone's package (the grader and it share one root)
    mark = f"mnistloc-sandbox-probe-{os.getpid()}"
    try:
        seen = _probe(_writes_everywhere(mark) .replace("return repr(wrote)",
                                                        "import mnistloc\nreturn mnistloc.__file__"))
    finally:
        warm_parent.close_shared()
    left = sorted({os.path.realpath(f) for f in WORLD_WRITABLE if os.path.exists(os.path.join(f, mark))})
    for f in left:
        os.remove(os.path.join(f, mark))
    assert seen.startswith(str(root)) and left == []


def test_hidden_case_hints_carry_nothing_the_code_chose():
    from mnistloc.grading.exercises.outputs import compare, reduce

    exp = reduce({"boxes": np.zeros((3, 4), np.float32), "label": "seven", "n": [1, 2]})
    chosen = [  # each result differs from exp in one way the student chose: the secret words must not echo it
        {"type": "error", "error": "LEAK1234", "message": "LEAK1234"},
        reduce({"boxes": np.zeros((12, 34), np.float32), "label": "seven", "n": [1, 2]}),
        reduce({"boxes": np.zeros((3, 4), np.int8), "label": "seven", "n": [1, 2]}),
        reduce({"boxes": np.zeros((3, 4), np.float32), "label": "LEAK1234", "n": [1, 2]}),
        reduce({"boxes": np.zeros((3, 4), np.float32), "label": "seven", "n": [1, 2, 1234]}),
        reduce({"LEAK1234": 1, "label": "seven", "n": [1, 2]}),
        reduce(type("LEAK1234", (), {})()),
    ]
    for got in chosen:
        public, secret = compare(got, exp)
        assert secret and not any(s in secret for s in ("LEAK", "1234", "12, 34", "int8")), (public, secret)
    assert compare({"type": "error", "error": "ZeroDivisionError", "message": "x"}, exp)[1] == "raised ZeroDivisionError"


# ---- round three: the kernel's shared objects, memory outside RLIMIT_AS, the grader's own work ---------------

@needs("seccomp", "kernel")
def test_the_child_can_make_no_key_and_no_user_namespace():
    # A key in the uid's keyring outlived its child and reached the next one (finding 1); a user namespace gave
    # the capabilities to mount a tmpfs outside every limit (finding 4).
    seen = _probe("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                  "key = libc.syscall(248, b'user', b'mnistloc', b'hidden', 6, -4)\n"  # add_key(..., @u)
                  "read = libc.syscall(250, 11, -4, 0, 0)\n"  # keyctl(KEYCTL_READ, @u)
                  "userns = libc.unshare(0x10000000)\n"
                  "return repr((key, read, userns))")
    assert seen == "(-1, -1, -1)", seen


@needs("empty network namespace", "network")
def test_the_child_reaches_no_host_unix_socket():
    # /run holds the host's sockets (D-Bus, journald); an empty network namespace does not cover them.
    path = Path("/run") / f"mnistloc-probe-{os.getpid()}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        seen = _probe(f"import socket\ntry:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({str(path)!r})\n"
                      "    return 'connected'\nexcept OSError as e:\n    return type(e).__name__\n")
        listed = _probe(f"import os\nreturn repr(os.path.exists({str(path)!r}))")
    finally:
        server.close()
        path.unlink()
    assert seen != "connected" and listed == "False", (seen, listed)


@needs("memory", "memory")
def test_memfds_count_against_the_memory_limit():
    # 24 memfds of 64 MB (each under the file-size limit) held 1.5 GB outside a 1 GB RLIMIT_AS (finding 4).
    hog = ("import os, mmap\nheld = 0\nfds = []\n"
           "try:\n    for _ in range(24):\n        fd = os.memfd_create('x')\n"
           "        os.write(fd, b'\\1' * (64 << 20))\n        fds.append(fd)\n        held += 64\n"
           "except (OSError, MemoryError) as e:\n    pass\nreturn str(held)")
    src = "def iou(a, b):\n" + textwrap.indent(hog, "    ")
    (o,) = sandbox.run_exercises({"iou": src}, _calls("iou")[:1], memory_mb=1024, timeout=60)
    # The cgroup's OOM killer ends the child (a crash), or memfd_create is refused (no cgroup): never 1.5 GB held.
    assert o.status == "crash" or (o.status == "ok" and int(o.value["text"]) < 1024), o


def test_a_child_that_closes_its_output_does_not_busy_the_grader():
    # EOF on the output pipe stayed in the select set: the grader spun at half a core while the child slept.
    sleeper = ("import os, time\ndef iou(a, b):\n    null = os.open(os.devnull, os.O_WRONLY)\n"
               "    os.dup2(null, 1)\n    os.dup2(null, 2)\n    time.sleep(3)\n    return np.zeros(len(a), np.float32)\n")
    code = ("import resource, sys\nfrom mnistloc import checks\nfrom mnistloc.grading import sandbox\n"
            "calls = [('iou', c) for c in checks.EXERCISES['iou'].cases(None)[:1]]\n"
            "sandbox.run_exercises({'iou': 'def iou(a, b):\\n    return 0\\n'}, calls)\n"  # warm: imports, caches
            "before = resource.getrusage(resource.RUSAGE_SELF)\n"
            "out = sandbox.run_exercises({'iou': sys.argv[1]}, calls)\n"
            "after = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(out[0].status, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)\n")
    done = subprocess.run([sys.executable, "-c", code, sleeper], capture_output=True, text=True, timeout=300)
    status, cpu = done.stdout.split()[-2:]
    assert status == "ok" and float(cpu) < 0.5, done.stdout  # 3 s of a child's sleep: the parent idles


def test_replies_are_judged_and_dropped_as_they_come():
    # Every reply was kept until the student's last call (finding 2): with a judge, each is dropped once judged,
    # an exercise is decided at its first failing call (its other calls are not run), and a child's replies
    # have a total budget.
    calls = _calls("iou", "tight_box", seed=7)
    seen = []

    def settle(i, outcome):
        seen.append((i, outcome.status, outcome.value is not None))
        return outcome.status != "ok" or calls[i][0] == "iou"  # decide iou at its first reply
    wrong = "def iou(a, b):\n    return np.zeros(len(a), np.float32)\n"
    out = sandbox.run_exercises({"iou": wrong, "tight_box": TIGHT_BOX}, calls, settle=settle)
    first_iou = next(i for i, (n, _) in enumerate(calls) if n == "iou")
    assert [o.status for o, (n, _) in zip(out, calls) if n == "iou"][1:] == ["skipped"] * (
        sum(n == "iou" for n, _ in calls) - 1)
    assert all(o.value is None for o in out)  # nothing kept
    assert (first_iou, "ok", True) in seen and all(s == "ok" for _, s, _ in seen)
    assert sandbox.MAX_TOTAL < 100 * sandbox.MAX_REPLY


def test_a_hoarding_child_stays_within_its_reply_budget():
    hoard = ("import mnistloc.grading.child as _c, json\n"
             "_c.encode_reply = lambda reply: json.dumps(['ok', [0.5] * 1_500_000]).encode()\n" + IOU)
    calls = (_calls("iou", seed=7) * 3)[:12]  # 7.5 MB per reply: the budget (64 MB) runs out at the 9th
    assert 12 * 7.5e6 > sandbox.MAX_TOTAL
    seen = []
    sandbox.run_exercises({"iou": hoard}, calls, settle=lambda i, o: seen.append(o) or False, timeout=600)
    assert seen[-1].status == "crash" and "in all" in seen[-1].value, seen[-1]


def test_a_huge_answer_cell_is_refused_before_it_is_parsed():
    # A 3 MB cell cost 18 s and 2 GB of the grader's parse (finding 3); the cap is on the source's length.
    start = time.monotonic()
    big = "x = [" + "1," * (sandbox.MAX_SOURCE // 2 + 10) + "]\n" + IOU
    (o,) = sandbox.run_exercises({"iou": big}, _calls("iou")[:1])
    assert o.status == "error" and "at most" in o.value and time.monotonic() - start < 10
    assert sandbox.calls_reference("(" * 200_000, sandbox.REFERENCES["iou"]) is None  # no RecursionError
