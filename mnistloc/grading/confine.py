"""Confining the sandbox's child: namespaces, mounts, resource limits and its own uid.

``confine(config)`` runs in the child before any student code. What the grading process does around its
children (their uids, memory cgroups, environment, the sweeps after them, and the probe of what this
machine enforces) is in ``mnistloc.grading.warden``; see ``mnistloc.grading.sandbox`` for what each limit
means to a submission.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from pathlib import Path

from mnistloc.grading import syscall_filter

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
        write_text("/proc/self/setgroups", "deny")
        write_text("/proc/self/uid_map", f"{uid} {uid} 1")
        write_text("/proc/self/gid_map", f"{gid} {gid} 1")
    workdir = _fresh_files(libc, config, root) if namespaces else config["workdir"]
    if pid_ns:
        _split(libc)  # returns in the server only
    os.chdir(workdir)
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    mb = 1024 * 1024
    set_limit(resource.RLIMIT_AS, config["memory_mb"] * mb)
    set_limit(resource.RLIMIT_FSIZE, 64 * mb)
    set_limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        if not (root and config["uid"] is not None):
            raise PermissionError("not root")
        set_limit(resource.RLIMIT_NPROC, config["nproc"])
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
    except OSError:  # no CAP_SETUID (some containers) or not root: the user's own rights
        set_limit(resource.RLIMIT_NPROC, _user_processes() + config["nproc"])
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
        if any(inside(folder, c) for c in covered) and os.path.isdir(folder) is False:
            os.makedirs(folder, mode=0o755, exist_ok=True)  # /run/lock inside the fresh /run
        if os.path.isdir(folder) and libc.mount(b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                                b"size=256m,mode=1777") == 0:
            covered.append(folder)
    covered += [folder for folder in closed if not any(inside(folder, c) for c in covered) and libc.mount(
        b"tmpfs", folder.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=0755") == 0]
    for path, fd in held.items():
        if any(inside(path, c) and path != c for c in covered):
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
        if inside(point, "/proc") or inside(point, "/sys"):
            continue
        flags = sum(_MOUNT_FLAGS.get(o, 0) for o in set(fields[5].split(",")) - {"ro"})
        libc.mount(None, point.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags, None)


def inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def _keep_paths(package_root: str) -> list[str]:
    """Folders the child needs: the package, the Python and its site-packages (real paths)."""
    python = (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
              *(p for p in sys.path if p != package_root))
    paths = {os.path.realpath(p) for p in (os.path.join(package_root, "mnistloc"), *python) if p and os.path.isdir(p)}
    return sorted(p for p in paths if not any(q != p and inside(p, q) for q in paths))


def _hide(libc, path: str, keep: list[str]) -> None:
    """Covers ``path`` (an empty read-only tmpfs over a folder, /dev/null over a file); around kept folders,
    its entries one by one.

    A course folder that is the repository itself keeps ``mnistloc/`` and ``.venv/`` visible
    and hides the rest (gradebook.db, secret_seed, submitted/, ...).
    """
    if os.path.islink(path) or not os.path.exists(path) or any(k == path for k in keep):
        return
    if any(inside(k, path) for k in keep):
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


def write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def set_limit(which: int, value: int) -> None:
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
