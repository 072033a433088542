"""The one launcher of untrusted bytes: starts, confines, frames and stops a child; opens what it is handed.

Both the grader (``mnistloc.grading.sandbox``, answer cells) and the leaderboard
(``mnistloc.grading.leaderboard``, model files) run their children through here,
so a hardening step lands in both:

- ``Child(module, memory_mb=..., hide=..., uid=...)``: a fresh ``python -I`` running
  ``<module>.main()`` in a temporary work folder, with a scrubbed environment, a
  session of its own, its own memory cgroup where one can be made
  (``warden.MemoryGroup``, joined before the child reads anything), and its config
  as the first framed message on stdin; the child confines itself
  (``confine.confine``) before it runs anything it was sent. ``read(deadline)``
  waits for its result pipe (draining and capping its output, never spinning on a
  closed one); ``stop()`` kills it and everything it started, every process of its
  uid, its SysV objects, its cgroup and its folder.
- ``frame``/``read_message`` (the parent's messages, pickled: the parent's own data)
  and ``Inbox`` (the child's replies: length-prefixed, each under a size cap, with a
  total budget per child).
- ``open_regular(path, root, max_bytes)``: a descriptor of a submitted file, refused
  unless it is a regular file with one link inside ``root``.
- ``plain_id(name)``: the one rule for a student id or lesson name.
"""
from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnistloc.grading import confine, warden, warm_parent
from mnistloc.grading.warm_parent import WarmParent

OUTPUT_CAP = 64 * 1024  # bytes of a child's stdout+stderr kept (head and tail)
MAX_NAME = 100  # characters of a student id or lesson name
# Characters that reorder or hide text on a terminal or a page (bidirectional controls and marks).
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_HEAD = struct.Struct(">Q")


class Refused(Exception):
    """A file or a child was refused: ``status`` (a word of the caller's table) and a message."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def plain_id(name) -> bool:
    """Whether ``name`` is safe as one folder name and as text in any output: not empty, ``.`` or ``..``, at most
    ``MAX_NAME`` characters, no path separator, no control or bidirectional character."""
    return (isinstance(name, str) and name not in ("", ".", "..") and len(name) <= MAX_NAME and "/" not in name
            and "\\" not in name and not any(ord(c) < 32 or 127 <= ord(c) < 160 or c in BIDI for c in name))


def frame(data: bytes) -> bytes:
    """``data`` with its length in front (8 bytes, big-endian)."""
    return _HEAD.pack(len(data)) + data


def read_message(stream):
    """The next message the parent framed on ``stream`` (runs in the child), unpickled; EOFError at the end."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        raise EOFError
    return pickle.loads(stream.read(_HEAD.unpack(head)[0]))


class Inbox:
    """A child's replies as they come: whole length-prefixed messages, each at most ``max_size`` bytes, and at most
    ``budget`` bytes over the child's life (so replies cannot pile up in the grader)."""

    def __init__(self, budget: int):
        self.data = bytearray()
        self.budget = budget
        self.taken = 0

    def feed(self, chunk: bytes) -> None:
        self.data += chunk

    def take(self, max_size: int, exact: int | None = None) -> bytes | None:
        """The next whole message, or None while it is incomplete.

        Raises:
            Refused: ``"crash"`` when its size is 0, over ``max_size``, not ``exact`` (when given) or over the budget.
        """
        if len(self.data) < _HEAD.size:
            return None
        size = _HEAD.unpack(bytes(self.data[:_HEAD.size]))[0]
        if not 0 < size <= max_size or (exact is not None and size != exact):
            raise Refused("crash", f"sent a reply of {size} bytes, where at most {max_size} may come")
        if self.taken + size > self.budget:
            raise Refused("crash", f"sent more than {self.budget} bytes of replies in all")
        if len(self.data) < _HEAD.size + size:
            return None
        message = bytes(self.data[_HEAD.size:_HEAD.size + size])
        del self.data[:_HEAD.size + size]
        self.taken += size
        return message


class Child:
    """One confined child running ``module.main()``; see the module docstring.

    Args:
        module: the child's module (``mnistloc.grading.child`` or ``mnistloc.grading.model_child``).
        memory_mb: address space per process, and the memory cgroup's limit.
        hide: folders the child must not see.
        uid: as root, the child's uid (None: a fresh one); ignored otherwise.
        config: more of the config the child reads first.
        pass_fds: descriptors the child inherits (their numbers go in ``config``).
        output: keep the child's stdout and stderr (capped) for messages; else they go to /dev/null.
    """

    def __init__(self, module: str, *, memory_mb: int, hide=(), uid: int | None = None, config: dict | None = None,
                 pass_fds: tuple = (), output: bool = True, warm: WarmParent | None = None):
        root = os.geteuid() == 0
        self.uid = (uid if uid is not None else warden.fresh_uids(1)[0]) if root else None
        self.workdir = Path(tempfile.mkdtemp(prefix="mnistloc-sandbox-"))
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        self.group = warden.MemoryGroup.make(memory_mb)
        self.head, self.tail = bytearray(), bytearray()
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe() if output else (None, os.open(os.devnull, os.O_WRONLY))
        full = {"memory_mb": int(memory_mb), "uid": self.uid, "hide": [str(Path(p).resolve()) for p in hide],
                "workdir": str(self.workdir), "nproc": warden.nproc_limit(), "package_root": confine.PACKAGE_ROOT,
                "result_fd": result_w, "memory_group": self.group is not None, **(config or {})}
        self.proc = None
        if warm is not None and not pass_fds:  # a fork of the warm parent: TensorFlow already imported
            try:
                self.proc = _Forked(warm, module, out_w, result_w, self.workdir)
                full["result_fd"] = warm_parent.RESULT_FD
            except warm_parent.WarmParentError:
                self.proc = None  # a fresh child instead
        if self.proc is None:
            code = f"import sys; sys.path.insert(0, {confine.PACKAGE_ROOT!r}); from {module} import main; main()"
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, stdout=out_w, stderr=out_w,
                pass_fds=(result_w, *pass_fds), cwd=self.workdir, env=warden.child_env(self.workdir),
                start_new_session=True, close_fds=True)
        os.close(out_w)
        os.close(result_w)
        self.results, self.output = result_r, out_r
        try:  # readable when the child exits, even if a process it forked keeps the pipes open
            self.exited = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.exited = None
        if self.group is not None:
            try:  # before it reads its config, so before anything it runs
                self.group.join(self.proc.pid)
            except OSError:
                full["memory_group"] = False
        self.send(full)

    def send(self, message) -> None:
        """Frames ``message`` (pickled: the parent's own data) on the child's stdin; a dead child is not an error
        here (``read`` reports it)."""
        try:
            self.proc.stdin.write(frame(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def read(self, deadline: float) -> bytes | None:
        """The next bytes on the result pipe; ``b""`` when it closed or the child exited with nothing more to say;
        None when ``deadline`` (``time.monotonic()``) passed first. Output is drained meanwhile."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            watch = [fd for fd in (self.results, self.output, self.exited) if fd is not None]
            ready, _, _ = select.select(watch, [], [], left)
            if self.output is not None and self.output in ready:
                self._drain()
            if self.results in ready:
                return os.read(self.results, 1 << 20)
            if self.exited is not None and self.exited in ready:  # what it wrote before is in the pipe
                return os.read(self.results, 1 << 20) if select.select([self.results], [], [], 0)[0] else b""

    def _drain(self) -> None:
        chunk = os.read(self.output, 1 << 20)
        if not chunk:  # closed (or pointed at /dev/null): never watched again, so no busy loop
            os.close(self.output)
            self.output = None
            return
        if len(self.head) < OUTPUT_CAP // 2:
            take = OUTPUT_CAP // 2 - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        self.tail = (self.tail + chunk)[-(OUTPUT_CAP // 2):]

    def said(self) -> str:
        """The child's last line of output, for a message."""
        text = (bytes(self.head) + (b"\n...\n" if self.tail else b"") + bytes(self.tail)).decode(errors="replace")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return f"last output: {lines[-1][:300]!r}" if lines else "no output"

    def death(self) -> str:
        """How the child ended, for a message."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return f"closed its result pipe; {self.said()}"
        if code < 0:
            return f"the process was killed by signal {signal.Signals(-code).name}; {self.said()}"
        return f"the process exited with code {code}; {self.said()}"

    def stop(self) -> None:
        """Kills the child and everything it started (its namespaces end with it), every process of its uid, its
        SysV objects, its memory cgroup; removes its folder."""
        for fd in (self.results, self.output, self.exited):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass
        self.results = self.output = self.exited = None
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
            warden.kill_uid(self.uid)
            warden.sweep_ipc(self.uid)  # none in an IPC namespace; a child without one leaves its objects here
        if self.group is not None:
            self.group.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Forked:
    """A child forked by the warm parent, with the part of ``subprocess.Popen`` that ``Child`` uses: ``pid``,
    ``stdin``, ``kill()``, ``wait(timeout)``. Its exit is seen through a pidfd; the warm parent reaps it."""

    def __init__(self, warm: WarmParent, module: str, out_w: int, result_w: int, workdir: Path):
        commands_r, commands_w = os.pipe()
        try:
            self.pid = warm.spawn(module, (commands_r, result_w, out_w), str(workdir))
        except BaseException:
            os.close(commands_w)
            raise
        finally:
            os.close(commands_r)
        self.warm, self.returncode = warm, None
        self.stdin = os.fdopen(commands_w, "wb")
        self._exited = os.pidfd_open(self.pid)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self._exited, signal.SIGKILL)
            except OSError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: killed by that signal); ``subprocess.TimeoutExpired`` after ``timeout``."""
        if self.returncode is None:
            if not select.select([self._exited], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired("warm child", timeout)
            try:
                code = self.warm.reap(self.pid)
            except warm_parent.WarmParentError:  # its parent is gone, and reaped it
                code = None
            self.returncode = -signal.SIGKILL if code is None else code
            os.close(self._exited)
        return self.returncode


def open_regular(path: Path, root: Path | None, max_bytes: int, *, what: str | None = None) -> int:
    """An open read-only descriptor of ``path``, once it is a regular file with one link of at most ``max_bytes``.

    Opened without following a final symbolic link and without blocking (a FIFO or device is refused by
    ``fstat`` before any read); its folder must resolve inside ``root`` (when given). A file with another
    link (a hard link to the seed or to a root-only file) is refused: this process may read what its owner
    may not.

    Raises:
        Refused: ``"missing"``, ``"not-a-file"`` or ``"too-large"``, with a message naming ``what`` (default: the
            file's name).
    """
    what = what or Path(path).name
    if root is not None:
        folder, top = os.path.realpath(Path(path).parent), os.path.realpath(root)
        if not folder.startswith(top + os.sep):
            raise Refused("not-a-file", f"{what} leads outside the submitted folder")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused("missing", f"there is no {what}") from None
    except OSError as err:
        raise Refused("not-a-file", f"{what} is a link or cannot be opened ({err.strerror})") from None
    info = os.fstat(fd)
    problem = (("not-a-file", f"{what} is not a regular file") if not stat.S_ISREG(info.st_mode)
               else ("not-a-file", f"{what} has {info.st_nlink} hard links; submit a file of its own")
               if info.st_nlink != 1
               else ("too-large", f"{what} has {info.st_size} bytes; the limit is {max_bytes}")
               if info.st_size > max_bytes else None)
    if problem is not None:
        os.close(fd)
        raise Refused(*problem)
    return fd
