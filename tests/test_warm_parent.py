"""The warm parent (``mnistloc.grading.warm_parent``) that a class's grading forks its children from: the same
isolation as a fresh child, TensorFlow imported once. Every other sandbox test runs with fresh and with warm
children (``tests/test_sandbox.py``); these are about the warm parent itself, so they run once."""
from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from mnistloc.grading import launcher, sandbox, warden, warm_parent
from test_sandbox import IOU, _calls, _end_the_warm_parent, _verdicts, needs  # noqa: F401 - the fixture, too


PROBE = textwrap.dedent("""
    import os, sys
    def iou(a, b):
        links = {}
        for f in os.listdir("/proc/self/fd"):
            try:
                links[int(f)] = os.readlink(f"/proc/self/fd/{f}")
            except OSError:
                pass
        raise ValueError(repr({"sockets": sorted(f for f, to in links.items() if to.startswith("socket:")),
                               "uid": os.getuid(), "keras": "keras" in sys.modules,
                               "seen": getattr(sys, "seen_by_an_earlier_child", None)}))
""")
MARK = "import os, sys\ndef iou(a, b):\n    sys.seen_by_an_earlier_child = str(os.getuid())\n    return 0\n"


def _warm_probe() -> dict:
    (o,) = sandbox.run_exercises({"iou": PROBE}, _calls("iou")[:1], warm=True)
    assert o.status == "ok" and o.value["error"] == "ValueError", o
    import ast
    return ast.literal_eval(o.value["message"])


def test_a_warm_child_is_a_fork_of_the_warm_parent_and_has_keras_already():
    parent = warm_parent.shared()
    assert parent is not None and parent.alive()
    child = launcher.Child("mnistloc.grading.child", memory_mb=4096, warm=parent)
    try:
        assert isinstance(child.proc, launcher._Forked)
        assert warden.processes()[child.proc.pid] is not None
        with open(f"/proc/{child.proc.pid}/status") as f:
            ppid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
        assert ppid == parent.proc.pid
    finally:
        child.stop()
    assert _warm_probe()["keras"] is True  # imported by the warm parent, not by this student's child


def test_a_warm_child_keeps_no_socket_of_the_warm_parent():
    # The warm parent's socket would let a child ask for forks as root: it must be closed in every fork.
    assert _warm_probe()["sockets"] == []


def test_students_share_nothing_through_the_warm_parent():
    uids = warden.fresh_uids(2)
    (marked,) = sandbox.run_exercises({"iou": MARK}, _calls("iou")[:1], warm=True, uid=uids[0])
    assert marked.status == "ok", marked
    after = _warm_probe()
    assert after["seen"] is None  # what one child changed in its copy, the next never sees
    if os.geteuid() == 0:
        assert after["uid"] not in (0, uids[0])


@needs("own uid", "processes")
def test_a_child_that_kills_all_it_can_leaves_the_warm_parent_alive():
    killer = "import os\ndef iou(a, b):\n    os.kill(-1, 9)\n    return 0\n"
    sandbox.run_exercises({"iou": killer}, _calls("iou")[:1], warm=True)
    parent = warm_parent.shared()
    assert parent is not None and parent.alive()
    assert _verdicts({"iou": IOU}, ["iou"], warm=True) == {"iou": {"pass"}}


def test_a_dead_warm_parent_falls_back_to_fresh_children():
    parent = warm_parent.shared()
    os.kill(parent.proc.pid, 9)
    parent.proc.wait()
    assert _verdicts({"iou": IOU}, ["iou"], warm=True) == {"iou": {"pass"}}  # a new warm parent, or a fresh child
    warm_parent.close_shared()
    parent = warm_parent.WarmParent()
    try:
        os.kill(parent.proc.pid, 9)
        parent.proc.wait()
        child = launcher.Child("mnistloc.grading.child", memory_mb=4096, warm=parent)
        try:
            assert isinstance(child.proc, subprocess.Popen)  # the warm parent was gone: a fresh child
        finally:
            child.stop()
    finally:
        parent.close()


def test_the_warm_parent_forks_only_the_child_modules():
    parent = warm_parent.shared()
    with pytest.raises(ValueError, match="module"):
        parent.spawn("os", (0, 1, 2), "/tmp")
