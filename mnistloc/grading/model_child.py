"""The leaderboard's child: confines itself, vets one submitted ``model.keras``, runs it on given canvases.

Started by ``mnistloc.grading.leaderboard`` through ``mnistloc.grading.launcher`` with the model file and
the canvases as inherited file descriptors (it sees no course folder) and its config as the first framed
message on stdin. In order, each step answering with a status as soon as one fails:

1. the model's descriptor is a regular file of at most ``max_bytes`` (fstat, before any read);
2. it is a zip holding ``config.json`` (at most ``MAX_CONFIG`` bytes, read under that cap), no
   more than ``MAX_ENTRIES`` entries and ``max_bytes * 4`` bytes unpacked in all;
3. every serialized object of the architecture is a built-in Keras layer, model, initializer,
   regularizer, constraint or dtype policy: no ``Lambda``, no custom or registered object;
4. Keras is imported (the parent starts the model's clock only now, at the ``warm`` message);
5. ``keras.saving.load_model(path, safe_mode=True, compile=False)``;
6. one input ``(None, 128, 128)`` and outputs ``presence``, ``box``, ``class`` as in ``CONTRACT``;
7. inference on the canvases, timed.

Replies go to the result descriptor as length-prefixed messages: JSON objects
(at most ``MAX_JSON`` bytes) and, after an ``ok`` header, one raw float32 payload:
``presence``, ``box`` and ``class`` of every canvas, C order, in that order.
Nothing is pickled; the parent checks each size against what it expects.
"""
from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
import zipfile

from mnistloc.grading.confine import confine
from mnistloc.grading.launcher import frame, read_message

SIZE, GRID = 128, 16  # canvas side in pixels; cells a side (stride 8)
CONTRACT = {"presence": 1, "box": 4, "class": 10}  # output name -> channels of (None, 16, 16, channels)
MAX_CONFIG = 1024 * 1024  # bytes of config.json
MAX_ENTRIES = 16  # files in the zip
MAX_JSON = 64 * 1024  # bytes of one JSON message (either way)
BATCH = 16  # canvases a forward pass
FORBIDDEN = frozenset({"Lambda", "__lambda__", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
PLAIN = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__ellipsis__", "__slice__"})  # data, not code
MODELS = frozenset({("keras.src.models.functional", "Functional"), ("keras.src.models.sequential", "Sequential"),
                    ("keras", "Functional"), ("keras", "Sequential"), ("keras", "DTypePolicy"),
                    ("keras", "FloatDTypePolicy")})  # (module, class_name) of the containers Keras writes
PARTS = frozenset({"layers", "initializers", "regularizers", "constraints", "activations"})  # keras.<part>.<Class>


class Refused(Exception):
    """A step refused the model: ``status`` and a message for the student."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def main() -> None:
    """Entry point: reads the config from stdin, confines itself, vets and runs the model, replies."""
    config = read_message(sys.stdin.buffer)
    results = os.fdopen(config["result_fd"], "wb")
    confine(config)
    try:
        reply = run(config, lambda: send(results, {"phase": "warm"}))
    except Refused as refusal:
        reply = {"status": refusal.status, "message": str(refusal)[:500]}, None
    except MemoryError:
        reply = {"status": "crash", "message": "ran out of memory (the sandbox's memory limit)"}, None
    header, payload = reply
    send(results, header)
    if payload is not None:
        _message(results, payload)


def send(results, obj: dict) -> None:
    data = json.dumps(obj).encode()
    if len(data) > MAX_JSON:
        data = json.dumps({"status": "crash", "message": "reply too long"}).encode()
    _message(results, data)


def _message(results, data: bytes) -> None:
    results.write(frame(data))
    results.flush()


def run(config: dict, warm) -> tuple[dict, bytes | None]:
    """Steps 1 to 7 of the module docstring; returns the header and the payload (or None)."""
    data = read_model(config["model_fd"], config["max_bytes"])
    architecture = read_config(data, config["max_bytes"])
    vet(architecture)
    import numpy as np  # noqa: F401 - warm with the rest
    import keras

    warm()
    vet(architecture, keras)
    path = os.path.join(os.getcwd(), "model.keras")
    with open(path, "wb") as f:
        f.write(data)
    del data
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - whatever Keras says about a bad file
        raise Refused("load-error", f"Keras could not load it: {type(err).__name__}: {str(err)[:300]}") from None
    names = check_contract(model)
    canvases = read_canvases(config["canvases_fd"], config["n"])
    return predict(model, names, canvases)


def read_model(fd: int, max_bytes: int) -> bytes:
    """The file's bytes, once ``fstat`` says it is a regular file of at most ``max_bytes``."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Refused("not-a-file", "model.keras is not a regular file")
    if info.st_size > max_bytes:
        raise Refused("too-large", f"model.keras has {info.st_size} bytes; the limit is {max_bytes}")
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Refused("too-large", f"model.keras has more than {max_bytes} bytes")
    return data


def read_config(data: bytes, max_bytes: int) -> dict:
    """The ``config`` (architecture) of a ``.keras`` zip, read under size limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise Refused("not-a-keras-file", f"the zip holds {len(entries)} files; a .keras file holds 3")
        if sum(e.file_size for e in entries) > 4 * max_bytes:
            raise Refused("too-large", "the zip unpacks to more than four times the size limit")
        if "config.json" not in archive.namelist():
            raise Refused("not-a-keras-file", "the zip holds no config.json: save with model.save('model.keras')")
        with archive.open("config.json") as f:
            text = f.read(MAX_CONFIG + 1)
    except Refused:
        raise
    except Exception as err:  # noqa: BLE001 - a bad deflate stream (zlib.error), encryption (RuntimeError), LZMA, ...
        raise Refused("not-a-keras-file", f"not a readable .keras (zip) file: {type(err).__name__}") from None
    if len(text) > MAX_CONFIG:
        raise Refused("too-large", f"config.json is over {MAX_CONFIG} bytes")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused("not-a-keras-file", "config.json is not valid JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise Refused("not-a-keras-file", "config.json does not describe a Keras model")
    return config


def vet(config: dict, keras=None) -> None:
    """Refuses an architecture with anything but built-in Keras objects (classes checked with ``keras``).

    The top level's ``compile_config`` is not vetted: ``load_model(compile=False)`` never reads it. Any other
    ``compile_config`` (a nested model's) is refused whole: Keras compiles a nested model from it while loading,
    in safe mode, and a loss written as a model of Lambda layers would run there.
    """
    stack = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 200:
            raise Refused("custom-object", "config.json nests too deeply")
        if isinstance(node, list):
            stack.extend((x, depth + 1) for x in node)
        elif isinstance(node, dict):
            if "class_name" in node:
                _vet_object(node, keras)
            for key, value in node.items():
                if key == "compile_config" and depth > 0 and value:  # {} (a layer's) compiles nothing
                    raise Refused("forbidden-layer", "a nested model carries a compile_config (its losses and "
                                                     "metrics would be built while loading): save the model "
                                                     "without compiling its parts")
                if key != "compile_config":
                    stack.append((value, depth + 1))


def _vet_object(node: dict, keras) -> None:
    name, module, registered = node.get("class_name"), node.get("module"), node.get("registered_name")
    if name in FORBIDDEN:
        raise Refused("forbidden-layer", f"uses a {name} layer: only built-in layers without code are allowed")
    if name in PLAIN and module is None:
        return  # a tensor's shape and history, a constant
    custom = Refused("custom-object", f"uses a custom object {str(registered or name)[:80]!r} from module "
                                      f"{str(module)[:80]!r}: only built-in Keras layers are allowed")
    if registered not in (None, name) or not isinstance(name, str) or not isinstance(module, str):
        raise custom
    if (module, name) in MODELS:
        return
    top, _, part = module.partition(".")
    if top != "keras" or part not in PARTS:
        raise custom
    if keras is not None:
        cls = getattr(getattr(keras, part), name, None)
        base = keras.layers.Layer if part == "layers" else object
        if not (isinstance(cls, type) and issubclass(cls, base) and cls.__module__.startswith("keras.")):
            raise custom

def check_contract(model) -> list[str]:
    """The output names in the order the model returns them, once the shapes match ``CONTRACT``."""
    inputs = model.inputs
    if len(inputs) != 1 or tuple(inputs[0].shape) != (None, SIZE, SIZE):
        shapes = [tuple(i.shape) for i in inputs]
        raise Refused("wrong-shape", f"the model should take one input of shape (None, {SIZE}, {SIZE}) "
                                     f"(canvases, pixels 0-255). Got inputs {shapes}.")
    outputs = model.outputs
    names = list(getattr(model, "output_names", None) or [])
    if isinstance(model.output, dict):
        names = list(model.output)
        outputs = list(model.output.values())
    got = {str(n): tuple(o.shape) for n, o in zip(names, outputs)}
    want = {n: (None, GRID, GRID, c) for n, c in CONTRACT.items()}
    if len(names) != len(outputs) or any(got.get(n) != s for n, s in want.items()):
        raise Refused("wrong-shape", f"the model's outputs should be {want}. Got {dict(list(got.items())[:8])}.")
    return names


def read_canvases(fd: int, n: int):
    import numpy as np

    with os.fdopen(fd, "rb") as f:
        data = f.read(n * SIZE * SIZE)
    return np.frombuffer(data, dtype=np.uint8).reshape(n, SIZE, SIZE)


def predict(model, names: list[str], canvases) -> tuple[dict, bytes]:
    """Runs the model in batches; returns the header (parameters, ms per canvas) and the payload."""
    import numpy as np

    def forward(x):
        out = model(x.astype(np.float32), training=False)
        out = dict(out) if isinstance(out, dict) else dict(zip(names, out if isinstance(out, (list, tuple))
                                                                else [out]))
        return {k: np.asarray(out[k], dtype=np.float32) for k in CONTRACT}

    try:
        forward(canvases[:1])  # tracing is not inference
        start = time.perf_counter()
        parts = [forward(canvases[i:i + BATCH]) for i in range(0, len(canvases), BATCH)]
        seconds = time.perf_counter() - start
    except Exception:  # noqa: BLE001 - no message: it could echo canvas values
        raise Refused("run-error", "the model failed while running on the canvases") from None
    payload = b"".join(np.concatenate([p[k] for p in parts]).tobytes() for k in CONTRACT)
    header = {"status": "ok", "parameters": int(model.count_params()),
              "ms_per_canvas": 1000 * seconds / max(len(canvases), 1)}
    return header, payload
