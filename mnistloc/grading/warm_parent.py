"""A warm parent: one process that has imported TensorFlow and the checks once, and forks each sandbox child.

A fresh child (``launcher.Child`` without a warm parent) starts ``python -I`` and
imports numpy, the checks and, for a model exercise, TensorFlow and Keras (5-7 s
of CPU) for every student. A grading worker instead starts one ``WarmParent``:
a ``python -I`` with the child's scrubbed environment, in a session of its own,
that imports what a child would (``PRELOAD``) before anyone's data exists, then
only forks. Each fork becomes one child, exactly as a fresh one would be from
there on: it takes the pipes the grader made for it, closes every other
descriptor (the warm parent's socket included), starts a session, moves to its
own work folder and environment, and runs ``<module>.main()``, which reads its
config and confines itself (namespaces, limits, its student's uid, seccomp)
before it runs anything it was sent.

What is kept, and why it holds:

- nothing shared between students: a fork has a copy-on-write copy of a process
  that never saw a case, a seed, a notebook or a reply (the grader talks to it
  only to ask for forks, over a socket pair no child keeps); what a child
  changes in its copy, no other child sees.
- a fresh uid, namespaces, limits and the memory cgroup per child: as before
  (``confine.confine`` in the fork, the cgroup joined by the grader before it
  sends the config).
- stopping: the fork leads its own session (``killpg``), the grader watches its
  exit through a pidfd, and the warm parent reaps it only when the grader asks
  (``reap``), so its pid is never reused while the grader may still signal it.
- the warm parent dies with its grading process (``PR_SET_PDEATHSIG``) or when
  the socket closes.

Grader side: ``WarmParent()``, ``spawn(module, fds, workdir)`` -> pid,
``reap(pid)`` -> exit code or None, ``close()``; ``shared()`` gives this
process's one warm parent (started on first use), ``close_shared()`` ends it. The warm parent's side:
``main(fd)``.
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from mnistloc.grading import confine, warden

PRELOAD = ("mnistloc.grading.child", "mnistloc.grading.model_child", "keras", "mnistloc.models")
"""What a child would import: the checks, then TensorFlow and Keras (lazily) for a model exercise."""
MODULES = ("mnistloc.grading.child", "mnistloc.grading.model_child")
"""The only modules a fork may run."""
START_TIMEOUT = 180.0  # seconds for the warm parent to import PRELOAD
REPLY_TIMEOUT = 30.0  # seconds for the answer to a spawn or reap request
RESULT_FD = 3  # where a fork finds its result pipe (the config says so)
_HEAD = struct.Struct(">I")
_MAX_MESSAGE = 64 * 1024


class WarmParentError(RuntimeError):
    """The warm parent did not start or did not answer; the caller starts fresh children instead."""


class WarmParent:
    """The grader's handle on a warm parent process (see the module docstring)."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="mnistloc-warm-")
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = (f"import sys; sys.path.insert(0, {confine.PACKAGE_ROOT!r}); "
                f"from mnistloc.grading.warm_parent import main; main({theirs.fileno()})")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), cwd=self.folder,
            env=warden.child_env(self.folder), start_new_session=True, close_fds=True)
        theirs.close()
        try:
            ready = self._receive(START_TIMEOUT)
        except WarmParentError:
            self.close()
            raise
        if ready.get("ready") is not True:
            self.close()
            raise WarmParentError(f"the warm parent could not import what a child needs: {ready.get('error')}")

    def spawn(self, module: str, fds: tuple[int, int, int], workdir: str) -> int:
        """Forks one child running ``module.main()``; returns its pid.

        Args:
            module: one of ``MODULES``.
            fds: the child's command pipe (its stdin), its result pipe (``RESULT_FD`` in the child) and its
                output pipe (stdout and stderr), as this process holds them; they are passed, not kept.
            workdir: the child's folder before it confines itself (``launcher.Child``'s).

        Raises:
            WarmParentError: the warm parent is gone, refused, or did not answer in time.
        """
        if module not in MODULES:
            raise ValueError(f"`module` should be one of {MODULES}. Got {module!r}.")
        self._send({"spawn": module, "workdir": str(workdir)}, fds)
        reply = self._receive(REPLY_TIMEOUT)
        if not isinstance(reply.get("pid"), int):
            raise WarmParentError(f"the warm parent could not fork a child: {reply.get('error')}")
        return reply["pid"]

    def reap(self, pid: int) -> int | None:
        """The exit code of the exited child ``pid`` (negative: killed by that signal), once; None while it
        runs. The grader calls it after the child's pidfd said it exited."""
        self._send({"reap": int(pid)})
        code = self._receive(REPLY_TIMEOUT).get("code")
        return code if isinstance(code, int) else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Ends the warm parent (its children are the grader's to stop) and removes its folder."""
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _send(self, message: dict, fds=()) -> None:
        data = json.dumps(message).encode()
        try:
            socket.send_fds(self.sock, [_HEAD.pack(len(data)) + data], list(fds))
        except OSError as err:
            raise WarmParentError(f"the warm parent is gone ({err.strerror})") from None

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        data = b""
        while len(data) < _HEAD.size or len(data) < _HEAD.size + _HEAD.unpack(data[:_HEAD.size])[0]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise WarmParentError(f"the warm parent did not answer within {timeout:.0f} s")
            chunk = self.sock.recv(_MAX_MESSAGE)
            if not chunk:
                raise WarmParentError("the warm parent is gone")
            data += chunk
            if len(data) >= _HEAD.size and _HEAD.unpack(data[:_HEAD.size])[0] > _MAX_MESSAGE:
                raise WarmParentError("the warm parent sent an oversized answer")
        return json.loads(data[_HEAD.size:])


_shared: WarmParent | None = None
_failed = False


def shared() -> WarmParent | None:
    """This process's warm parent, started on first use and ended at exit; None when it cannot start here
    (then children start fresh, as before)."""
    global _shared, _failed
    if _shared is not None and _shared.alive():
        return _shared
    if _failed:
        return None
    try:
        _shared = WarmParent()
    except (WarmParentError, OSError):
        _failed, _shared = True, None
        return None
    atexit.register(_shared.close)
    return _shared


def close_shared() -> None:
    """Ends this process's warm parent, if it started one (a new one starts on the next ``shared()``)."""
    global _shared, _failed
    if _shared is not None:
        _shared.close()
    _shared, _failed = None, False


# ---- the warm parent's side ------------------------------------------------------------------------------

def main(fd: int) -> None:
    """Entry point of the warm parent: imports ``PRELOAD``, says it is ready, then serves spawn and reap requests
    on the socket ``fd`` until it closes."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: ends with the grading process
    sock = socket.socket(fileno=fd)
    try:
        for module in PRELOAD:
            importlib.import_module(module)
    except BaseException as err:  # noqa: BLE001 - said to the grader, which starts fresh children instead
        _answer(sock, {"ready": False, "error": f"{type(err).__name__}: {err}"[:500]})
        return
    _answer(sock, {"ready": True})
    while True:
        try:
            message, fds = _request(sock)
        except EOFError:
            return
        if "spawn" in message:
            _answer(sock, _spawn(sock, message, fds))
        elif "reap" in message:
            _answer(sock, _reap(message["reap"]))
        else:
            for f in fds:
                os.close(f)
            _answer(sock, {"error": "unknown request"})


def _request(sock) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 8)
    if not data:
        raise EOFError
    size = _HEAD.unpack(data[:_HEAD.size])[0]
    while len(data) < _HEAD.size + size:
        more = sock.recv(_MAX_MESSAGE)
        if not more:
            raise EOFError
        data += more
    return json.loads(data[_HEAD.size:_HEAD.size + size]), fds


def _answer(sock, message: dict) -> None:
    data = json.dumps(message).encode()
    sock.sendall(_HEAD.pack(len(data)) + data)


def _spawn(sock, message: dict, fds: list[int]) -> dict:
    if message["spawn"] not in MODULES or len(fds) != 3:
        for f in fds:
            os.close(f)
        return {"error": "refused"}
    try:
        pid = os.fork()
    except OSError as err:
        for f in fds:
            os.close(f)
        return {"error": f"fork: {err.strerror}"}
    if pid == 0:
        _become_child(sock, message, fds)  # never returns
    for f in fds:
        os.close(f)
    return {"pid": pid}


def _become_child(sock, message: dict, fds: list[int]) -> None:
    """In the fork: the pipes in place, every other descriptor closed, a session, the child's folder and
    environment; then the child module's ``main()``. Never returns into the warm parent's loop."""
    code = 1
    try:
        sock.close()
        commands, results, output = fds
        for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(commands, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(results, RESULT_FD)
        os.closerange(RESULT_FD + 1, 1 << 16)
        os.setsid()
        os.chdir(message["workdir"])
        os.environ.clear()
        os.environ.update(warden.child_env(message["workdir"]))
        importlib.import_module(message["spawn"]).main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001 - the grader sees the exit code and the output
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        os._exit(code)


def _reap(pid) -> dict:
    if not isinstance(pid, int) or pid <= 0:
        return {"error": "bad pid"}
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return {"error": "not a child"}
    return {"code": os.waitstatus_to_exitcode(status) if done else None}
