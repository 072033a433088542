"""The sandbox's child: confines itself, then runs exercise code on the parent's request.

``main()`` reads length-prefixed pickled messages from stdin (the grader's own data, ``launcher.frame``): its config
once, then ``("warm", name)`` (import Keras outside the time limit),
``("exec", name, source)`` (run an answer cell on the prelude) and
``("call", name, case)`` (``EXERCISES[name].call(func, case)``) and ``("sync", name, token)`` (echoes the
token), and answers
each with ``(status, value)`` on its result pipe, as plain JSON data
(``mnistloc.grading.wire``). While an exercise's code
runs, the ``mnistloc`` reference of that exercise is replaced by a trap.
"""
from __future__ import annotations

import ast
import importlib
import os
import sys
import types
from typing import Any

from mnistloc.grading.confine import confine
from mnistloc.grading.launcher import frame, read_message
from mnistloc.grading.registry import EXERCISES, PRELUDE, REFERENCES
from mnistloc.grading.wire import MAX_REPLY, encode_reply

HEAVY = ("tensorflow", "keras")  # imported lazily in the child: numpy-only exercises skip the 6 s
_GRADING = os.path.dirname(os.path.realpath(__file__))  # its functions are never the library's


class _ReferenceCalled(BaseException):
    """Raised by the trap that replaces the reference of the running exercise."""


def main() -> None:
    """Entry point of the child: confines itself, then serves exec/call messages from stdin."""
    commands = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    config = read_message(commands)
    results = os.fdopen(config["result_fd"], "wb")
    confine(config)
    base = _prelude(PRELUDE)
    funcs = {}
    _reply(results, ("ok", None))  # ready
    while True:
        try:
            message = read_message(commands)
        except EOFError:
            return
        _reply(results, _serve(message, base, funcs))


def _reply(results, reply: tuple) -> None:
    data = encode_reply(reply)  # checked in _attempt: plain data
    if len(data) > MAX_REPLY:
        data = encode_reply(("error", f"the result is too large to send ({len(data)} bytes, at most {MAX_REPLY})"))
    results.write(frame(data))
    results.flush()


def _serve(message, base: dict, funcs: dict) -> tuple[str, Any]:
    """Answers one ("exec" | "call", name, source | case) message with (status, value)."""
    kind, name, payload = message
    if kind == "sync":  # the echo that shows the replies still pair with the requests (``sandbox._Child``)
        return "ok", payload
    if kind == "warm":
        importlib.import_module("keras")
        importlib.import_module("mnistloc.models")  # the heads' references, to be trapped
        return "ok", None
    trap = _Trap(REFERENCES.get(name), name)
    try:
        reply = _attempt(kind, name, payload, base, funcs)
    finally:
        trap.undo()
    if trap.sprung():
        return "forbidden", f"calls the mnistloc reference of `{name}`; write your own"
    return reply


def _attempt(kind: str, name: str, payload, base: dict, funcs: dict) -> tuple[str, Any]:
    try:
        if kind == "exec":
            namespace = dict(base)
            exec(compile(payload, f"<exercise {name}>", "exec"), namespace)
            func = namespace.get(name)
            if not callable(func):
                return "missing", f"the cell runs but defines no function `{name}`"
            funcs[name] = func
            return "ok", None
        value = EXERCISES[name].call(funcs[name], payload)
        encode_reply(("ok", value))  # fail here, not in the parent, if it is not plain data
        return "ok", value
    except _ReferenceCalled:
        return "forbidden", f"calls the mnistloc reference of `{name}`; write your own"
    except MemoryError:
        return "error", "MemoryError: ran out of memory (the sandbox's memory limit)"
    except BaseException as err:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all the student's
        return "error", f"{type(err).__name__}: {err}"[:2000]


_TRAP_NAME = "__mnistloc_sandbox_trap__"


def _trap_body(*args, **kwargs):
    return __mnistloc_sandbox_trap__()  # noqa: F821 - resolved in the reference's own globals


_SCANNED: dict[str, tuple] = {}  # exercise -> (its key, the functions its trap swaps)


class _Trap:
    """While alive, the reference of one exercise raises ``_ReferenceCalled`` when called.

    The trap swaps the ``__code__`` of the function objects themselves, so a copy
    taken earlier (``ref = mnistloc.boxes.iou`` in another cell) springs it too.
    Trapped: the reference itself when it is a plain function, and every function
    of that name in a loaded ``mnistloc`` module that is defined outside
    ``mnistloc/grading/`` (a lazy reference such as ``heads._ref("build_box_head")``
    stands for ``mnistloc.models.build_box_head``). The grading code's own functions
    are told apart by the file that defines them, never by a module's name.
    """

    def __init__(self, reference, name: str):
        self.sprung_flag = False
        self.swapped: list[tuple[types.FunctionType, types.CodeType]] = []
        if reference is None:
            return

        def spring():
            self.sprung_flag = True
            raise _ReferenceCalled(name)

        for func in self._cached_targets(reference, name):
            func.__globals__[_TRAP_NAME] = spring
            self.swapped.append((func, func.__code__))
            func.__code__ = _trap_body.__code__

    def _cached_targets(self, reference, name: str) -> list:
        """``_targets``, scanned again only when a module was imported or removed since the last scan of
        ``name`` (one scan of every loaded module costs milliseconds, and an exercise has dozens of calls)."""
        key = (name, id(reference), len(sys.modules))
        if _SCANNED.get(name, (None,))[0] != key:
            _SCANNED[name] = (key, self._targets(reference))
        return _SCANNED[name][1]

    def _targets(self, reference) -> list:
        ref_name = getattr(reference, "__name__", None)
        found = {id(reference): reference} if isinstance(reference, types.FunctionType) else {}
        for modname, module in list(sys.modules.items()):
            if (modname == "mnistloc" or modname.startswith("mnistloc.")) and module:
                value = vars(module).get(ref_name)
                if isinstance(value, types.FunctionType) and not _is_grading(value):
                    found[id(value)] = value
        return [f for f in found.values() if not f.__code__.co_freevars]

    def undo(self) -> None:
        for func, code in self.swapped:
            func.__code__ = code
            func.__globals__.pop(_TRAP_NAME, None)

    def sprung(self) -> bool:
        return self.sprung_flag


def _is_grading(func: types.FunctionType) -> bool:
    """Whether ``func`` is defined in ``mnistloc/grading/`` (the checks' own code, not the library)."""
    path = os.path.realpath(func.__code__.co_filename)
    return path == _GRADING or path.startswith(_GRADING + os.sep)


class _Lazy:
    """A module imported on first attribute access (keeps numpy-only exercises fast)."""

    def __init__(self, module: str, attr: str | None = None):
        object.__setattr__(self, "_where", (module, attr))

    def _load(self):
        module, attr = object.__getattribute__(self, "_where")
        try:
            return getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
        except AttributeError:
            return importlib.import_module(f"{module}.{attr}")

    def __getattr__(self, item):
        return getattr(self._load(), item)

    def __call__(self, *args, **kwargs):
        return self._load()(*args, **kwargs)


def _prelude(prelude: str) -> dict:
    """Runs the prelude; ``import keras`` and friends bind lazy modules instead."""
    namespace: dict = {"__name__": "__main__"}
    for stmt in ast.parse(prelude).body:
        if isinstance(stmt, ast.Import) and all(a.name.split(".")[0] in HEAVY for a in stmt.names):
            for a in stmt.names:
                if a.asname:
                    namespace[a.asname] = _Lazy(a.name)
                else:
                    namespace[a.name.split(".")[0]] = _Lazy(a.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] in HEAVY and stmt.level == 0:
            for a in stmt.names:
                namespace[a.asname or a.name] = _Lazy(stmt.module, a.name)
        else:
            exec(compile(ast.Module([stmt], []), "<prelude>", "exec"), namespace)
    return namespace

