"""The sandbox's reply format: plain JSON data, decoded by the grader under a strict budget.

A child's reply is ``[status, value]`` where ``value`` holds only JSON data
(dicts with str keys, lists, str, numbers, booleans, null) and numpy arrays
written as ``{"__array__": {"dtype": "float32", "shape": [2, 3], "data": <base64>}}``.
The grader never unpickles anything a child wrote and never calls a
constructor with a size the child chose: ``decode_reply`` refuses a reply over
``MAX_REPLY`` bytes, ``MAX_CONTAINERS`` lists and dicts or ``MAX_DEPTH``
levels, and rebuilds each array from the bytes that actually came (a numeric
dtype of ``DTYPES``, at most ``MAX_ELEMENTS`` elements, exactly
``prod(shape) * itemsize`` bytes). So a reply costs the grader at most a small
multiple of its own size.
"""
from __future__ import annotations

import base64
import builtins
import json
import math

import numpy as np

MAX_REPLY = 8 * 1024 * 1024  # bytes of one reply
MAX_DEPTH = 32  # nesting of lists and dicts
MAX_CONTAINERS = 100_000  # lists and dicts in one reply (``[{}, {}, ...]`` would expand 20 times)
MAX_ELEMENTS = 2_000_000  # elements of one array
DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                    "float16", "float32", "float64"})
_ARRAY = "__array__"


def encode_reply(reply) -> bytes:
    """``(status, value)`` as bytes for the grader (runs in the child).

    Raises:
        TypeError: ``reply`` holds something other than plain data and numeric numpy arrays.
    """
    return json.dumps(_plain(list(reply), 0), separators=(",", ":")).encode()


def _plain(x, depth: int):
    if depth > MAX_DEPTH:
        raise TypeError(f"a result may nest at most {MAX_DEPTH} levels")
    if isinstance(x, np.ndarray):
        if x.dtype.name not in DTYPES:
            raise TypeError(f"a result's arrays must have a numeric dtype; got {x.dtype}")
        data = base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()
        return {_ARRAY: {"dtype": x.dtype.name, "shape": list(x.shape), "data": data}}
    if isinstance(x, (np.generic,)):
        return _plain(x.item(), depth)
    if isinstance(x, dict):
        return {str(k): _plain(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, depth + 1) for v in x]
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    raise TypeError(f"a result may hold plain data and numpy arrays only, not {type(x).__name__}")


def decode_reply(data: bytes) -> tuple[str, object]:
    """The ``(status, value)`` a child sent, rebuilt within the budget (runs in the grader).

    Args:
        data: bytes[n], one reply as the child framed it.

    Returns:
        tuple: ``(status str, value)``, arrays rebuilt as numpy arrays.

    Raises:
        ValueError: the reply is over budget, not JSON, or not ``[status, value]``; the message says which.
    """
    if len(data) > MAX_REPLY:
        raise ValueError(f"the reply of {len(data)} bytes is over the budget of {MAX_REPLY}")
    if data.count(b"[") + data.count(b"{") > MAX_CONTAINERS:
        raise ValueError(f"the reply holds more than {MAX_CONTAINERS} lists and dicts")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"the reply is not plain data ({type(err).__name__})") from None
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str)):
        raise ValueError("the reply is not a [status, value] pair")
    return raw[0], _rebuild(raw[1])


def _rebuild(value):
    """Replaces every ``{"__array__": ...}`` by its array, checking depth with an explicit stack."""
    root = [value]
    stack = [(root, 0, 0)]  # (container, key, depth)
    while stack:
        holder, key, depth = stack.pop()
        x = holder[key]
        if depth > MAX_DEPTH:
            raise ValueError(f"the reply nests deeper than {MAX_DEPTH} levels")
        if isinstance(x, dict):
            if _ARRAY in x:
                holder[key] = _array(x)
                continue
            stack += [(x, k, depth + 1) for k in x]
        elif isinstance(x, list):
            stack += [(x, i, depth + 1) for i in range(len(x))]
    return root[0]


def _array(x: dict) -> np.ndarray:
    spec = x[_ARRAY]
    if len(x) != 1 or not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data"}:
        raise ValueError("the reply holds a malformed array")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if dtype not in DTYPES or not isinstance(data, str) or not isinstance(shape, list) or len(shape) > 8 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise ValueError("the reply holds a malformed array")
    count = math.prod(shape)
    if count > MAX_ELEMENTS or len(data) != 4 * math.ceil(count * np.dtype(dtype).itemsize / 3):
        raise ValueError(f"the reply holds an array of shape {tuple(shape)} that its bytes do not fill")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError("the reply holds an array whose data is not base64") from None
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise ValueError(f"the reply holds an array of shape {tuple(shape)} that its bytes do not fill")
    return np.frombuffer(raw, dtype).reshape(shape).copy()


# Control characters (C0 but tab and newline, DEL, C1) and bidirectional controls: a terminal acts on them (ESC ]
# retitles it, ESC [ 2 J clears it) and a page or terminal reorders text around them.
_UNPRINTABLE = {c: None for c in [*range(0, 9), *range(11, 32), *range(127, 160), 0x061C, 0x200E, 0x200F,
                                   *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def printable(text) -> str:
    """``text`` as any output (CSV, HTML, a terminal) may show it: control and bidirectional characters removed."""
    return str(text).translate(_UNPRINTABLE)


_NAMED_ERRORS = frozenset(name for name, obj in vars(builtins).items()
                          if isinstance(obj, type) and issubclass(obj, BaseException)) | {"LinAlgError", "AxisError"}


def error_name(name: str) -> str:
    """The name of an exception type as a hidden case's feedback may show it: a built-in one's (or numpy's
    ``LinAlgError``, ``AxisError``), else words that carry nothing the student chose."""
    return name if name in _NAMED_ERRORS else "an exception of a class of its own"
