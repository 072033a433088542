"""Confining the sandbox's child: namespaces, mounts, resource limits and its own uid.

``confine(config)`` runs in the child before any student code; the parent uses
``guard_this_process()``, ``child_env()``, ``nproc_limit()`` and ``kill_uid()``;
``capabilities()`` says how each limit is enforced on this machine (see
``mnistloc.grading.sandbox`` for what each one means to a submission).
"""
from __future__ import annotations

import ctypes
import functools
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

UID_BASE = 100_000  # as root, the child runs as uid UID_BASE + the grading process's pid
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 0x1000, 0x4000, 0x40000, 2
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds mnistloc/


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


def confine(config: dict) -> None:
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
