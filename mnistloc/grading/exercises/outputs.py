"""What an exercise's call gives, as plain data, and how two such outputs are compared.

``reduce`` turns a returned value into plain picklable data (in the sandbox's child), ``error`` an exception
(its common Keras and numpy shape errors turned into a sentence, terminal colour codes stripped);
``compare`` finds the first difference of two reduced outputs, type -> shape/dtype -> values, as a
(public, secret) pair of messages; ``same_output`` says whether a student's output is a catalogued
mistake's; ``dtype_difference`` finds a float of the wrong width; ``value_of`` reads an array back.
``mnistloc.grading.exercises.base`` judges with them.
"""
from __future__ import annotations

import re

import numpy as np

from mnistloc.grading.wire import error_name


def reduce(x) -> dict:
    """Plain picklable description of a returned value: its type and its data."""
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iuf":
        return {"type": "number", "value": float(x)}  # a 0-d array is a number
    if isinstance(x, np.ndarray):
        return {"type": "ndarray", "value": np.array(x)}
    if isinstance(x, (tuple, list)):
        return {"type": type(x).__name__, "items": [reduce(i) for i in x]}
    if isinstance(x, str):
        return {"type": "str", "text": x}
    if isinstance(x, (bool, np.bool_)):
        return {"type": "bool", "value": bool(x)}
    if isinstance(x, (int, float, np.integer, np.floating)):
        return {"type": "number", "value": float(x)}
    if isinstance(x, dict):
        return {"type": "dict", "items": {str(k): reduce(v) for k, v in x.items()}}
    if x is None:
        return {"type": "NoneType"}
    if hasattr(x, "__array__") or hasattr(x, "numpy"):  # a tensor
        return {"type": type(x).__name__, "value": np.array(x)}
    return {"type": type(x).__name__, "repr": repr(x)[:200]}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colour and cursor codes (Keras colours its errors)

# Keras's and TensorFlow's common shape errors, said as a sentence: (pattern, sentence from the match's groups)
_SHAPE_ERRORS = (
    (re.compile(r"Input \d+ (?:with name \S+ )?of layer \W*(\w+)\W* is incompatible with the layer: expected "
                r"(?:axis (-?\d+) of input shape to have value (\d+)|shape=(\([^)]*\))), "
                r"(?:but received input with|found) shape[= ]?(\([^)]*\))"),
     lambda m: (f"the layer '{m[1]}' got an input of shape {m[5]} but was built for "
                + (f"size {m[3]} on axis {m[2]}" if m[2] else f"shape {m[4]}")
                + ": a size fixed in the model (keras.Input, Flatten after a convolution) does not fit this input")),
    (re.compile(r"(?:last dimension of the inputs to a Dense layer|Dense layer).{0,40}should be defined\. Found None"),
     lambda m: "a Dense layer got an input whose last size is unknown (None): pool or flatten to a fixed size "
               "before it"),
    (re.compile(r"total size of new array must be unchanged,? input_shape ?= ?(\S+),? output_shape ?= ?(\S+)"),
     lambda m: f"a Reshape to {m[2]} cannot hold the {m[1]} values it was given: the sizes must multiply to the "
               "same number"),
    (re.compile(r"(?:Dimensions must be equal, but are (\d+) and (\d+)|Incompatible shapes: (\[[^\]]*\]) vs\. "
                r"(\[[^\]]*\]))"),
     lambda m: f"two tensors of different shapes ({m[1] or m[3]} and {m[2] or m[4]}) met in one operation: check "
               "which slice of y_true or which axis you use"),
    (re.compile(r"The truth value of an array with more than one element is ambiguous"),
     lambda m: "Python's own max, min, and, or or `if` met a whole array, which holds many truth values: use the "
               "elementwise np.maximum, np.minimum, &, | or np.where"),
    (re.compile(r"operands could not be broadcast together with shapes (\S+) (\S+)"),
     lambda m: f"arrays of shapes {m[1]} and {m[2]} cannot be combined elementwise: check the axes you index "
               "and reduce"),
)


def plain_message(text: str) -> str:
    """An exception's message as the student should read it: no terminal codes, and a common Keras or numpy
    shape error said as one sentence (the original's first line kept after it when short)."""
    text = _ANSI.sub("", str(text)).strip()
    for pattern, sentence in _SHAPE_ERRORS:
        match = pattern.search(text)
        if match:
            return sentence(match)
    return " ".join(text.split())


def error(exc: BaseException) -> dict:
    """Plain description of an exception the student's code raised (its message cleaned by ``plain_message``)."""
    return {"type": "error", "error": type(exc).__name__, "message": plain_message(str(exc))[:300]}


def _show(a) -> str:
    a = np.asarray(a)
    if a.size > 12:
        return f"array of shape {a.shape}"
    return np.array2string(a, precision=4, separator=", ", suppress_small=True).replace("\n", "")


def _dtype_ok(got: np.dtype, exp: np.dtype) -> bool:
    if exp.kind == "f":
        return got.kind == "f"
    if exp.kind in "iu" and exp.itemsize > 1:
        return got.kind in "iu"
    return got == exp


def compare(got: dict, exp: dict, what: str = "the result") -> tuple[str, str] | None:
    """First difference between two reduced values, type -> shape/dtype -> values.

    Two errors agree only where ``exp`` is an error the reference raises on purpose (``exp["documented"]``,
    set by ``Exercise.expected`` for a case whose ``raises`` names it) and ``got`` is of the same type: a
    reference that fails, or a student's error beside it, is never agreement.

    Returns:
        None when they agree, else ``(public message, secret message)``: the
        secret one never shows expected values, nor anything the student's code
        chose (a message, a type's or a key's name, a shape, a text): the
        check's own words and a built-in exception's name only.
    """
    if got["type"] == "error" and exp["type"] == "error":
        return None if exp.get("documented") and got["error"] == exp["error"] else (
            f"raised {got['error']}: {got['message']}", f"raised {error_name(str(got['error']))}")
    if got["type"] == "error":
        return f"raised {got['error']}: {got['message']}", f"raised {error_name(str(got['error']))}"
    if exp["type"] == "error":
        return (f"{what} should raise {exp['error']}, but returned a {got['type']}",
                f"{what} should raise {exp['error']}")
    if exp["type"] == "number" and got["type"] not in ("number", "error") and np.ndim(got.get("value", 0)) > 0:
        shape = np.shape(got["value"])
        return (f"{what} should be a single number (a scalar); got an array of shape {shape}: reduce it (a sum or "
                "a mean) to one number", f"{what} should be a single number (a scalar), not an array")
    if got["type"] != exp["type"] and not {got["type"], exp["type"]} <= {"tuple", "list"}:
        want = {"ndarray": "a numpy array", "number": "a number", "tuple": "a tuple"}.get(exp["type"], exp["type"])
        return f"{what} should be {want}; got {got['type']}", f"{what} should be {want}"
    if "items" in exp:
        if isinstance(exp["items"], dict):
            keys = list(exp["items"])  # in the order the exercise lists them: most telling first
            if sorted(got["items"]) != sorted(keys):
                return (f"{what} should have keys {sorted(keys)}; got {sorted(got['items'])}",
                        f"{what} should have keys {sorted(keys)}")
            pairs = [(got["items"][k], exp["items"][k], k if what == "the result" else f"{what}[{k!r}]")
                     for k in keys]
        else:
            if len(got["items"]) != len(exp["items"]):
                return (f"{what} should have {len(exp['items'])} items; got {len(got['items'])}",
                        f"{what} has the wrong number of items")
            pairs = [(g, e, f"{what}[{i}]") for i, (g, e) in enumerate(zip(got["items"], exp["items"]))]
        for g, e, w in pairs:
            problem = compare(g, e, w)
            if problem:
                return problem
        return None
    if exp["type"] == "bool":
        return None if got["value"] == exp["value"] else (
            f"{what} is {got['value']}; expected {exp['value']}", f"{what} is wrong")
    if "text" in exp:
        if got["text"] == exp["text"]:
            return None
        return f"{what} is {got['text']!r}; expected {exp['text']!r}", f"{what} is the wrong text"
    if "value" not in exp:
        return None if got.get("repr") == exp.get("repr") else (f"{what} differs",) * 2
    g, e = np.asarray(got["value"]), np.asarray(exp["value"])
    if g.shape != e.shape:
        return f"{what} has shape {g.shape}; it should have shape {e.shape}", f"{what} has the wrong shape"
    if not _dtype_ok(g.dtype, e.dtype):
        return f"{what} has dtype {g.dtype}; it should be {e.dtype}", f"{what} has the wrong dtype"
    if e.dtype.kind == "f" or g.dtype.kind == "f":
        same = np.allclose(g.astype(np.float64), e.astype(np.float64), rtol=1e-4, atol=1e-5, equal_nan=True)
    else:
        same = np.array_equal(g, e)
    if same:
        return None
    secret = f"{what} has wrong values"
    if g.dtype.kind == "f" and np.isnan(g).any() and not np.isnan(e).any():
        secret += " (NaN where a number is expected)"
    if g.size <= 12:
        return f"{what} is {_show(g)}; expected {_show(e)}", secret
    bad = np.argwhere(~np.isclose(g.astype(np.float64), e.astype(np.float64), rtol=1e-4, atol=1e-5,
                                  equal_nan=True) if e.dtype.kind == "f" else g != e)
    i = tuple(int(v) for v in bad[0])
    return f"{what} is wrong at index {i}: got {g[i]}, expected {e[i]} ({len(bad)} entries differ)", secret


# ---- exercises ------------------------------------------------------------------------------------

def _first_difference(got: dict, exp: dict):
    """The first key of two reduced dicts (same keys) whose values differ, else None."""
    if got.get("type") != "dict" or exp.get("type") != "dict" or set(got["items"]) != set(exp["items"]):
        return None
    return next((k for k in exp["items"] if compare(got["items"][k], exp["items"][k]) is not None), None)


def same_output(got: dict, other: dict) -> bool:
    """Whether the student's output is a catalogued mistake's: equal values, or the same exception, type and
    message (a message hidden from the grader, on a hidden case, leaves the type alone to compare): any other
    ValueError is not the mistake's."""
    if got.get("type") == "error" or other.get("type") == "error":
        if not got.get("type") == other.get("type") == "error" or got["error"] != other["error"]:
            return False
        return not got.get("message") or not other.get("message") or got["message"] == other["message"]
    return compare(got, other) is None


def dtype_difference(got: dict, exp: dict, what: str = "the result") -> tuple[str, str] | None:
    """The first array of two reduced values (equal by ``compare``) whose float dtypes differ in width, e.g.
    float64 where float32 is expected, as ``compare``'s (public, secret) messages; else None."""
    if got.get("type") == "error" or exp.get("type") == "error":
        return None
    if isinstance(exp.get("items"), dict) and isinstance(got.get("items"), dict):
        pairs = [(got["items"][k], exp["items"][k], k if what == "the result" else f"{what}[{k!r}]")
                 for k in exp["items"] if k in got["items"]]
    elif isinstance(exp.get("items"), list) and isinstance(got.get("items"), list):
        pairs = [(g, e, f"{what}[{i}]") for i, (g, e) in enumerate(zip(got["items"], exp["items"]))]
    elif got.get("type") == exp.get("type") == "ndarray":
        g, e = np.asarray(got["value"]).dtype, np.asarray(exp["value"]).dtype
        if g != e and g.kind == e.kind == "f":
            return f"{what} has dtype {g}; it should be {e}", f"{what} has the wrong dtype (it should be {e})"
        return None
    else:
        return None
    return next((p for p in (dtype_difference(g, e, w) for g, e, w in pairs) if p is not None), None)




def value_of(got: dict, key: str | None = None) -> np.ndarray:
    """The array in a reduced output (or in its item ``key``), as float64."""
    item = got["items"][key] if key is not None else got
    return np.asarray(item["value"], dtype=np.float64)
