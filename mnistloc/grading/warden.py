"""The grading process's side of the sandbox: what it does around its children to keep them apart.

- ``fresh_uids``: a uid per student, never reused within a run; ``kill_uid`` and ``sweep_ipc``: nothing
  of a uid left afterwards (processes, SysV IPC objects); ``processes``: who runs what, from /proc.
- ``MemoryGroup``: a memory cgroup per child; ``nproc_limit``: its process limit; ``child_env``: its
  whole environment.
- ``guard_this_process``, ``limit_grader`` and ``own_keras_home``: the grading process itself (not
  dumpable, a memory limit, Keras settings in a folder of its own).
- ``capabilities()``: how each limit is enforced on this machine, probed once.

The child confines itself (``mnistloc.grading.confine``).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnistloc.grading import syscall_filter
from mnistloc.grading.confine import HIDDEN_TREES, WORLD_WRITABLE, inside, set_limit, write_text

UID_BASE = 100_000  # as root, each student's child runs as a uid of its own in [UID_BASE, UID_BASE + UID_SPAN)
UID_SPAN = 1 << 30
GRADER_MEMORY_MB = 6144  # address space of a grading worker (TensorFlow and the reference models: about 2.1 GB)

_given: set[int] = set()  # uids handed out by this process: never twice


def guard_this_process() -> None:
    """Makes this process non-dumpable when it is not root, so that a child of the same user cannot
    read its ``/proc/<pid>/environ`` (the secret seed), ``cwd`` or memory. (As root the child runs as
    another uid and cannot anyway.)"""
    if os.geteuid() != 0 and sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def kill_uid(uid: int) -> None:
    """SIGKILLs every live process of ``uid`` until none is left (forks racing the sweep included)."""
    for _ in range(500):
        alive = [pid for pid, (owner, state) in processes().items() if owner == uid and state != "Z"]
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


@contextlib.contextmanager
def own_keras_home():
    """Keras writes its settings to ``~/.keras``, or to ``/tmp/.keras`` when the home folder is not writable (a
    grading account such as ``nobody``): then the grading front ends (``grade``, ``leaderboard``) give it a
    folder of their own, removed afterwards, so grading leaves nothing in a shared folder."""
    if "KERAS_HOME" in os.environ or os.access(os.path.expanduser("~"), os.W_OK):
        yield
        return
    folder = tempfile.mkdtemp(prefix="mnistloc-keras-")
    os.environ["KERAS_HOME"] = folder  # the workers inherit it
    try:
        yield
    finally:
        os.environ.pop("KERAS_HOME", None)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_uids(count: int) -> list[int]:
    """``count`` sandbox uids that no live process has and that this process never gave before.

    Args:
        count: how many (one per student of a batch).

    Returns:
        list[int], len(count): distinct uids in ``[UID_BASE, UID_BASE + UID_SPAN)``.
    """
    alive = {uid for uid, _ in processes().values()}
    while True:
        start = UID_BASE + secrets.randbelow(UID_SPAN - count)
        uids = list(range(start, start + count))
        if not any(u in _given or u in alive for u in uids):
            _given.update(uids)
            return uids


def sweep_ipc(uid: int) -> int:
    """Removes every SysV IPC object (shared memory, message queue, semaphore set) that ``uid`` owns or
    created in this IPC namespace; returns how many. (A child in its own IPC namespace leaves none.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    removed = 0
    for kind, remove in (("shm", lambda i: libc.shmctl(i, 0, None)), ("msg", lambda i: libc.msgctl(i, 0, None)),
                         ("sem", lambda i: libc.semctl(i, 0, 0))):  # IPC_RMID = 0
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        head = lines[0].split() if lines else []
        for line in lines[1:]:
            row = dict(zip(head, line.split()))
            if uid in (int(row.get("uid", -1)), int(row.get("cuid", -1))):
                removed += remove(int(row.get(kind + "id", row.get("msqid", -1)))) == 0
    return removed


class MemoryGroup:
    """A memory cgroup of one child: every page its processes touch, memfds, tmpfs files and SysV shared memory
    included, counts against ``limit_mb`` (``RLIMIT_AS`` counts only what is mapped). Made by the parent (as
    root, or where the cgroup is delegated), joined by the child's first process before it reads its config,
    removed once its processes are gone. ``make`` gives None where no memory controller can be written."""

    def __init__(self, path: str, version: int):
        self.path, self.version = path, version

    @classmethod
    def make(cls, limit_mb: int) -> "MemoryGroup | None":
        found = _memory_controller()
        if found is None:
            return None
        base, version = found
        path = os.path.join(base, f"mnistloc-{secrets.token_hex(8)}")
        try:
            os.mkdir(path, 0o700)
        except OSError:
            return None
        group = cls(path, version)
        limit = str(int(limit_mb) * 1024 * 1024)
        try:
            if version == 1:
                write_text(os.path.join(path, "memory.limit_in_bytes"), limit)
            else:
                write_text(os.path.join(path, "memory.max"), limit)
                with contextlib.suppress(OSError):
                    write_text(os.path.join(path, "memory.swap.max"), "0")
        except OSError:
            group.remove()
            return None
        return group

    def join(self, pid: int) -> None:
        write_text(os.path.join(self.path, "cgroup.procs"), str(pid))

    def remove(self) -> None:
        """Kills what is left in the group and removes it (retried while the kernel still counts a process)."""
        for _ in range(200):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                with contextlib.suppress(OSError, ValueError):
                    for pid in Path(self.path, "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.01)


@functools.lru_cache(maxsize=None)
def _memory_controller() -> tuple[str, int] | None:
    """(this process's own memory cgroup folder, cgroup version) when a child group can be made in it, else None."""
    if os.geteuid() != 0:
        return None
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        root, point = fields[3], fields[4]
        if fstype == "cgroup" and "memory" in options:
            where = next((ln.split(":", 2)[2] for ln in own if "memory" in ln.split(":", 2)[1].split(",")), None)
            version = 1
        elif fstype == "cgroup2":
            where = next((ln.split(":", 2)[2] for ln in own if ln.startswith("0::")), None)
            version = 2
        else:
            continue
        if where is None or not inside(where, root):
            continue
        base = os.path.join(point, os.path.relpath(where, root))
        if version == 2:
            try:
                if "memory" not in Path(base, "cgroup.controllers").read_text().split():
                    continue
                write_text(os.path.join(base, "cgroup.subtree_control"), "+memory")
            except OSError:
                continue  # a group with processes of its own cannot hand the controller down (cgroup v2)
        if os.access(base, os.W_OK):
            return os.path.normpath(base), version
    return None


def limit_grader() -> None:
    """Limits this grading process to ``GRADER_MEMORY_MB`` of address space (a worker's initializer), so that
    nothing a child sends can make it take the machine's memory."""
    set_limit(resource.RLIMIT_AS, GRADER_MEMORY_MB * 1024 * 1024)


def processes() -> dict[int, tuple[int, str]]:
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

def nproc_limit() -> int:
    """Threads count as processes: TensorFlow starts about two per core."""
    return 64 + 4 * (os.cpu_count() or 2)


def child_env(workdir: Path) -> dict[str, str]:
    """The child's whole environment: no secret seed, nothing of the grader's."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}

_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
root = os.geteuid() == 0
flags = 0x40000000 | 0x20000 | (0 if root else 0x10000000)
pids = libc.unshare(flags | 0x20000000 | 0x08000000) == 0
namespaces = pids or libc.unshare(flags) == 0
try:
    os.setgid(UID); os.setuid(UID); own_uid = root
except OSError:
    own_uid = False
print(int(namespaces), int(pids), int(own_uid))
"""


@functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, str]:
    """Says how each limit is enforced on this machine, probed once with a throwaway child.

    Returns:
        dict: limit -> how (``time``, ``memory``, ``kernel``, ``processes``, ``ipc``, ``network``, ``files``,
        ``environment``).
    """
    root = os.geteuid() == 0
    code = _PROBE.replace("UID", str(UID_BASE + UID_SPAN - 1))
    try:
        out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60).stdout
        namespaces, pid_ns, own_uid = (bool(int(x)) for x in out.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        namespaces, pid_ns, own_uid = False, False, False
    where = "as root" if root else "in a user namespace"
    pids = f"PID namespace ({where}): ends with its first process; " if pid_ns else "no PID namespace; "
    return {
        "time": "per exercise; the child and all it started are killed on expiry",
        "memory": ("a memory cgroup per child (memfds, tmpfs and shared memory counted); " if _memory_controller()
                   else "no memory cgroup (memfd_create refused; tmpfs of 256 MB each); ")
                  + f"RLIMIT_AS per child process; grading workers {GRADER_MEMORY_MB} MB; replies decoded under "
                  "a budget",
        "kernel": ("seccomp: no keys, no new user namespaces, no Unix sockets" if syscall_filter.seccomp_supported()
                   else f"not enforced (no seccomp table for {platform.machine()}): keys and user namespaces"),
        "processes": pids + ("own uid per student + RLIMIT_NPROC, every process of the uid killed" if own_uid
                             else "RLIMIT_NPROC above the user's process count + session kill (setsid escapes)"),
        "ipc": f"IPC namespace ({where}): SysV and POSIX queues die with the child" if pid_ns
        else "no IPC namespace: SysV objects of the child's uid removed afterwards" if own_uid
        else "not enforced (no namespaces here): SysV objects outlive the child",
        "network": f"empty network namespace ({where})" if namespaces else "not enforced (no namespaces here)",
        "files": ("own uid" if own_uid else "the user's rights") + (
            ", every mount read-only, fresh tmpfs over " + ", ".join(HIDDEN_TREES + WORLD_WRITABLE[:4])
            + " and hidden folders"
            if namespaces else ", a temporary folder"),
        "environment": "scrubbed (no secret seed)",
    }
