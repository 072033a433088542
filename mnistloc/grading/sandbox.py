"""Runs untrusted exercise code in a child process; the caller only ever sees plain data.

This is the parent's side; the child's loop is ``mnistloc.grading.child``, its
confinement ``mnistloc.grading.confine`` and the reply format ``mnistloc.grading.wire``.

Entry point: ``run_exercises(sources, calls, secret=..., uid=...)`` starts ONE
fresh child Python (never the caller's process), runs ``registry.PRELUDE`` and
each exercise's source there, then ``EXERCISES[name].call(func, case)`` for
each ``(name, case)``, and returns one ``Outcome`` per call. Cases go in
pickled (the parent's own data); results come back as JSON decoded under a
budget (``wire.decode_reply``: no pickle, no size chosen by the child), so a
submission that writes its own bytes to the pipe gains nothing. The caller
judges the results. Every public call runs before any hidden one (``secret``),
and once a child has seen a hidden case, nothing it says reaches a message:
hidden outcomes carry the status's own words and the exception's type only.

What the child gets, and where it is enforced (see ``confine.capabilities()``):

- time: each exercise has ``timeout`` seconds for its source and all its
  calls; on expiry the child and everything it started is killed, the
  exercise is ``"timeout"``, and a fresh child runs the remaining ones. A
  child that dies (``os._exit``, signals) costs only the exercise it was on,
  at once, even when a process it forked holds its pipes.
- memory: ``RLIMIT_AS`` of ``memory_mb`` per process (TensorFlow reserves
  about 3 GB of address space for a tiny model, so keep >= 4096 with Keras).
- processes: new PID and IPC namespaces where the kernel allows (as root, or
  in a user namespace): the child's first process is a reaper whose death
  ends every process in the namespace, and IPC objects die with it. As root
  the child also runs as a uid of its own (``uid``, fresh per student:
  ``confine.fresh_uids``) with ``RLIMIT_NPROC``; every process of that uid is
  killed when the child is stopped, and without an IPC namespace its SysV
  IPC objects are removed.
- network: a new, empty network namespace (only a down loopback).
- files: a new mount namespace where every mount is read-only, fresh tmpfs
  cover ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock`` (and
  ``/dev/mqueue``), kept folders under them are bound back, and ``hide``
  folders (the course: gradebook, secret seed, other students) are empty; the
  child works in ``/tmp/work``. Without namespaces it works in a fresh
  temporary folder and keeps the user's file rights.
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

from mnistloc.grading.confine import (PACKAGE_ROOT, child_env, fresh_uids, guard_this_process, kill_uid,
                                      nproc_limit, sweep_ipc)
from mnistloc.grading.registry import EXERCISES, REFERENCES
from mnistloc.grading.wire import MAX_REPLY, decode_reply, encode_reply, error_name  # noqa: F401 - re-exported

STATUSES = ("ok", "error", "timeout", "crash", "missing", "forbidden")
OUTPUT_CAP = 64 * 1024  # bytes of a child's stdout+stderr kept (head and tail)
WARM_TIMEOUT = 180  # seconds to import Keras before a model exercise, outside its own time limit


class Outcome(NamedTuple):
    """What one call gave: ``status`` in ``STATUSES``; ``value`` the result when
    ``"ok"``, else a message for the student."""
    name: str
    status: str
    value: Any


# ---- parent side ---------------------------------------------------------------------------------

def run_exercises(sources: dict[str, str], calls: Sequence[tuple[str, object]], *, timeout: float = 60,
                  memory_mb: int = 4096, hide: Iterable[os.PathLike] = (), secret: Sequence[bool] | None = None,
                  uid: int | None = None) -> list[Outcome]:
    """Runs each exercise's code in a child process and returns one Outcome per call.

    Args:
        sources: exercise name -> the code of its cell (defines a function of that name).
        calls: ``(exercise name, case)`` pairs; cases are plain picklable data.
        timeout: seconds for each exercise (its source and all its calls).
        memory_mb: address-space limit of each child process.
        hide: folders the child must not see (e.g. the course folder), where the OS allows.
        secret: bool[len(calls)], which calls are hidden cases (default: none). They run after
            every public call, and their outcomes never carry the student's words or output.
        uid: as root, the child's uid (one per student, from ``confine.fresh_uids``); None: a fresh one.

    Returns:
        list[Outcome], len(calls), in the order of ``calls``. An exercise in ``calls``
        but not in ``sources`` gives ``"missing"``.

    Raises:
        TypeError: ``sources`` is not a dict of strings or ``calls`` not a list of pairs.
        ValueError: ``timeout`` or ``memory_mb`` is not positive, or ``secret`` has the wrong length.
    """
    _check_args(sources, calls, timeout, memory_mb)
    secret = [False] * len(calls) if secret is None else [bool(s) for s in secret]
    if len(secret) != len(calls):
        raise ValueError(f"`secret` should have one flag per call ({len(calls)}). Got {len(secret)}.")
    guard_this_process()
    if uid is None and os.geteuid() == 0:
        uid = fresh_uids(1)[0]
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
    left = dict.fromkeys(pending, float(timeout))
    child = None
    try:
        for hidden in (False, True):  # every public call first: a hidden input cannot reach a public message
            for name in pending:
                todo = [i for i, (n, _) in enumerate(calls) if n == name and secret[i] == hidden and i not in outcomes]
                if not todo:
                    continue
                child = child or _Child(memory_mb, [Path(p) for p in hide], uid)
                status, message, used = child.run(name, sources[name], calls, todo, left[name], outcomes, hidden)
                left[name] -= used
                if status != "ok":
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


# What a failing status says when the student's own words may not be shown (a hidden case).
_WORDS = {"timeout": "took longer than the time limit", "crash": "the process died",
          "missing": "the cell defines no function of that name"}


class _Child:
    """One child process, its pipes and its captured output."""

    def __init__(self, memory_mb: int, hide: list[Path], uid: int | None):
        self.uid = uid if os.geteuid() == 0 else None
        self.warm = False
        self.ready = False
        self.tainted = False  # a hidden case was sent: nothing this child says reaches a message
        self.loaded: set[str] = set()
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
        try:  # readable when the child exits, even if a process it forked keeps the pipes open
            self.exited = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.exited = None
        self.results = result_r
        self.inbox = bytearray()
        self.output = out_r
        self.head = bytearray()
        self.tail = bytearray()
        self._send(("config", config, None))

    def run(self, name: str, source: str, calls, todo: list[int], budget: float, outcomes: dict,
            hidden: bool) -> tuple[str, str, float]:
        """Runs the calls ``todo`` of one exercise (its source first, once per child) within ``budget`` seconds;
        fills ``outcomes``; returns the exercise's overall status and message, and the seconds it used."""
        if not self.ready:  # starting Python and the checks is not the exercise's time either
            reply = self._receive(time.monotonic() + WARM_TIMEOUT)
            if reply[0] != "ok":
                return (*self._words(name, reply), 0.0)
            self.ready = True
        if self.needs_keras(name):  # importing TensorFlow (5-7 s) is not the exercise's time
            self._send(("warm", name, None))
            reply = self._receive(time.monotonic() + WARM_TIMEOUT)
            if reply[0] != "ok":
                return (*self._words(name, reply), 0.0)
            self.warm = True
        start = time.monotonic()
        status, message = self._run(name, source, calls, todo, start + budget, outcomes, hidden)
        return status, message, time.monotonic() - start

    def _run(self, name: str, source: str, calls, todo: list[int], deadline: float, outcomes: dict,
             hidden: bool) -> tuple[str, str]:
        if name not in self.loaded:
            self._send(("exec", name, source))
            reply = self._receive(deadline)
            if reply[0] != "ok":
                return self._words(name, reply)
            self.loaded.add(name)
        for i in todo:
            self.tainted = self.tainted or hidden
            self._send(("call", name, calls[i][1]))
            reply = self._receive(deadline)
            if reply[0] in ("timeout", "crash", "forbidden"):
                return self._words(name, reply)
            status, value = self._words(name, reply)
            outcomes[i] = Outcome(name, status, _quiet_value(value) if self.tainted and status == "ok" else value)
        if self.inbox or select.select([self.results], [], [], 0.05)[0]:  # more than one reply per call: forged
            for i in todo:
                outcomes.pop(i, None)
            return "crash", "wrote its own messages to the sandbox's result pipe"
        return "ok", ""

    def _words(self, name: str, reply: tuple[str, Any]) -> tuple[str, Any]:
        """A reply as the student may see it: the child's words for public cases, else the status's own."""
        status, value = reply
        if status == "forbidden":
            return status, f"calls the mnistloc reference of `{name}`; write your own"
        if status == "ok" or not self.tainted:
            return status, value
        if status == "error":
            return status, f"raised {error_name(str(value).split(':', 1)[0])}"
        return status, _WORDS.get(status, status)

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
            watch = [self.results, self.output] + ([self.exited] if self.exited is not None else [])
            ready, _, _ = select.select(watch, [], [], left)
            if self.output in ready:
                self._drain()
            if self.results in ready:
                chunk = os.read(self.results, 1 << 20)
                if not chunk:
                    return "crash", self._death()
                self.inbox += chunk
            elif self.exited in ready:  # the child is gone; what it wrote before is in the pipe
                return self._take() or ("crash", self._death())

    def _take(self) -> tuple[str, Any] | None:
        """The first whole message in the inbox, decoded and checked, or None while it is incomplete."""
        if len(self.inbox) < 8:
            return None
        size = struct.unpack(">Q", bytes(self.inbox[:8]))[0]
        if not 0 < size <= MAX_REPLY:
            return "crash", f"sent a reply of {size} bytes, over the budget of {MAX_REPLY}"
        if len(self.inbox) < 8 + size:
            return None
        data = bytes(self.inbox[8:8 + size])
        del self.inbox[:8 + size]
        try:
            reply = decode_reply(data)
        except ValueError as err:
            return "crash", f"sent an unreadable result ({err})"
        if reply[0] not in STATUSES:
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
        """Kills the child and everything it started (its namespaces end with it), then removes its folder."""
        for fd in (self.results, self.output, self.exited):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        if self.uid is not None:
            kill_uid(self.uid)
            sweep_ipc(self.uid)  # none in an IPC namespace; a child without one leaves its objects here
        shutil.rmtree(self.workdir, ignore_errors=True)


def _quiet_value(value):
    """A result of a child that saw a hidden case: an exception keeps its (built-in) type, never its message."""
    if isinstance(value, dict) and value.get("type") == "error":
        return {**value, "error": error_name(str(value.get("error"))), "message": ""}
    return value
