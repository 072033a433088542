"""A seccomp filter for the sandbox's child: the kernel objects it may not make, refused by the kernel itself.

``refuse_syscalls(libc, memfds=...)`` runs in the child (``mnistloc.grading.confine.confine``) before any student
code; ``seccomp_supported()`` says whether this machine's syscall table is known (``warden.capabilities``).
"""
from __future__ import annotations

import ctypes
import platform

CLONE_NEWUSER = 0x10000000  # clone(2)'s flag for a new user namespace
# Kernel objects a child may not make (seccomp, ``refuse_syscalls``): keys (a uid's keyring outlives the child
# and is shared by every child of the uid), new user namespaces (caps to mount a tmpfs outside every limit),
# Unix sockets (the host's services); memfds too where no memory cgroup counts them. name -> (x86_64, aarch64).
_SYSCALLS = {"add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219), "unshare": (272, 97),
             "clone": (56, 220), "clone3": (435, 435), "setns": (308, 268), "memfd_create": (319, 279),
             "socket": (41, 198), "memfd_secret": (447, 447), "seccomp": (317, 277)}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def seccomp_supported() -> bool:
    """Whether this machine's architecture has the syscall table ``refuse_syscalls`` knows."""
    return platform.machine() in _AUDIT_ARCH


def refuse_syscalls(libc, *, memfds: bool) -> bool:
    """Installs a seccomp filter on every thread of this process (and all it starts) that refuses, with EPERM:
    the key syscalls, a new user namespace (``unshare``/``clone`` with ``CLONE_NEWUSER``; ``clone3``, whose flags
    a filter cannot read, gets ENOSYS so libc falls back to ``clone``), ``setns``, ``socket(AF_UNIX)``, a second
    filter, and ``memfd_create`` unless ``memfds`` (a memory cgroup counts them). Returns whether it is in place."""
    machine = platform.machine()
    if machine not in _AUDIT_ARCH:
        return False
    column = 0 if machine == "x86_64" else 1
    nr = {name: numbers[column] for name, numbers in _SYSCALLS.items()}
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ..., BPF_RET|K
    allow, errno = 0x7FFF0000, 0x00050000
    eperm, enosys = errno | 1, errno | 38
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, _AUDIT_ARCH[machine]), (ret, 0, 0, enosys),  # another ABI (int 0x80)
            (ld, 0, 0, 0)]
    if machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, enosys)]  # the x32 ABI
    refused = ["add_key", "request_key", "keyctl", "setns", "seccomp", "memfd_secret"] + ([] if memfds else
                                                                                         ["memfd_create"])
    for name in refused:
        prog += [(jeq, 0, 1, nr[name]), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, nr["clone3"]), (ret, 0, 0, enosys)]
    for name in ("unshare", "clone"):  # flags in the first argument's low 32 bits (seccomp_data.args[0], offset 16)
        prog += [(jeq, 0, 4, nr[name]), (ld, 0, 0, 16), (jset, 0, 1, CLONE_NEWUSER), (ret, 0, 0, eperm),
                 (ret, 0, 0, allow)]
    prog += [(jeq, 0, 4, nr["socket"]), (ld, 0, 0, 16), (jeq, 0, 1, 1), (ret, 0, 0, eperm),  # AF_UNIX = 1
             (ret, 0, 0, allow), (ret, 0, 0, allow)]
    filters = (_Filter * len(prog))(*[_Filter(*ins) for ins in prog])
    program = _Program(len(prog), filters)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    libc.syscall.restype = ctypes.c_long
    seccomp_nr = _SYSCALLS["seccomp"][column]
    # SECCOMP_SET_MODE_FILTER = 1 with SECCOMP_FILTER_FLAG_TSYNC = 1: numpy's threads are filtered too.
    return libc.syscall(ctypes.c_long(seccomp_nr), ctypes.c_ulong(1), ctypes.c_ulong(1), ctypes.byref(program)) == 0
