"""Confining the sandbox's child: namespaces, mounts, resource limits and its own uid.

``confine(config)`` runs in the child before any student code; the parent uses
``guard_this_process()``, ``child_env()``, ``nproc_limit()``, ``fresh_uids()``,
``kill_uid()``, ``sweep_ipc()``, ``MemoryGroup`` and ``own_keras_home()``; a grading worker calls
``limit_grader()``;
``capabilities()`` says how each limit is enforced on this machine (see
``mnistloc.grading.sandbox`` for what each one means to a submission).
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

UID_BASE = 100_000  # as root, each student's child runs as a uid of its own in [UID_BASE, UID_BASE + UID_SPAN)
UID_SPAN = 1 << 30
GRADER_MEMORY_MB = 6144  # address space of a grading worker (TensorFlow and the reference models: about 2.1 GB)
_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_CLONE_NEWUSER = syscall_filter.CLONE_NEWUSER
_CLONE_NEWPID, _CLONE_NEWIPC = 0x20000000, 0x08000000
_MS_RDONLY, _MS_BIND, _MS_REC, _MS_PRIVATE, _MS_REMOUNT = 0x1, 0x1000, 0x4000, 0x40000, 0x20
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MOUNT_FLAGS = {"ro": _MS_RDONLY, "nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
                "noatime": 0x400, "nodiratime": 0x800, "relatime": 0x200000, "strictatime": 0x1000000}
# Where anyone may write, on any Linux: each gets a fresh tmpfs in the child (every other mount is read-only).
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
# Covered by an empty tmpfs before those: the host's sockets (D-Bus, journald, /dev/log's target) and run state.
HIDDEN_TREES = ("/run",)
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds mnistloc/
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
                _write(os.path.join(path, "memory.limit_in_bytes"), limit)
            else:
                _write(os.path.join(path, "memory.max"), limit)
                with contextlib.suppress(OSError):
                    _write(os.path.join(path, "memory.swap.max"), "0")
        except OSError:
            group.remove()
            return None
        return group

    def join(self, pid: int) -> None:
        _write(os.path.join(self.path, "cgroup.procs"), str(pid))

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
        if where is None or not _inside(where, root):
            continue
        base = os.path.join(point, os.path.relpath(where, root))
        if version == 2:
            try:
                if "memory" not in Path(base, "cgroup.controllers").read_text().split():
                    continue
                _write(os.path.join(base, "cgroup.subtree_control"), "+memory")
            except OSError:
                continue  # a group with processes of its own cannot hand the controller down (cgroup v2)
        if os.access(base, os.W_OK):
            return os.path.normpath(base), version
    return None


def limit_grader() -> None:
    """Limits this grading process to ``GRADER_MEMORY_MB`` of address space (a worker's initializer), so that
    nothing a child sends can make it take the machine's memory."""
    _limit(resource.RLIMIT_AS, GRADER_MEMORY_MB * 1024 * 1024)


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


def confine(config: dict) -> None:
    """Namespaces, a fresh file system, limits and a dropped uid; runs before any student code.

    With PID namespaces, this process forks the namespace's first process (a reaper, which
    forks the process that returns from here and serves) and stays outside as its keeper: it
    never returns, and exits as the server did. Killing the keeper ends the whole namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    base = _CLONE_NEWNET | _CLONE_NEWNS | (0 if root else _CLONE_NEWUSER)
    pid_ns = libc.unshare(base | _CLONE_NEWPID | _CLONE_NEWIPC) == 0
    namespaces = pid_ns or libc.unshare(base) == 0
    if namespaces and not root:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    workdir = _fresh_files(libc, config, root) if namespaces else config["workdir"]
    if pid_ns:
        _split(libc)  # returns in the server only
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
    if namespaces and not root:
        _drop_capabilities(libc)  # those of its user namespace: it could unmount the covers it mounted itself
    syscall_filter.refuse_syscalls(libc, memfds=bool(config.get("memory_group")))


def _drop_capabilities(libc) -> None:
    """Empties this thread's capability sets (``capset``, version 3)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    libc.capset(header, data)


def _split(libc) -> None:
    """keeper (outside) -> reaper (pid 1 inside) -> server (returns). Keeper and reaper never return."""
    reaper = os.fork()
    if reaper:
        os.closerange(0, 1 << 16)  # the pipes end with the namespace, not with the keeper
        _exit_as(os.waitpid(reaper, 0)[1])
    keeper = os.getppid()
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: the keeper killed, the namespace ends
    if os.getppid() != keeper:
        os._exit(1)
    libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)  # this namespace's pids
    server = os.fork()
    if server == 0:
        return
    os.closerange(0, 1 << 16)
    while True:  # reap orphans until the server ends, then end the namespace with its status
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == server:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _exit_as(status: int) -> None:
    """Exits as the reaper did: a code >= 128 from the reaper was the server's death by signal code - 128."""
    code = os.waitstatus_to_exitcode(status)
    if 128 < code < 128 + signal.NSIG:
        sig = signal.Signals(code - 128)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # their handlers cannot be set (nor changed)
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(code if code >= 0 else 1)


def _fresh_files(libc, config: dict, root: bool) -> str:
    """Every mount read-only, fresh tmpfs over the world-writable folders, hidden folders empty; returns
    the work folder (``/tmp/work``)."""
    libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
    keep = _keep_paths(config["package_root"])
    held = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k in keep}  # reachable once covered
    closed = _closed(keep) if config["uid"] is not None and root else []
    _read_only(libc)
    covered = []
    for folder in dict.fromkeys(os.path.realpath(f) for f in HIDDEN_TREES):
        if os.path.isdir(folder) and libc.mount(b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                                b"size=1m,mode=0755") == 0:
            covered.append(folder)
    for folder in dict.fromkeys(os.path.realpath(f) for f in WORLD_WRITABLE):
        if any(_inside(folder, c) for c in covered) and os.path.isdir(folder) is False:
            os.makedirs(folder, mode=0o755, exist_ok=True)  # /run/lock inside the fresh /run
        if os.path.isdir(folder) and libc.mount(b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                                b"size=256m,mode=1777") == 0:
            covered.append(folder)
    covered += [folder for folder in closed if not any(_inside(folder, c) for c in covered) and libc.mount(
        b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=0755") == 0]
    for path, fd in held.items():
        if any(_inside(path, c) and path != c for c in covered):
            os.makedirs(path, mode=0o755, exist_ok=True)
            libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, _MS_BIND | _MS_REC, None)
        os.close(fd)
    for path in config["hide"]:
        _hide(libc, path, keep)
    work = "/tmp/work"
    os.makedirs(work, exist_ok=True)
    if root and config["uid"] is not None:
        os.chown(work, config["uid"], config["uid"])
    return work


def _read_only(libc) -> None:
    """Remounts every mount of this namespace read-only (but /proc and /sys), keeping its other flags."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        point = fields[4].encode().decode("unicode_escape")  # "\040" is a space
        if _inside(point, "/proc") or _inside(point, "/sys"):
            continue
        flags = sum(_MOUNT_FLAGS.get(o, 0) for o in set(fields[5].split(",")) - {"ro"})
        libc.mount(None, point.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags, None)


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
    """Covers ``path`` (an empty read-only tmpfs over a folder, /dev/null over a file); around kept folders,
    its entries one by one.

    A course folder that is the repository itself keeps ``mnistloc/`` and ``.venv/`` visible
    and hides the rest (gradebook.db, secret_seed, submitted/, ...).
    """
    if os.path.islink(path) or not os.path.exists(path) or any(k == path for k in keep):
        return
    if any(_inside(k, path) for k in keep):
        for entry in sorted(os.listdir(path)):
            _hide(libc, os.path.join(path, entry), keep)
    elif os.path.isdir(path):
        libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_RDONLY, b"size=1m,mode=0755")
    else:
        libc.mount(b"/dev/null", path.encode(), None, _MS_BIND, None)


def _closed(keep: list[str]) -> list[str]:
    """The folders that close a ``keep`` folder to the dropped uid (``/root`` (mode 700) above ``/root/.pyenv``).

    Each gets a tmpfs (mode 755), hiding the rest of it, and the kept folder is bound back in place.
    """
    closed = []
    for path in keep:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            folder = "/" + "/".join(parts[:i])
            if not os.stat(folder).st_mode & 0o001:
                if folder not in closed:
                    closed.append(folder)
                break
    return closed


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
