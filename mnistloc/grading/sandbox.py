"""Runs untrusted exercise code in a child process; the caller only ever sees plain data.

This is the parent's side; the child's loop is ``mnistloc.grading.child`` and
its confinement ``mnistloc.grading.confine``.

``run_exercises(sources, calls)`` starts ONE fresh child Python (never the
caller's process), runs ``registry.PRELUDE`` and each exercise's source there,
then ``EXERCISES[name].call(func, case)`` for each ``(name, case)``. Cases go in
and results come back pickled over pipes; the parent unpickles results with an
allow-list (numpy arrays and plain builtins only), so a submission that writes
its own bytes to the pipe gains nothing. The parent then runs ``judge``.

What the child gets, and where it is enforced (see ``confine.capabilities()``):

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
import io
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

from mnistloc.grading.confine import PACKAGE_ROOT, UID_BASE, child_env, guard_this_process, kill_uid, nproc_limit
from mnistloc.grading.registry import EXERCISES, REFERENCES

STATUSES = ("ok", "error", "timeout", "crash", "missing", "forbidden")
OUTPUT_CAP = 64 * 1024  # bytes of a child's stdout+stderr kept (head and tail)
MAX_MESSAGE = 256 * 1024 * 1024  # bytes of one pickled result
WARM_TIMEOUT = 180  # seconds to import Keras before a model exercise, outside its own time limit


class Outcome(NamedTuple):
    """What one call gave: ``status`` in ``STATUSES``; ``value`` the result when
    ``"ok"``, else a message for the student."""
    name: str
    status: str
    value: Any


# ---- parent side ---------------------------------------------------------------------------------

def run_exercises(sources: dict[str, str], calls: Sequence[tuple[str, object]], *, timeout: float = 60,
                  memory_mb: int = 4096, hide: Iterable[os.PathLike] = ()) -> list[Outcome]:
    """Runs each exercise's code in a child process and returns one Outcome per call.

    Args:
        sources: exercise name -> the code of its cell (defines a function of that name).
        calls: ``(exercise name, case)`` pairs, in order; cases are plain picklable data.
        timeout: seconds for each exercise (its source and all its calls).
        memory_mb: address-space limit of each child process.
        hide: folders the child must not see (e.g. the course folder), where the OS allows.

    Returns:
        list[Outcome], len(calls), in the order of ``calls``. An exercise in ``calls``
        but not in ``sources`` gives ``"missing"``.

    Raises:
        TypeError: ``sources`` is not a dict of strings or ``calls`` not a list of pairs.
        ValueError: ``timeout`` or ``memory_mb`` is not positive.
    """
    _check_args(sources, calls, timeout, memory_mb)
    guard_this_process()
    order = list(dict.fromkeys(name for name, _ in calls))
    outcomes: dict[int, Outcome] = {}
    pending: list[str] = []
    for name in order:
        if name not in sources:
            _fill(outcomes, calls, name, "missing", f"no cell defines `{name}` (graded cell id {name!r})")
        elif (why := calls_reference(sources[name], REFERENCES.get(name))) is not None:
            _fill(outcomes, calls, name, "forbidden", why)
        else:
            pending.append(name)
    child = None
    try:
        for name in pending:
            child = child or _Child(memory_mb, [Path(p) for p in hide])
            status, message = child.run(name, sources[name], calls, timeout, outcomes)
            _fill(outcomes, calls, name, status, message)
            if status in ("timeout", "crash", "forbidden"):  # the child is gone or tampered with
                child.stop()
                child = None
    finally:
        if child is not None:
            child.stop()
    return [outcomes[i] for i in range(len(calls))]


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

    def __init__(self, memory_mb: int, hide: list[Path]):
        self.uid = UID_BASE + os.getpid() if os.geteuid() == 0 else None
        self.warm = False
        self.ready = False
        self.workdir = Path(tempfile.mkdtemp(prefix="mnistloc-sandbox-"))
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        config = {"memory_mb": memory_mb, "uid": self.uid,
                  "hide": [str(p.resolve()) for p in hide], "workdir": str(self.workdir),
                  "nproc": nproc_limit(), "package_root": PACKAGE_ROOT, "result_fd": result_w}
        code = (f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); "
                "from mnistloc.grading.child import main; main()")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE,
            stdout=out_w, stderr=out_w, pass_fds=(result_w,), cwd=self.workdir, env=child_env(self.workdir),
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
        exercise = EXERCISES.get(name)
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
            kill_uid(self.uid)
        shutil.rmtree(self.workdir, ignore_errors=True)

