"""Runs untrusted exercise code in a child process; the caller only ever sees plain data.

``run_exercises(sources, calls)`` starts ONE fresh child Python (never the
caller's process), runs ``checks.PRELUDE`` and each exercise's source there,
then ``EXERCISES[name].call(func, case)`` for each ``(name, case)``. Cases go in
and results come back pickled over pipes; the parent unpickles results with an
allow-list (numpy arrays and plain builtins only), so a submission that writes
its own bytes to the pipe gains nothing. The parent then runs ``judge``.

What the child gets, and where it is enforced (see ``capabilities()``):

- time: each exercise has ``timeout`` seconds for its source and all its
  calls; on expiry the child and everything it started is killed, the
  exercise is ``"timeout"``, and a fresh child runs the remaining ones. A
  child that dies (``os._exit``, signals) costs only the exercise it was on.
- memory: ``RLIMIT_AS`` of ``memory_mb`` per process (TensorFlow reserves
  about 3 GB of address space for a tiny model, so keep >= 4096 with Keras).
- processes: as root, the child drops to a uid of its own (``100000 + pid``
  of the grading process) with ``RLIMIT_NPROC``; every process of that uid is
  killed when the child is stopped. Otherwise a new session is killed as a
  group (a process that calls ``setsid`` escapes it; ``RLIMIT_NPROC`` then
  counts all of the user's processes, so it is set above their current count).
- network: a new, empty network namespace (only a down loopback) as root, or
  in a new user namespace where the kernel allows it; otherwise none.
- files: as root (or in a user namespace), a new mount namespace puts fresh
  small tmpfs over ``/tmp``, ``/var/tmp``, ``/dev/shm`` and over every path in
  ``hide`` (the course folder: gradebook, secret seed, other students); the
  child works in ``/tmp/work``. As root it also runs as its own uid, so it
  can write nowhere else. Without namespaces it works in a fresh temporary
  folder and keeps the user's file rights.
- environment: scrubbed to ``PATH``, ``HOME`` (the work folder), ``LANG`` and
  quiet TensorFlow logging; never ``MNISTLOC_SECRET_SEED``.
- output: stdout and stderr go to a pipe the parent drains and caps
  (``OUTPUT_CAP`` bytes kept), so printing megabytes costs nothing but time.
- the reference: while an exercise's code runs, the ``mnistloc`` reference of
  that same exercise is replaced by a trap; calling it makes the exercise
  ``"forbidden"``. A static check of the source (``calls_reference``) catches
  imports of it before anything runs.
"""
from __future__ import annotations

import ast
import ctypes
import functools
import io
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

STATUSES = ("ok", "error", "timeout", "crash", "missing", "forbidden")
OUTPUT_CAP = 64 * 1024  # bytes of a child's stdout+stderr kept (head and tail)
MAX_MESSAGE = 256 * 1024 * 1024  # bytes of one pickled result
HEAVY = ("tensorflow", "keras")  # imported lazily in the child: numpy-only exercises skip the 6 s
WARM_TIMEOUT = 180  # seconds to import Keras before a model exercise, outside its own time limit
UID_BASE = 100_000
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 0x1000, 0x4000, 0x40000, 2
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class Outcome(NamedTuple):
    """What one call gave: ``status`` in ``STATUSES``; ``value`` the result when
    ``"ok"``, else a message for the student."""
    name: str
    status: str
    value: Any


# ---- parent side ---------------------------------------------------------------------------------

def run_exercises(sources: dict[str, str], calls: Sequence[tuple[str, object]], *, timeout: float = 60,
                  memory_mb: int = 4096, hide: Iterable[os.PathLike] = (),
                  checks_module: str = "mnistloc.checks") -> list[Outcome]:
    """Runs each exercise's code in a child process and returns one Outcome per call.

    Args:
        sources: exercise name -> the code of its cell (defines a function of that name).
        calls: ``(exercise name, case)`` pairs, in order; cases are plain picklable data.
        timeout: seconds for each exercise (its source and all its calls).
        memory_mb: address-space limit of each child process.
        hide: folders the child must not see (e.g. the course folder), where the OS allows.
        checks_module: the module with ``PRELUDE``, ``EXERCISES`` and ``REFERENCES``.

    Returns:
        list[Outcome], len(calls), in the order of ``calls``. An exercise in ``calls``
        but not in ``sources`` gives ``"missing"``.

    Raises:
        TypeError: ``sources`` is not a dict of strings or ``calls`` not a list of pairs.
        ValueError: ``timeout`` or ``memory_mb`` is not positive.
    """
    _check_args(sources, calls, timeout, memory_mb)
    guard_this_process()
    import importlib

    checks = importlib.import_module(checks_module)
    order = list(dict.fromkeys(name for name, _ in calls))
    outcomes: dict[int, Outcome] = {}
    pending: list[str] = []
    for name in order:
        if name not in sources:
            _fill(outcomes, calls, name, "missing", f"no cell defines `{name}` (graded cell id {name!r})")
        elif (why := calls_reference(sources[name], checks.REFERENCES.get(name))) is not None:
            _fill(outcomes, calls, name, "forbidden", why)
        else:
            pending.append(name)
    child = None
    try:
        for name in pending:
            child = child or _Child(checks_module, memory_mb, [Path(p) for p in hide])
            status, message = child.run(name, sources[name], calls, timeout, outcomes)
            _fill(outcomes, calls, name, status, message)
            if status in ("timeout", "crash", "forbidden"):  # the child is gone or tampered with
                child.stop()
                child = None
    finally:
        if child is not None:
            child.stop()
    return [outcomes[i] for i in range(len(calls))]


def guard_this_process() -> None:
    """Makes this process non-dumpable when it is not root, so that a child of the same user cannot
    read its ``/proc/<pid>/environ`` (the secret seed), ``cwd`` or memory. (As root the child runs as
    another uid and cannot anyway.)"""
    if os.geteuid() != 0 and sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _check_args(sources, calls, timeout, memory_mb) -> None:
    if not isinstance(sources, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in sources.items()):
        raise TypeError(f"`sources` should be a dict of exercise name -> code str. Got {type(sources).__name__}.")
    if not all(isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str) for c in calls):
        raise TypeError("`calls` should be a list of (exercise name, case) tuples.")
    if not timeout > 0:
        raise ValueError(f"`timeout` should be > 0 seconds. Got timeout={timeout!r}.")
    if not memory_mb > 0:
        raise ValueError(f"`memory_mb` should be > 0. Got memory_mb={memory_mb!r}.")


def _fill(outcomes: dict, calls, name: str, status: str, message: str) -> None:
    """Gives every not yet answered call of ``name`` the same failing outcome."""
    for i, (n, _) in enumerate(calls):
        if n == name and i not in outcomes:
            outcomes[i] = Outcome(name, status, message)


def calls_reference(source: str, reference) -> str | None:
    """Returns why ``source`` uses the ``mnistloc`` reference function ``reference``, or None.

    Flags ``from mnistloc... import <name>`` (or ``*``), and any ``.<name>``
    attribute or ``"<name>"`` string in code that imports ``mnistloc``.
    """
    if reference is None:
        return None
    ref = getattr(reference, "__name__", None)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # the child reports the syntax error
    imports_mnistloc = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mnistloc":
            imports_mnistloc = True
            if any(a.name in (ref, "*") for a in node.names):
                return f"imports the mnistloc reference `{reference.__module__}.{ref}` of this exercise"
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mnistloc" for a in node.names):
            imports_mnistloc = True
        elif isinstance(node, ast.Constant) and node.value == "mnistloc":
            imports_mnistloc = True  # __import__("mnistloc...") or importlib
    if not imports_mnistloc:
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == ref) or (
                isinstance(node, ast.Constant) and node.value == ref):
            return f"uses the mnistloc reference `{reference.__module__}.{ref}` of this exercise"
    return None


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and builtins only: a child's bytes never run code here."""
    _NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
              ("numpy.core.numeric", "_frombuffer")}
    _BUILTINS = {"complex", "set", "frozenset", "slice", "range", "bytearray"}

    def find_class(self, module: str, name: str):
        if (module, name) in self._NUMPY or module == "numpy.dtypes":
            return super().find_class(module, name)
        if module == "builtins" and name in self._BUILTINS:
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a result may hold arrays and plain data only, not {module}.{name}")


def _loads(data: bytes):
    return _SafeUnpickler(io.BytesIO(data)).load()


class _Child:
    """One child process, its pipes and its captured output."""

    def __init__(self, checks_module: str, memory_mb: int, hide: list[Path]):
        self.uid = UID_BASE + os.getpid() if os.geteuid() == 0 else None
        self.checks_module = checks_module
        self.warm = False
        self.ready = False
        self.workdir = Path(tempfile.mkdtemp(prefix="mnistloc-sandbox-"))
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        config = {"checks": checks_module, "memory_mb": memory_mb, "uid": self.uid,
                  "hide": [str(p.resolve()) for p in hide], "workdir": str(self.workdir),
                  "nproc": _nproc_limit(), "package_root": _PACKAGE_ROOT, "result_fd": result_w}
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
                "from mnistloc.sandbox import _child_main; _child_main()")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE,
            stdout=out_w, stderr=out_w, pass_fds=(result_w,), cwd=self.workdir, env=_child_env(self.workdir),
            start_new_session=True, close_fds=True)
        os.close(out_w)
        os.close(result_w)
        self.results = result_r
        self.inbox = bytearray()
        self.output = out_r
        self.head = bytearray()
        self.tail = bytearray()
        self._send(("config", config, None))

    def run(self, name: str, source: str, calls, timeout: float, outcomes: dict) -> tuple[str, str]:
        """Runs one exercise; fills ``outcomes`` for its calls; returns its overall status."""
        if not self.ready:  # starting Python and the checks is not the exercise's time either
            reply = self._receive(time.monotonic() + max(timeout, WARM_TIMEOUT))
            if reply[0] != "ok":
                return reply
            self.ready = True
        if self.needs_keras(name):  # importing TensorFlow (5-7 s) is not the exercise's time
            self._send(("warm", name, None))
            reply = self._receive(time.monotonic() + max(timeout, WARM_TIMEOUT))
            if reply[0] != "ok":
                return reply
            self.warm = True
        deadline = time.monotonic() + timeout
        self._send(("exec", name, source))
        reply = self._receive(deadline)
        if reply[0] != "ok":
            return reply
        for i, (n, case) in enumerate(calls):
            if n != name:
                continue
            self._send(("call", name, case))
            reply = self._receive(deadline)
            if reply[0] in ("timeout", "crash", "forbidden"):
                return reply
            outcomes[i] = Outcome(name, reply[0], reply[1])
        if self.inbox or select.select([self.results], [], [], 0.05)[0]:  # more than one reply per call: forged
            for i in [i for i, (n, _) in enumerate(calls) if n == name]:
                outcomes.pop(i, None)
            return "crash", "wrote its own messages to the sandbox's result pipe"
        return "ok", ""

    def needs_keras(self, name: str) -> bool:
        """Whether ``name`` is a model exercise and this child has not imported Keras yet."""
        import importlib

        exercise = importlib.import_module(self.checks_module).EXERCISES.get(name)
        return bool(getattr(exercise, "keras", False)) and not self.warm

    def _send(self, message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(struct.pack(">Q", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child died; _receive reports it

    def _receive(self, deadline: float) -> tuple[str, Any]:
        """Waits for one (status, value) reply, draining output; times out at ``deadline``."""
        while True:
            reply = self._take()
            if reply is not None:
                return reply
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", f"took longer than the time limit; {self._said()}"
            ready, _, _ = select.select([self.results, self.output], [], [], left)
            if self.output in ready:
                self._drain()
            if self.results in ready:
                chunk = os.read(self.results, 1 << 20)
                if not chunk:
                    return "crash", self._death()
                self.inbox += chunk

    def _take(self) -> tuple[str, Any] | None:
        """The first whole message in the inbox, decoded and checked, or None while it is incomplete."""
        if len(self.inbox) < 8:
            return None
        size = struct.unpack(">Q", bytes(self.inbox[:8]))[0]
        if not 0 < size <= MAX_MESSAGE:
            return "crash", f"sent a result of {size} bytes"
        if len(self.inbox) < 8 + size:
            return None
        data = bytes(self.inbox[8:8 + size])
        del self.inbox[:8 + size]
        try:
            reply = _loads(data)
        except Exception as err:  # noqa: BLE001 - any bad bytes from the child
            return "crash", f"sent an unreadable result ({err})"
        if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] in STATUSES):
            return "crash", "sent a malformed result"
        return reply

    def _drain(self) -> None:
        chunk = os.read(self.output, 1 << 20)
        if len(self.head) < OUTPUT_CAP // 2:
            take = OUTPUT_CAP // 2 - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        self.tail = (self.tail + chunk)[-(OUTPUT_CAP // 2):]

    def _said(self) -> str:
        text = (bytes(self.head) + (b"\n...\n" if self.tail else b"") + bytes(self.tail)).decode(errors="replace")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return f"last output: {lines[-1][:300]!r}" if lines else "no output"

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return f"closed its result pipe; {self._said()}"
        if code < 0:
            return f"the process was killed by signal {signal.Signals(-code).name}; {self._said()}"
        return f"the process exited with code {code}; {self._said()}"

    def stop(self) -> None:
        """Kills the child and everything it started, then removes its folder."""
        for fd in (self.results, self.output):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        if self.uid is not None:
            _kill_uid(self.uid)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _kill_uid(uid: int) -> None:
    """SIGKILLs every live process of ``uid`` until none is left (forks racing the sweep included)."""
    for _ in range(500):
        alive = [pid for pid, (owner, state) in _processes().items() if owner == uid and state != "Z"]
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (real uid, state letter) of every process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            found[int(entry)] = (int(fields["Uid"].split()[0]), fields["State"].split()[0])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return found


def _nproc_limit() -> int:
    """Threads count as processes: TensorFlow starts about two per core."""
    return 64 + 4 * (os.cpu_count() or 2)


def _child_env(workdir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}


_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
root = os.geteuid() == 0
flags = 0x40000000 | 0x20000 | (0 if root else 0x10000000)
namespaces = libc.unshare(flags) == 0
try:
    os.setgid(UID); os.setuid(UID); own_uid = root
except OSError:
    own_uid = False
print(int(namespaces), int(own_uid))
"""


@functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, str]:
    """Says how each limit is enforced on this machine, probed once with a throwaway child.

    Returns:
        dict: limit -> how (``time``, ``memory``, ``processes``, ``network``, ``files``, ``environment``).
    """
    root = os.geteuid() == 0
    code = _PROBE.replace("UID", str(UID_BASE + os.getpid()))
    try:
        out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60).stdout
        namespaces, own_uid = (bool(int(x)) for x in out.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        namespaces, own_uid = False, False
    where = "as root" if root else "in a user namespace"
    return {
        "time": "per exercise; the child and all it started are killed on expiry",
        "memory": "RLIMIT_AS per process",
        "processes": "own uid + RLIMIT_NPROC, every process of the uid killed" if own_uid
        else "RLIMIT_NPROC above the user's process count + session kill (setsid escapes)",
        "network": f"empty network namespace ({where})" if namespaces else "not enforced (no namespaces here)",
        "files": ("own uid" if own_uid else "the user's rights") + (
            ", tmpfs over /tmp, /var/tmp, /dev/shm and hidden folders" if namespaces else ", a temporary folder"),
        "environment": "scrubbed (no secret seed)",
    }


# ---- child side ----------------------------------------------------------------------------------

class _ReferenceCalled(BaseException):
    """Raised by the trap that replaces the reference of the running exercise."""


def _child_main() -> None:
    """Entry point of the child: confines itself, then serves exec/call messages from stdin."""
    commands = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    kind, config, _ = _read(commands)
    results = os.fdopen(config["result_fd"], "wb")
    _confine(config)
    import importlib

    checks = importlib.import_module(config["checks"])
    base = _prelude(getattr(checks, "PRELUDE", ""))
    funcs = {}
    _reply(results, ("ok", None))  # ready
    while True:
        try:
            message = _read(commands)
        except EOFError:
            return
        _reply(results, _serve(message, checks, base, funcs))


def _reply(results, reply: tuple) -> None:
    data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    results.write(struct.pack(">Q", len(data)) + data)
    results.flush()


def _read(stream) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    return pickle.loads(stream.read(struct.unpack(">Q", head)[0]))


def _serve(message, checks, base: dict, funcs: dict) -> tuple[str, Any]:
    """Answers one ("exec" | "call", name, source | case) message with (status, value)."""
    kind, name, payload = message
    if kind == "warm":
        import importlib

        importlib.import_module("keras")
        importlib.import_module("mnistloc.models")  # the heads' references, to be trapped
        return "ok", None
    trap = _Trap(checks.REFERENCES.get(name), name)
    try:
        reply = _attempt(kind, name, payload, checks, base, funcs)
    finally:
        trap.undo()
    if trap.sprung():
        return "forbidden", f"calls the mnistloc reference of `{name}`; write your own"
    return reply


def _attempt(kind: str, name: str, payload, checks, base: dict, funcs: dict) -> tuple[str, Any]:
    try:
        if kind == "exec":
            namespace = dict(base)
            exec(compile(payload, f"<exercise {name}>", "exec"), namespace)
            func = namespace.get(name)
            if not callable(func):
                return "missing", f"the cell runs but defines no function `{name}`"
            funcs[name] = func
            return "ok", None
        value = checks.EXERCISES[name].call(funcs[name], payload)
        pickle.loads(pickle.dumps(value))  # fail here, not in the parent, if unpicklable
        return "ok", value
    except _ReferenceCalled:
        return "forbidden", f"calls the mnistloc reference of `{name}`; write your own"
    except MemoryError:
        return "error", "MemoryError: ran out of memory (the sandbox's memory limit)"
    except BaseException as err:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all the student's
        return "error", f"{type(err).__name__}: {err}"[:2000]


_TRAP_NAME = "__mnistloc_sandbox_trap__"


def _trap_body(*args, **kwargs):
    return __mnistloc_sandbox_trap__()  # noqa: F821 - resolved in the reference's own globals


class _Trap:
    """While alive, the reference of one exercise raises ``_ReferenceCalled`` when called.

    The trap swaps the ``__code__`` of the function objects themselves, so a copy
    taken earlier (``ref = mnistloc.boxes.iou`` in another cell) springs it too.
    Trapped: the reference itself when it is a plain function, and every function
    of that name in a loaded ``mnistloc`` module (a lazy reference such as
    ``head_checks._ref("build_box_head")`` stands for ``mnistloc.models.build_box_head``).
    """

    def __init__(self, reference, name: str):
        self.sprung_flag = False
        self.swapped: list[tuple[types.FunctionType, types.CodeType]] = []
        if reference is None:
            return

        def spring():
            self.sprung_flag = True
            raise _ReferenceCalled(name)

        for func in self._targets(reference):
            func.__globals__[_TRAP_NAME] = spring
            self.swapped.append((func, func.__code__))
            func.__code__ = _trap_body.__code__

    def _targets(self, reference) -> list:
        ref_name = getattr(reference, "__name__", None)
        found = {id(reference): reference} if isinstance(reference, types.FunctionType) else {}
        for modname, module in list(sys.modules.items()):
            if modname.startswith("mnistloc") and "check" not in modname and modname != __name__ and module:
                value = vars(module).get(ref_name)
                if isinstance(value, types.FunctionType):
                    found[id(value)] = value
        return [f for f in found.values() if not f.__code__.co_freevars]

    def undo(self) -> None:
        for func, code in self.swapped:
            func.__code__ = code
            func.__globals__.pop(_TRAP_NAME, None)

    def sprung(self) -> bool:
        return self.sprung_flag


class _Lazy:
    """A module imported on first attribute access (keeps numpy-only exercises fast)."""

    def __init__(self, module: str, attr: str | None = None):
        object.__setattr__(self, "_where", (module, attr))

    def _load(self):
        import importlib

        module, attr = object.__getattribute__(self, "_where")
        try:
            return getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
        except AttributeError:
            return importlib.import_module(f"{module}.{attr}")

    def __getattr__(self, item):
        return getattr(self._load(), item)

    def __call__(self, *args, **kwargs):
        return self._load()(*args, **kwargs)


def _prelude(prelude: str) -> dict:
    """Runs the prelude; ``import keras`` and friends bind lazy modules instead."""
    namespace: dict = {"__name__": "__main__"}
    for stmt in ast.parse(prelude).body:
        if isinstance(stmt, ast.Import) and all(a.name.split(".")[0] in HEAVY for a in stmt.names):
            for a in stmt.names:
                if a.asname:
                    namespace[a.asname] = _Lazy(a.name)
                else:
                    namespace[a.name.split(".")[0]] = _Lazy(a.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] in HEAVY and stmt.level == 0:
            for a in stmt.names:
                namespace[a.asname or a.name] = _Lazy(stmt.module, a.name)
        else:
            exec(compile(ast.Module([stmt], []), "<prelude>", "exec"), namespace)
    return namespace


def _confine(config: dict) -> None:
    """Limits, namespaces and a dropped uid; runs before any student code."""
    libc = ctypes.CDLL(None, use_errno=True)
    root = os.geteuid() == 0
    namespaces = False
    if root:
        namespaces = libc.unshare(_CLONE_NEWNET | _CLONE_NEWNS) == 0
    else:
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWNS) == 0:
            namespaces = True
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
    workdir = config["workdir"]
    if namespaces:
        workdir = _mount_tmpfs(libc, config, root)
    os.chdir(workdir)
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    mb = 1024 * 1024
    _limit(resource.RLIMIT_AS, config["memory_mb"] * mb)
    _limit(resource.RLIMIT_FSIZE, 64 * mb)
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        if not (root and config["uid"] is not None):
            raise PermissionError("not root")
        _limit(resource.RLIMIT_NPROC, config["nproc"])
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
    except OSError:  # no CAP_SETUID (some containers) or not root: the user's own rights
        _limit(resource.RLIMIT_NPROC, _user_processes() + config["nproc"])


def _mount_tmpfs(libc, config: dict, root: bool) -> str:
    """Fresh tmpfs over /tmp, /var/tmp, /dev/shm and the hidden folders; returns the work folder."""
    libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
    uid = config["uid"] if root else None
    keep = _keep_paths(config["package_root"])
    fresh_tmp = not any(_inside(k, "/tmp") for k in keep)  # a venv under /tmp: only our own folder
    top = "/tmp" if fresh_tmp else config["workdir"]
    if libc.mount(b"tmpfs", top.encode(), b"tmpfs", 0, b"size=256m,mode=0711") != 0:
        return config["workdir"]
    if uid is not None:
        _expose(libc, keep, os.path.join(top, ".expose"))
    for path in ["/var/tmp", "/dev/shm", *config["hide"]]:
        _hide(libc, path, keep)
    work = os.path.join(top, "work")
    os.makedirs(work, exist_ok=True)
    if uid is not None:
        os.chown(work, uid, uid)
    return work


def _inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def _keep_paths(package_root: str) -> list[str]:
    """Folders the child needs: the package, the Python and its site-packages (real paths)."""
    python = (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
              *(p for p in sys.path if p != package_root))
    paths = {os.path.realpath(p) for p in (os.path.join(package_root, "mnistloc"), *python) if p and os.path.isdir(p)}
    return sorted(p for p in paths if not any(q != p and _inside(p, q) for q in paths))


def _hide(libc, path: str, keep: list[str]) -> None:
    """Covers ``path`` (a tmpfs over a folder, /dev/null over a file); around kept folders, its entries one by one.

    A course folder that is the repository itself keeps ``mnistloc/`` and ``.venv/`` visible
    and hides the rest (gradebook.db, secret_seed, submitted/, ...).
    """
    if os.path.islink(path) or not os.path.exists(path) or any(k == path for k in keep):
        return
    if any(_inside(k, path) for k in keep):
        for entry in sorted(os.listdir(path)):
            _hide(libc, os.path.join(path, entry), keep)
    elif os.path.isdir(path):
        libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"size=1m,mode=0755")
    else:
        libc.mount(b"/dev/null", path.encode(), None, _MS_BIND, None)


def _expose(libc, keep: list[str], staging: str) -> None:
    """Makes every ``keep`` folder reachable by the dropped uid.

    A folder under a closed one (``/root/.pyenv`` under ``/root``, mode 700) is
    bound aside, a tmpfs (mode 755) covers the closed folder, hiding the rest of
    it, and the folder is bound back in place.
    """
    closed: dict[str, list[str]] = {}
    for path in keep:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:i])
            if not os.stat(folder).st_mode & 0o001:
                closed.setdefault(folder, []).append(path)
                break
    for n, (folder, paths) in enumerate(closed.items()):
        aside = []
        for i, path in enumerate(paths):
            spot = os.path.join(staging, f"{n}-{i}")
            os.makedirs(spot)
            libc.mount(path.encode(), spot.encode(), None, _MS_BIND | _MS_REC, None)
            aside.append((spot, path))
        libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"size=1m,mode=0755")
        for spot, path in aside:
            os.makedirs(path, mode=0o755, exist_ok=True)
            libc.mount(spot.encode(), path.encode(), None, _MS_BIND | _MS_REC, None)
            libc.umount2(spot.encode(), _MNT_DETACH)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _limit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def _user_processes() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count
