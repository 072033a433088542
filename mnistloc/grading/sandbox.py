"""Runs untrusted exercise code in a child process; the caller only ever sees plain data.

This is the parent's side; the child's loop is ``mnistloc.grading.child``, its
confinement ``mnistloc.grading.confine`` and the reply format ``mnistloc.grading.wire``.

Entry point: ``run_exercises(sources, calls, secret=..., uid=...)`` starts ONE
fresh child Python (never the caller's process; with ``warm=True`` a fork of a
warm parent that imported TensorFlow once, ``mnistloc.grading.warm_parent``), runs ``registry.PRELUDE`` and
each exercise's source there, then ``EXERCISES[name].call(func, case)`` for
each ``(name, case)``, and returns one ``Outcome`` per call. Cases go in
pickled (the parent's own data); results come back as JSON decoded under a
budget (``wire.decode_reply``: no pickle, no size chosen by the child), so a
submission that writes its own bytes to the pipe gains nothing. The caller
judges the results. Every public call runs before any hidden one (``secret``),
and once a child has seen a hidden case, nothing it says reaches a message:
hidden outcomes carry the status's own words and the exception's type only.

What the child gets, and where it is enforced (see ``warden.capabilities()``):

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
  ``warden.fresh_uids``) with ``RLIMIT_NPROC``; every process of that uid is
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
  (``launcher.OUTPUT_CAP`` bytes kept), so printing megabytes costs nothing but time.
- replies: each under ``MAX_REPLY``, all of one child's under ``MAX_TOTAL``, and (with
  ``settle``) judged and dropped as they come.
- the kernel: a memory cgroup per child where one can be made, seccomp refusing keys,
  new user namespaces and Unix sockets, ``/run`` hidden (``confine``).
- the reference: while an exercise's code runs, the ``mnistloc`` reference of
  that same exercise is replaced by a trap; calling it makes the exercise
  ``"forbidden"``. A static check of the source (``calls_reference``) catches
  imports of it before anything runs.
"""
from __future__ import annotations

import ast
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from mnistloc.grading import warm_parent
from mnistloc.grading.warden import fresh_uids, guard_this_process
from mnistloc.grading.launcher import Child, Inbox, Refused
from mnistloc.grading.registry import EXERCISES, REFERENCES
from mnistloc.grading.wire import MAX_REPLY, decode_reply, error_name

STATUSES = ("ok", "error", "timeout", "crash", "missing", "forbidden")
WARM_TIMEOUT = 180  # seconds to import Keras before a model exercise, outside its own time limit
MAX_SOURCE = 100_000  # characters of one answer cell: parsed here (calls_reference), so bounded
MAX_TOTAL = 64 * 1024 * 1024  # bytes of replies one child may send in all (a student's ~290 calls: < 1 MB)


class Outcome(NamedTuple):
    """What one call gave: ``status`` in ``STATUSES``; ``value`` the result when
    ``"ok"``, else a message for the student."""
    name: str
    status: str
    value: Any


# ---- parent side ---------------------------------------------------------------------------------

def run_exercises(sources: dict[str, str], calls: Sequence[tuple[str, object]], *, timeout: float = 60,
                  memory_mb: int = 4096, hide: Iterable[os.PathLike] = (), secret: Sequence[bool] | None = None,
                  uid: int | None = None, settle: Callable[[int, Outcome], bool] | None = None,
                  warm: bool = False) -> list[Outcome]:
    """Runs each exercise's code in a child process and returns one Outcome per call.

    Args:
        sources: exercise name -> the code of its cell (defines a function of that name).
        calls: ``(exercise name, case)`` pairs; cases are plain picklable data.
        timeout: seconds for each exercise (its source and all its calls).
        memory_mb: address-space limit of each child process (and its memory cgroup's, where there is one).
        hide: folders the child must not see (e.g. the course folder), where the OS allows.
        secret: bool[len(calls)], which calls are hidden cases (default: none). They run after
            every public call, and once any child of this run has seen one, nothing a child says
            reaches a message (its outcomes carry the status's own words and built-in type names only).
        uid: as root, the child's uid (one per student, from ``warden.fresh_uids``); None: a fresh one.
        settle: called with each call's index and Outcome as soon as it is known (the judge); returns True once
            the exercise is decided, and its remaining calls are not run (their outcome: ``"skipped"``). The
            Outcome kept then has value None, so replies never pile up in this process.
        warm: fork the children from this process's warm parent (``warm_parent.shared()``: TensorFlow imported
            once per grading process, not once per student); a fresh child where it cannot start.

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
    run = _Run(calls, settle)
    pending: list[str] = []
    for name in dict.fromkeys(name for name, _ in calls):
        if name not in sources:
            run.fill(name, "missing", f"no cell defines `{name}` (graded cell id {name!r})")
        elif len(sources[name]) > MAX_SOURCE:
            run.fill(name, "error", f"the cell has {len(sources[name])} characters; an answer cell may have "
                                    f"at most {MAX_SOURCE}")
        elif (why := calls_reference(sources[name], REFERENCES.get(name))) is not None:
            run.fill(name, "forbidden", why)
        else:
            pending.append(name)
    left = dict.fromkeys(pending, float(timeout))
    child = None
    try:
        for hidden in (False, True):  # every public call first: a hidden input cannot reach a public message
            for name in pending:
                todo = [i for i, (n, _) in enumerate(calls) if n == name and secret[i] == hidden and not run.has(i)]
                if not todo:
                    continue
                child = child or _Child(memory_mb, [Path(p) for p in hide], uid, tainted=run.tainted, warm=warm)
                status, message, used = child.run(name, sources[name], calls, todo, left[name], run, hidden)
                run.tainted = run.tainted or child.tainted  # per student: a later child says nothing either
                left[name] -= used
                if status != "ok":
                    run.fill(name, status, message)
                if status in ("timeout", "crash", "forbidden"):  # the child is gone or tampered with
                    child.stop()
                    child = None
    finally:
        if child is not None:
            child.stop()
    return run.outcomes()


class _Run:
    """The outcomes of one ``run_exercises``: each call's, settled (judged) as soon as it is known."""

    def __init__(self, calls, settle):
        self.calls, self.settle = calls, settle
        self.known: dict[int, Outcome] = {}
        self.decided: set[str] = set()
        self.tainted = False  # a child of this run has seen a hidden case

    def has(self, i: int) -> bool:
        return i in self.known or self.calls[i][0] in self.decided

    def record(self, i: int, outcome: Outcome) -> bool:
        """Keeps ``outcome`` of call ``i`` (settled, its value dropped, when there is a judge); returns whether
        its exercise is decided."""
        if self.settle is None:
            self.known[i] = outcome
            return False
        if self.settle(i, outcome):
            self.decided.add(outcome.name)
        self.known[i] = outcome._replace(value=None)
        return outcome.name in self.decided

    def fill(self, name: str, status: str, message: str) -> None:
        """Gives every not yet answered call of ``name`` the same failing outcome."""
        for i, (n, _) in enumerate(self.calls):
            if n == name and not self.has(i):
                self.record(i, Outcome(name, status, message))

    def outcomes(self) -> list[Outcome]:
        return [self.known.get(i, Outcome(n, "skipped", None)) for i, (n, _) in enumerate(self.calls)]


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


def calls_reference(source: str, reference) -> str | None:
    """Returns why ``source`` uses the ``mnistloc`` reference function ``reference``, or None.

    Flags ``from mnistloc... import <name>`` (or ``*``), and any ``.<name>``
    attribute or ``"<name>"`` string in code that imports ``mnistloc``.
    """
    if reference is None:
        return None
    ref = getattr(reference, "__name__", None)
    if len(source) > MAX_SOURCE:
        return None  # never parsed here; ``run_exercises`` refuses it
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
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
    """One child process (``launcher.Child`` running ``mnistloc.grading.child``) and the exercises it loaded."""

    def __init__(self, memory_mb: int, hide: list[Path], uid: int | None, *, tainted: bool = False,
                 warm: bool = False):
        self.warm = False
        self.ready = False
        self.tainted = tainted  # a hidden case was sent to this child or an earlier one of the student
        self.loaded: set[str] = set()
        self.inbox = Inbox(MAX_TOTAL)
        self.child = Child("mnistloc.grading.child", memory_mb=memory_mb, hide=hide, uid=uid,
                           warm=warm_parent.shared() if warm else None)

    @property
    def uid(self) -> int | None:
        return self.child.uid

    def run(self, name: str, source: str, calls, todo: list[int], budget: float, run: _Run,
            hidden: bool) -> tuple[str, str, float]:
        """Runs the calls ``todo`` of one exercise (its source first, once per child) within ``budget`` seconds;
        records their outcomes in ``run``; returns the exercise's overall status and message, and the seconds
        it used."""
        if not self.ready:  # starting Python and the checks is not the exercise's time either
            reply = self._receive(time.monotonic() + WARM_TIMEOUT)
            if reply[0] != "ok":
                return (*self._words(name, reply), 0.0)
            self.ready = True
        if self.needs_keras(name):  # importing TensorFlow (5-7 s) is not the exercise's time
            self.child.send(("warm", name, None))
            reply = self._receive(time.monotonic() + WARM_TIMEOUT)
            if reply[0] != "ok":
                return (*self._words(name, reply), 0.0)
            self.warm = True
        start = time.monotonic()
        status, message = self._run(name, source, calls, todo, start + budget, run, hidden)
        return status, message, time.monotonic() - start

    def _run(self, name: str, source: str, calls, todo: list[int], deadline: float, run: _Run,
             hidden: bool) -> tuple[str, str]:
        if name not in self.loaded:
            self.child.send(("exec", name, source))
            reply = self._receive(deadline)
            if reply[0] != "ok":
                return self._words(name, reply)
            self.loaded.add(name)
        done = []
        for i in todo:
            self.tainted = self.tainted or hidden
            self.child.send(("call", name, calls[i][1]))
            reply = self._receive(deadline)
            if reply[0] in ("timeout", "crash", "forbidden"):
                return self._words(name, reply)
            status, value = self._words(name, reply)
            done.append(i)
            if run.record(i, Outcome(name, status, _quiet_value(value) if self.tainted and status == "ok" else value)):
                break  # the judge has decided this exercise: its other calls would change nothing
        if not self._in_step(name, deadline):  # more than one reply per call: forged
            for i in done:
                run.known.pop(i, None)
            run.decided.discard(name)
            return "crash", "wrote its own messages to the sandbox's result pipe"
        return "ok", ""

    def _in_step(self, name: str, deadline: float) -> bool:
        """Whether the child's replies still pair one to one with the requests: the next reply must be the echo of
        a fresh random token. A reply the exercise's code wrote to the result pipe itself shifts every later one,
        so the echo is not next (a round trip, where waiting for stray bytes cost 50 ms an exercise)."""
        token = secrets.token_hex(8)
        self.child.send(("sync", name, token))
        reply = self._receive(deadline)
        return tuple(reply) == ("ok", token) and not self.inbox.data

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

    def _receive(self, deadline: float) -> tuple[str, Any]:
        """Waits for one (status, value) reply, draining output; times out at ``deadline``."""
        while True:
            try:
                reply = self._take()
            except Refused as refusal:
                return refusal.status, str(refusal)
            if reply is not None:
                return reply
            chunk = self.child.read(deadline)
            if chunk is None:
                return "timeout", f"took longer than the time limit; {self.child.said()}"
            if not chunk:
                return "crash", self.child.death()
            self.inbox.feed(chunk)

    def _take(self) -> tuple[str, Any] | None:
        """The first whole message in the inbox, decoded and checked, or None while it is incomplete."""
        data = self.inbox.take(MAX_REPLY)
        if data is None:
            return None
        try:
            reply = decode_reply(data)
        except ValueError as err:
            return "crash", f"sent an unreadable result ({err})"
        except (MemoryError, RecursionError) as err:
            return "crash", f"sent a result the grader could not rebuild ({type(err).__name__})"
        if reply[0] not in STATUSES:
            return "crash", "sent a malformed result"
        return reply

    def stop(self) -> None:
        """Kills the child and everything it started, then removes its folder (``launcher.Child.stop``)."""
        self.child.stop()


def _quiet_value(value):
    """A result of a child that saw a hidden case: an exception keeps its (built-in) type, never its message."""
    if isinstance(value, dict) and value.get("type") == "error":
        return {**value, "error": error_name(str(value.get("error"))), "message": ""}
    return value
