"""A blind corpus of typical student mistakes, one wrong answer per function.

Written from the released lessons' text and stub docstrings only, without seeing the course's hint
catalogue, its checks or its solutions. Each entry of ``MISTAKES`` is (exercise, wrong function, words
that a hint naming exactly this mistake would very likely contain). ``bench/results/blind_a_first_run.json``
records the first (and only) run of the checks on them.
"""
import numpy as np

from mnistloc.checks import keras


# ---- lesson 1: place_digit ------------------------------------------------------------------------

def place_digit_in_place(canvas, digit, x, y):
    """Writes the digit into the given canvas itself (no copy), so the caller's canvas changes."""
    canvas[y:y + 28, x:x + 28] = digit
    return canvas


def place_digit_xy_swapped(canvas, digit, x, y):
    """Indexes the canvas as [x, y] (column first) instead of [row, column] = [y, x]."""
    out = canvas.copy()
    out[x:x + 28, y:y + 28] = digit
    return out


def place_digit_blend_max(canvas, digit, x, y):
    """Blends with np.maximum instead of replacing the canvas's pixels under the digit."""
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = np.maximum(out[y:y + 28, x:x + 28], digit)
    return out


def place_digit_blank_canvas(canvas, digit, x, y):
    """Starts from a fresh black canvas, dropping whatever the given canvas already held."""
    out = np.zeros_like(canvas)
    out[y:y + 28, x:x + 28] = digit
    return out


def place_digit_float(canvas, digit, x, y):
    """Returns a float64 canvas instead of a uint8 one."""
    out = canvas.astype(np.float64)
    out[y:y + 28, x:x + 28] = digit
    return out


# ---- lesson 1: tight_box --------------------------------------------------------------------------

def tight_box_inclusive_max(image):
    """Uses the last ink column/row itself as x1/y1 (inclusive max) instead of last + 1."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def tight_box_rows_first(image):
    """Returns [y0, x0, y1, x1]: rows before columns, x and y swapped."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def tight_box_empty_frame(image):
    """Uses argmax without checking for ink: an image with no ink gives [0, 0, W, H], not zeros."""
    ink = np.asarray(image) > 0
    cols, rows = ink.any(axis=0), ink.any(axis=1)
    x0, y0 = cols.argmax(), rows.argmax()
    x1 = len(cols) - cols[::-1].argmax()
    y1 = len(rows) - rows[::-1].argmax()
    return np.array([x0, y0, x1, y1], np.float32)


def tight_box_bright_only(image):
    """Counts only bright pixels (> 127) as ink, missing the faint stroke edges (ink is > 0)."""
    ink = np.asarray(image) > 127
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def tight_box_int(image):
    """Returns an int64 box instead of float32."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.int64)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.int64)


# ---- lesson 1: iou --------------------------------------------------------------------------------

def iou_no_clamp(a, b):
    """The overlap's width and height are not clamped at 0, so disjoint boxes get a nonzero 'overlap'."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_clamp_product(a, b):
    """Clamps the overlap area w * h at 0 instead of each side: two negative sides give a positive area."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(w * h, 0)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_plus_one(a, b):
    """Adds +1 to every width and height (inclusive pixel max), though x1 is exclusive."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0, None)
    inter = w * h
    area_a = np.clip(a[:, 2] - a[:, 0] + 1, 0, None) * np.clip(a[:, 3] - a[:, 1] + 1, 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0] + 1, 0, None) * np.clip(b[:, 3] - b[:, 1] + 1, 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_nan_on_empty(a, b):
    """Divides by the union without a guard: two empty boxes give 0 / 0 = NaN instead of 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def iou_union_double_counts(a, b):
    """Takes the union as area_a + area_b, forgetting to subtract the intersection."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


# ---- lesson 1: build_head -------------------------------------------------------------------------

def build_head_valid_padding(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """The hidden 3x3 convolution keeps Keras's default 'valid' padding, so the grid shrinks by 2 cells."""
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_no_relu(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """The hidden 3x3 convolution has no ReLU, so the head is linear up to its last activation."""
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_ignores_activation(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Ignores the `activation` argument: the last layer is always linear (no sigmoid/softmax)."""
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1)(x)
    return keras.Model(features, out, name=name)


def build_head_fixed_grid(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Fixes the input grid at 16x16 (Input(shape=(16, 16, channels))), so the head fails on other grid sizes."""
    features = keras.Input(shape=(16, 16, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_hidden_1x1(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Makes the hidden layer a 1x1 convolution instead of 3x3, so a cell never sees its neighbours."""
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 1, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


# ---- lesson 1: classic_model ----------------------------------------------------------------------

def classic_model_no_rescaling(*, size=128, filters=(16, 32, 64), units=128):
    """Leaves out Rescaling(1 / 255): the convolutions see raw pixels 0-255."""
    image = keras.Input(shape=(size, size), name="image")
    x = keras.layers.Reshape((size, size, 1))(image)
    for f in filters:
        x = keras.layers.Conv2D(f, 3, activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))
    presence = keras.layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_list_outputs(*, size=128, filters=(16, 32, 64), units=128):
    """Returns the outputs as a list [presence, box] instead of a dict keyed by the output names."""
    image = keras.Input(shape=(size, size), name="image")
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Reshape((size, size, 1))(image))
    for f in filters:
        x = keras.layers.Conv2D(f, 3, activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))
    presence = keras.layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, [presence, box])


def classic_model_linear_box(*, size=128, filters=(16, 32, 64), units=128):
    """The box head is a linear Dense(4) without the sigmoid, so rel_xyxy is not kept in [0, 1]."""
    image = keras.Input(shape=(size, size), name="image")
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Reshape((size, size, 1))(image))
    for f in filters:
        x = keras.layers.Conv2D(f, 3, activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))
    presence = keras.layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = keras.layers.Dense(4, name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_presence_softmax(*, size=128, filters=(16, 32, 64), units=128):
    """Uses a softmax on the single presence unit, which always outputs 1, instead of a sigmoid."""
    image = keras.Input(shape=(size, size), name="image")
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Reshape((size, size, 1))(image))
    for f in filters:
        x = keras.layers.Conv2D(f, 3, activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))
    presence = keras.layers.Dense(1, activation="softmax", name="presence")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_same_padding(*, size=128, filters=(16, 32, 64), units=128):
    """Gives the convolutions padding='same' instead of the valid padding the lesson specifies."""
    image = keras.Input(shape=(size, size), name="image")
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Reshape((size, size, 1))(image))
    for f in filters:
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(x))
    presence = keras.layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


# ---- lesson 1: boxes_from_cells -------------------------------------------------------------------

def boxes_from_cells_corner(distances, *, stride=8):
    """Measures from the cell's top-left corner (j * stride) instead of its centre ((j + 0.5) * stride)."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cy = np.arange(h)[:, None] * stride
    cx = np.arange(w)[None, :] * stride
    d = d * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_xy_swapped(distances, *, stride=8):
    """Takes the cell's x from its row index and y from its column index (x and y swapped)."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cx = (np.arange(h) + 0.5)[:, None] * stride
    cy = (np.arange(w) + 0.5)[None, :] * stride
    d = d * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_no_stride(distances, *, stride=8):
    """Subtracts/adds the distances in cells from a centre in pixels, forgetting to multiply them by stride."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cy = (np.arange(h) + 0.5)[:, None] * stride
    cx = (np.arange(w) + 0.5)[None, :] * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_leading_axes(distances, *, stride=8):
    """Reads H and W as shape[0] and shape[1], so it only works for a single (H, W, 4) map, not (..., H, W, 4)."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[0], d.shape[1]
    cy = (np.arange(h) + 0.5)[:, None] * stride
    cx = (np.arange(w) + 0.5)[None, :] * stride
    d = d * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_clipped(distances, *, stride=8):
    """Clips the boxes to the canvas [0, W * stride], though the lesson says no clipping."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cy = (np.arange(h) + 0.5)[:, None] * stride
    cx = (np.arange(w) + 0.5)[None, :] * stride
    d = d * stride
    out = np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1)
    return np.clip(out, 0, w * stride).astype(np.float32)


# ---- lesson 2: union_box --------------------------------------------------------------------------

def union_box_no_mask(boxes, mask):
    """Takes the min/max over every slot, so an unused slot's zeros pull x0, y0 to 0."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    out = np.concatenate([b[..., :2].min(axis=1), b[..., 2:].max(axis=1)], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_empty_inf(boxes, mask):
    """Masks with +/-inf but never resets empty canvases, which come out as [inf, inf, -inf, -inf]."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], b[..., :2], np.inf).min(axis=1)
    hi = np.where(m[..., None], b[..., 2:], -np.inf).max(axis=1)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)


def union_box_min_everywhere(boxes, mask):
    """Takes the minimum for x1, y1 too (instead of the maximum), so the box ends at the first digit's edge."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], b, np.inf).min(axis=1)
    return np.where(m.any(axis=1)[:, None], lo, 0).astype(np.float32)


def union_box_float64(boxes, mask):
    """Returns float64 boxes instead of float32."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], b[..., :2], np.inf).min(axis=1)
    hi = np.where(m[..., None], b[..., 2:], -np.inf).max(axis=1)
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0.0)


# ---- lesson 2: heatmap_targets --------------------------------------------------------------------

def heatmap_targets_sum(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Sums the bumps over the slots instead of keeping the larger one, so overlapping bumps exceed 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.sum(axis=1).astype(np.float32)


def heatmap_targets_no_mask(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Ignores the mask: an unused slot's zero box puts a bump in the top-left corner."""
    b = np.asarray(boxes, np.float64)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2))
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_no_floor(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Uses the centre's fractional cell position cx / stride (no floor), so the centre cell is not exactly 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = (b[..., 0] + b[..., 2]) / 2 / stride
    row = (b[..., 1] + b[..., 3]) / 2 / stride
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_xy_swapped(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Puts the centre's x on the rows and y on the columns (the map comes out transposed)."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    col = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_no_two(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Drops the 2 of the Gaussian: exp(-d^2 / sigma^2) instead of exp(-d^2 / (2 sigma^2)), a too-narrow bump."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / sigma ** 2) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


# ---- lesson 2: box_targets ------------------------------------------------------------------------

def box_targets_last_slot_wins(boxes, mask, *, size=128, stride=8, radius=1):
    """Fills each digit's block slot by slot, so where blocks meet the later slot overwrites (no nearest rule)."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n, k = m.shape
    g = size // stride
    out = np.zeros((n, g, g, 4))
    learns = np.zeros((n, g, g), bool)
    ctr = (np.arange(g) + 0.5) * stride
    for i in range(n):
        for s in range(k):
            if not m[i, s]:
                continue
            x0, y0, x1, y1 = b[i, s]
            row, col = int((y0 + y1) / 2 // stride), int((x0 + x1) / 2 // stride)
            for r in range(max(row - radius, 0), min(row + radius, g - 1) + 1):
                for c in range(max(col - radius, 0), min(col + radius, g - 1) + 1):
                    out[i, r, c] = [(ctr[c] - x0) / stride, (ctr[r] - y0) / stride,
                                    (x1 - ctr[c]) / stride, (y1 - ctr[r]) / stride]
                    learns[i, r, c] = True
    return out.astype(np.float32), learns


def box_targets_corner(boxes, mask, *, size=128, stride=8, radius=1):
    """Measures the distances from each cell's top-left corner (j * stride) instead of its centre."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & m[..., None, None]
    d2 = np.where(m[..., None, None], dy ** 2 + dx ** 2, np.inf)
    owner = d2.argmin(axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = np.arange(g) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_pixels(boxes, mask, *, size=128, stride=8, radius=1):
    """Returns the distances in pixels, forgetting to divide them by stride (they should be in cells)."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & m[..., None, None]
    d2 = np.where(m[..., None, None], dy ** 2 + dx ** 2, np.inf)
    owner = d2.argmin(axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1)
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_tie_later(boxes, mask, *, size=128, stride=8, radius=1):
    """On equal distances a cell learns the later slot's box instead of the earlier one's."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n, k = m.shape
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & m[..., None, None]
    d2 = np.where(m[..., None, None], dy ** 2 + dx ** 2, np.inf)
    owner = k - 1 - d2[:, ::-1].argmin(axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_no_mask(boxes, mask, *, size=128, stride=8, radius=1):
    """Ignores the mask: an unused slot's zero box makes the top-left cells learn a box."""
    b = np.asarray(boxes, np.float64)
    n = len(b)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    owner = (dy ** 2 + dx ** 2).argmin(axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_round_radius(boxes, mask, *, size=128, stride=8, radius=1):
    """Selects cells by Euclidean distance (d^2 <= radius^2), a plus shape, instead of the square block."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (dy ** 2 + dx ** 2 <= radius ** 2) & m[..., None, None]
    d2 = np.where(m[..., None, None], dy ** 2 + dx ** 2, np.inf)
    owner = d2.argmin(axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


# ---- lesson 2: find_peaks -------------------------------------------------------------------------

def find_peaks_strict(heatmap, *, k=10, threshold=0.0):
    """A peak must beat all eight neighbours strictly (>), so two equal neighbouring cells are no peak."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    others = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)], axis=0)
    peak = np.where((heat > others) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(peak, idx, axis=1)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
        sc = np.pad(sc, ((0, 0), (0, k - sc.shape[1])), constant_values=-np.inf)
    ok = np.isfinite(sc)
    return (np.where(ok, idx // w, -1).astype(np.int64), np.where(ok, idx % w, -1).astype(np.int64),
            np.where(ok, sc, 0).astype(np.float32))


def find_peaks_roll(heatmap, *, k=10, threshold=0.0):
    """Shifts the map with np.roll, which wraps around: cells on one edge compare with the opposite edge."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    local = np.max([np.roll(heat, (di, dj), axis=(1, 2)) for di in (-1, 0, 1) for dj in (-1, 0, 1)], axis=0)
    peak = np.where((heat >= local) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(peak, idx, axis=1)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
        sc = np.pad(sc, ((0, 0), (0, k - sc.shape[1])), constant_values=-np.inf)
    ok = np.isfinite(sc)
    return (np.where(ok, idx // w, -1).astype(np.int64), np.where(ok, idx % w, -1).astype(np.int64),
            np.where(ok, sc, 0).astype(np.float32))


def find_peaks_threshold_strict(heatmap, *, k=10, threshold=0.0):
    """Keeps peaks scoring strictly above the threshold (>) instead of at least it (>=)."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat > threshold), heat, -np.inf).reshape(n, -1)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(peak, idx, axis=1)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
        sc = np.pad(sc, ((0, 0), (0, k - sc.shape[1])), constant_values=-np.inf)
    ok = np.isfinite(sc)
    return (np.where(ok, idx // w, -1).astype(np.int64), np.where(ok, idx % w, -1).astype(np.int64),
            np.where(ok, sc, 0).astype(np.float32))


def find_peaks_pad_zero(heatmap, *, k=10, threshold=0.0):
    """Pads the missing peaks with row = col = 0 (a real cell) instead of -1."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(peak, idx, axis=1)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
        sc = np.pad(sc, ((0, 0), (0, k - sc.shape[1])), constant_values=-np.inf)
    ok = np.isfinite(sc)
    return (np.where(ok, idx // w, 0).astype(np.int64), np.where(ok, idx % w, 0).astype(np.int64),
            np.where(ok, sc, 0).astype(np.float32))


def find_peaks_rows_cols_swapped(heatmap, *, k=10, threshold=0.0):
    """Unravels the flat index the wrong way round: row = index % W, column = index // W."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    idx = np.argsort(-peak, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(peak, idx, axis=1)
    if idx.shape[1] < k:
        idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
        sc = np.pad(sc, ((0, 0), (0, k - sc.shape[1])), constant_values=-np.inf)
    ok = np.isfinite(sc)
    return (np.where(ok, idx % w, -1).astype(np.int64), np.where(ok, idx // w, -1).astype(np.int64),
            np.where(ok, sc, 0).astype(np.float32))


# ---- lesson 2: masked_box_loss --------------------------------------------------------------------

def masked_box_loss_no_mask(y_true, y_pred):
    """Averages the absolute error over every entry, ignoring the mask."""
    ops = keras.ops
    return ops.mean(ops.abs(y_true[..., 1:] - y_pred))


def masked_box_loss_mean_all(y_true, y_pred):
    """Multiplies by the mask but then averages over all entries instead of dividing by the mask's sum."""
    ops = keras.ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.mean(mask * err)


def masked_box_loss_no_guard(y_true, y_pred):
    """Divides by sum(mask) without max(., 1): an all-empty batch gives 0 / 0 = NaN."""
    ops = keras.ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.sum(mask)


def masked_box_loss_mask_channel(y_true, y_pred):
    """Compares y_true[..., :4] (mask and three box numbers) with the prediction instead of y_true[..., 1:]."""
    ops = keras.ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., :4] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.maximum(ops.sum(mask), 1.0)


def masked_box_loss_sum_four(y_true, y_pred):
    """Sums the four absolute errors instead of taking their mean (four times too large)."""
    ops = keras.ops
    mask = y_true[..., 0]
    err = ops.sum(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.maximum(ops.sum(mask), 1.0)


# ---- lesson 2: focal_loss -------------------------------------------------------------------------

def focal_loss_no_clip(y_true, y_pred, alpha=2.0, beta=4.0):
    """Does not clip p to [1e-6, 1 - 1e-6], so p = 0 or 1 gives log(0) = -inf and NaN."""
    ops = keras.ops
    p = y_pred
    pos = ops.cast(ops.equal(y_true, 1.0), y_true.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_mean_cells(y_true, y_pred, alpha=2.0, beta=4.0):
    """Averages over all cells instead of dividing the sum by the number of centres."""
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.mean(pos_loss + neg_loss)


def focal_loss_alpha_beta_swapped(y_true, y_pred, alpha=2.0, beta=4.0):
    """Swaps the exponents in the background term: (1 - y)^alpha * p^beta instead of (1 - y)^beta * p^alpha."""
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** alpha * p ** beta * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_no_penalty_reduction(y_true, y_pred, alpha=2.0, beta=4.0):
    """Leaves out the (1 - y)^beta factor, so cells near a centre are not forgiven for scoring high."""
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_bump_positive(y_true, y_pred, alpha=2.0, beta=4.0):
    """Counts every cell with y > 0 (the whole bump) as a centre instead of only the cells with y == 1."""
    ops = keras.ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(y_true > 0, p.dtype)
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y_true) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


# ---- lesson 3: one_hot ----------------------------------------------------------------------------

def one_hot_eye(labels, num_classes):
    """Indexes np.eye with the labels, so -1 becomes the last class instead of a row of zeros."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def one_hot_int(labels, num_classes):
    """Returns integers (int64) instead of float32."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(num_classes)).astype(np.int64)


def one_hot_flat(labels, num_classes):
    """Flattens the labels, so a (N, K) input gives (N * K, num_classes) instead of (N, K, num_classes)."""
    labels = np.asarray(labels).reshape(-1)
    out = np.zeros((len(labels), num_classes), np.float32)
    used = labels >= 0
    out[np.flatnonzero(used), labels[used]] = 1
    return out


def one_hot_one_based(labels, num_classes):
    """Compares with classes 1..num_classes (off by one): class 0 gets zeros, class c sets column c - 1."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(1, num_classes + 1)).astype(np.float32)


# ---- lesson 3: nms --------------------------------------------------------------------------------

def nms_ge(boxes, scores, iou_threshold=0.5):
    """Drops a box when its IoU with a kept box is >= the threshold instead of strictly above it."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] >= iou_threshold
    return np.array(keep, dtype=np.int64)


def nms_ascending(boxes, scores, iou_threshold=0.5):
    """Takes the boxes by ascending score (np.argsort(scores)), so the weakest box wins."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


def nms_dropped_suppress(boxes, scores, iou_threshold=0.5):
    """Drops a box when it overlaps any better-scored box, even one that was itself dropped."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    ious = pairwise_iou(b, b)
    order = np.argsort(-s, kind="stable")
    keep = []
    for pos, i in enumerate(order):
        if not (ious[i, order[:pos]] > iou_threshold).any():
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def nms_index_order(boxes, scores, iou_threshold=0.5):
    """Returns the kept indices sorted by index instead of by descending score."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.sort(np.array(keep, dtype=np.int64))


def nms_forgets_earlier(boxes, scores, iou_threshold=0.5):
    """Overwrites the suppressed set with the last kept box's overlaps (= instead of |=), forgetting earlier ones."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped = ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


# ---- lesson 3: iou_loss ---------------------------------------------------------------------------

def iou_loss_no_relu(y_true, y_pred):
    """Does not clamp the intersection's width and height at 0 (no relu), so they can go negative."""
    ops = keras.ops
    w, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2])
    ih = ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3])
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_unweighted(y_true, y_pred):
    """Ignores the weight channel: averages 1 - IoU over every cell."""
    ops = keras.ops
    t, p = y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.mean(1 - iou)


def iou_loss_max_intersection(y_true, y_pred):
    """Takes the maximum of the distances for the intersection instead of the minimum."""
    ops = keras.ops
    w, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.relu(ops.maximum(t[..., 0], p[..., 0]) + ops.maximum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.maximum(t[..., 1], p[..., 1]) + ops.maximum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_wrong_pairs(y_true, y_pred):
    """Pairs the distances wrongly: takes the width from l and t (and the height from r and b) instead of l + r."""
    ops = keras.ops
    w, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 1], p[..., 1]))
    ih = ops.relu(ops.minimum(t[..., 2], p[..., 2]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 1]) * (t[..., 2] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 1]) * ops.relu(p[..., 2] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_returns_iou(y_true, y_pred):
    """Returns the weighted mean IoU itself instead of 1 - IoU (a loss that rewards missing)."""
    ops = keras.ops
    w, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(w * iou) / ops.maximum(ops.sum(w), 1.0)


# ---- lesson 4: order_left_to_right ----------------------------------------------------------------

def order_left_to_right_unused_first(boxes, classes, mask):
    """Sorts by x0 without masking, so unused slots (x0 = 0) come first instead of last."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    order = np.lexsort((b[..., 1], b[..., 0]), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_no_y_tie(boxes, classes, mask):
    """Sorts by x0 only (stable), so equal x0 keep slot order instead of going by y0."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    order = np.argsort(np.where(m, b[..., 0], np.inf), axis=-1, kind="stable")
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_boxes_only(boxes, classes, mask):
    """Reorders the boxes but returns classes and mask in their old order: they no longer move together."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    x0 = np.where(m, b[..., 0], np.inf)
    y0 = np.where(m, b[..., 1], np.inf)
    order = np.lexsort((y0, x0), axis=-1)
    return np.take_along_axis(b, order[..., None], axis=1), c, m


def order_left_to_right_lexsort_keys(boxes, classes, mask):
    """Passes the keys to np.lexsort as (x0, y0): lexsort's last key is primary, so it sorts by y0 first."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    x0 = np.where(m, b[..., 0], np.inf)
    y0 = np.where(m, b[..., 1], np.inf)
    order = np.lexsort((x0, y0), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_descending(boxes, classes, mask):
    """Sorts the used slots right to left (descending x0), unused still last."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    x0 = np.where(m, -b[..., 0], np.inf)
    y0 = np.where(m, b[..., 1], np.inf)
    order = np.lexsort((y0, x0), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


# ---- lesson 4: average_precision ------------------------------------------------------------------

def average_precision_no_envelope(scores, matched, num_true):
    """Samples the raw precision at the first rank reaching each recall, without the envelope (best precision beyond)."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(idx < len(recall), precision[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_recall_over_detections(scores, matched, num_true):
    """Divides the true positives by the number of detections instead of num_true to get recall."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / len(s)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_unsorted(scores, matched, num_true):
    """Walks the detections in the given order, never ranking them by score."""
    m = np.asarray(matched, bool)
    if len(m) == 0:
        return 0.0
    tp = np.cumsum(m)
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_eleven_points(scores, matched, num_true):
    """Averages 11 recall points (0, 0.1, ..., 1, the old VOC rule) instead of COCO's 101."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 11), side="left")
    return float(np.mean(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_unreached_last(scores, matched, num_true):
    """Gives recalls never reached the last precision (clamped index) instead of 0."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(envelope[np.minimum(idx, len(recall) - 1)]))


# ---- lesson 4: match_detections -------------------------------------------------------------------

def match_detections_given_order(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Matches the detections in the given order instead of best score first."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(pb, tb)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in range(len(pb)):
        cand = np.where(~taken & (ious[d] >= iou_threshold), ious[d], -np.inf)
        if np.isfinite(cand).any():
            t = len(cand) - 1 - int(np.argmax(cand[::-1]))
            taken[t], out[d] = True, t
    return out


def match_detections_reuse(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Never marks a true box as taken, so a second detection of the same digit matches it again."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(pb, tb)
    out = np.full(len(pb), -1, np.int64)
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        cand = np.where(ious[d] >= iou_threshold, ious[d], -np.inf)
        if np.isfinite(cand).any():
            out[d] = len(cand) - 1 - int(np.argmax(cand[::-1]))
    return out


def match_detections_strict_threshold(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Requires IoU strictly above the threshold (>) instead of at least it (>=)."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(pb, tb)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        cand = np.where(~taken & (ious[d] > iou_threshold), ious[d], -np.inf)
        if np.isfinite(cand).any():
            t = len(cand) - 1 - int(np.argmax(cand[::-1]))
            taken[t], out[d] = True, t
    return out


def match_detections_tie_earlier(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """On equal IoUs takes the earlier true box (plain argmax) instead of the later one, as COCO does."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(pb, tb)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        cand = np.where(~taken & (ious[d] >= iou_threshold), ious[d], -np.inf)
        if np.isfinite(cand).any():
            t = int(np.argmax(cand))
            taken[t], out[d] = True, t
    return out


def match_detections_best_or_nothing(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Picks the best-overlapping true box first and gives up when it is taken, instead of the best free one."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(pb, tb)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    if len(tb) == 0:
        return out
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        t = len(tb) - 1 - int(np.argmax(ious[d][::-1]))
        if ious[d, t] >= iou_threshold and not taken[t]:
            taken[t], out[d] = True, t
    return out


# ---- lesson 5: choose_nms_threshold ---------------------------------------------------------------

def choose_nms_threshold_ignores_score(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts every peak NMS kept, ignoring min_score."""
    keeps, counts = np.asarray(keeps, bool), np.asarray(counts)
    counted = keeps.sum(axis=-1)
    accuracy = (counted == counts[None]).mean(axis=-1).astype(np.float64)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


def choose_nms_threshold_strict_score(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts peaks scoring strictly above min_score (>) instead of at least it (>=)."""
    keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores), np.asarray(counts)
    counted = (keeps & (scores[None] > min_score)).sum(axis=-1)
    accuracy = (counted == counts[None]).mean(axis=-1).astype(np.float64)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


def choose_nms_threshold_last_of_equals(keeps, scores, counts, thresholds, min_score=0.5):
    """Of equally good thresholds, returns the last instead of the first."""
    keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores), np.asarray(counts)
    counted = (keeps & (scores[None] >= min_score)).sum(axis=-1)
    accuracy = (counted == counts[None]).mean(axis=-1).astype(np.float64)
    best = len(accuracy) - 1 - int(np.argmax(accuracy[::-1]))
    return float(np.asarray(thresholds)[best]), accuracy


def choose_nms_threshold_returns_index(keeps, scores, counts, thresholds, min_score=0.5):
    """Returns the index of the best threshold instead of the threshold itself."""
    keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores), np.asarray(counts)
    counted = (keeps & (scores[None] >= min_score)).sum(axis=-1)
    accuracy = (counted == counts[None]).mean(axis=-1).astype(np.float64)
    return int(np.argmax(accuracy)), accuracy


def choose_nms_threshold_ignores_keeps(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts the peaks scoring at least min_score without looking at which ones NMS kept."""
    keeps, scores, counts = np.asarray(keeps, bool), np.asarray(scores), np.asarray(counts)
    counted = np.broadcast_to((scores >= min_score).sum(axis=-1), keeps.shape[:2])
    accuracy = (counted == counts[None]).mean(axis=-1).astype(np.float64)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


# ---- lesson 5: bump_sigmas ------------------------------------------------------------------------

def bump_sigmas_no_clip(boxes, stride=8):
    """Does not clip each side at 0, so an inverted box (both sides negative) gets a positive size."""
    b = np.asarray(boxes, np.float32)
    s = np.sqrt(np.abs((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])))
    return np.maximum(0.5, 0.4 * s / stride).astype(np.float32)


def bump_sigmas_no_floor(boxes, stride=8):
    """Leaves out the floor max(0.5, .): small or empty boxes get widths below 0.5 (even 0)."""
    b = np.asarray(boxes, np.float32)
    s = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None))
    return (0.4 * s / stride).astype(np.float32)


def bump_sigmas_pixels(boxes, stride=8):
    """Forgets to divide by stride: the width comes out in pixels, not cells."""
    b = np.asarray(boxes, np.float32)
    s = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None))
    return np.maximum(0.5, 0.4 * s).astype(np.float32)


def bump_sigmas_mean_side(boxes, stride=8):
    """Measures the digit's size as the mean side (w + h) / 2 instead of sqrt(w h)."""
    b = np.asarray(boxes, np.float32)
    s = (np.clip(b[..., 2] - b[..., 0], 0, None) + np.clip(b[..., 3] - b[..., 1], 0, None)) / 2
    return np.maximum(0.5, 0.4 * s / stride).astype(np.float32)


def bump_sigmas_float64(boxes, stride=8):
    """Returns float64 widths instead of float32."""
    b = np.asarray(boxes, np.float64)
    s = np.sqrt(np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None))
    return np.maximum(0.5, 0.4 * s / stride)


# ---- lesson 5: detector_targets -------------------------------------------------------------------

def detector_targets_power_inverted(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Raises the unit bump to the power s**2 instead of 1 / s**2, so large digits get narrower bumps."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        width = np.where(m[:, s], sig[:, s], 1.0)
        heat = np.maximum(heat, unit ** (width ** 2)[:, None, None])
    ltrb, cells = box_fn(b, m, size=size, stride=8)
    ltrb, cells = np.asarray(ltrb, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0.0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    owner = np.where(m[..., None, None], d2, np.inf).argmin(axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_one_width(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Never uses sigma_fn: calls heatmap_fn once on all slots with sigma=1, so every bump has one width."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    heat = np.asarray(heatmap_fn(b, m, size=size, stride=8, sigma=1.0), np.float64)
    ltrb, cells = box_fn(b, m, size=size, stride=8)
    ltrb, cells = np.asarray(ltrb, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0.0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    owner = np.where(m[..., None, None], d2, np.inf).argmin(axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_weight_everywhere(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Uses the whole presence heat as the weight, not cut to the cells box_fn marks (0 elsewhere)."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        width = np.where(m[:, s], sig[:, s], 1.0)
        heat = np.maximum(heat, unit ** (1.0 / width ** 2)[:, None, None])
    ltrb, cells = box_fn(b, m, size=size, stride=8)
    ltrb, cells = np.asarray(ltrb, np.float64), np.asarray(cells, bool)
    w = heat[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    owner = np.where(m[..., None, None], d2, np.inf).argmin(axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_sum_bumps(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Adds the slots' bumps instead of keeping the larger one where two meet."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        width = np.where(m[:, s], sig[:, s], 1.0)
        heat = heat + unit ** (1.0 / width ** 2)[:, None, None]
    ltrb, cells = box_fn(b, m, size=size, stride=8)
    ltrb, cells = np.asarray(ltrb, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0.0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    owner = np.where(m[..., None, None], d2, np.inf).argmin(axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_class_tie_later(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """For the class, a cell equally near two centres takes the later slot's class, not the earlier one's."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        width = np.where(m[:, s], sig[:, s], 1.0)
        heat = np.maximum(heat, unit ** (1.0 / width ** 2)[:, None, None])
    ltrb, cells = box_fn(b, m, size=size, stride=8)
    ltrb, cells = np.asarray(ltrb, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0.0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    d2 = np.where(m[..., None, None], d2, np.inf)
    owner = k - 1 - d2[:, ::-1].argmin(axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, ltrb], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


# ---- lesson 5: detect_digits ----------------------------------------------------------------------

def detect_digits_no_clip(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Reads the boxes at the peaks but never clips them to the canvas [0, G * 8]."""
    heat = np.asarray(outputs["presence"])[..., 0]
    n = len(heat)
    rows, cols, sc = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(n):
        ok = (rows[i] >= 0) & (sc[i] > 0)
        r, c, s = rows[i][ok], cols[i][ok], sc[i][ok].astype(np.float64)
        bx = every[i, r, c]
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels, score = p.argmax(axis=-1), s[keep] * p.max(axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_presence_score(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Scores each detection by presence alone instead of presence x the class probability."""
    heat = np.asarray(outputs["presence"])[..., 0]
    n, g = heat.shape[:2]
    rows, cols, sc = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(n):
        ok = (rows[i] >= 0) & (sc[i] > 0)
        r, c, s = rows[i][ok], cols[i][ok], sc[i][ok].astype(np.float64)
        bx = np.clip(every[i, r, c], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels, score = p.argmax(axis=-1), s[keep]
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_no_nms(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Skips NMS (nms_fn is never called): overlapping peaks all become detections."""
    heat = np.asarray(outputs["presence"])[..., 0]
    n, g = heat.shape[:2]
    rows, cols, sc = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(n):
        ok = (rows[i] >= 0) & (sc[i] > 0)
        r, c, s = rows[i][ok], cols[i][ok], sc[i][ok].astype(np.float64)
        bx = np.clip(every[i, r, c], 0, g * 8)
        p = probs[i, r, c]
        labels, score = p.argmax(axis=-1), s * p.max(axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_rows_cols_swapped(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5,
                                    min_score=0.01):
    """Reads the box and class maps at [column, row] instead of [row, column]."""
    heat = np.asarray(outputs["presence"])[..., 0]
    n, g = heat.shape[:2]
    rows, cols, sc = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(n):
        ok = (rows[i] >= 0) & (sc[i] > 0)
        r, c, s = rows[i][ok], cols[i][ok], sc[i][ok].astype(np.float64)
        bx = np.clip(every[i, c, r], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, c[keep], r[keep]]
        labels, score = p.argmax(axis=-1), s[keep] * p.max(axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_not_resorted(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Keeps NMS's order (by presence) instead of re-sorting by the final score, presence x class probability."""
    heat = np.asarray(outputs["presence"])[..., 0]
    n, g = heat.shape[:2]
    rows, cols, sc = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(n):
        ok = (rows[i] >= 0) & (sc[i] > 0)
        r, c, s = rows[i][ok], cols[i][ok], sc[i][ok].astype(np.float64)
        bx = np.clip(every[i, r, c], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels, score = p.argmax(axis=-1), s[keep] * p.max(axis=-1)
        sel = score >= min_score
        all_boxes.append(bx[keep][sel].astype(np.float32))
        all_labels.append(labels[sel].astype(np.int64))
        all_scores.append(score[sel].astype(np.float32))
    return all_boxes, all_labels, all_scores


MISTAKES = [
    # lesson 1
    ("place_digit", place_digit_in_place, ("copy", "in place", "unchanged", "modif")),
    ("place_digit", place_digit_xy_swapped, ("swap", "x and y", "transpos", "[y, x]")),
    ("place_digit", place_digit_blend_max, ("replace", "maximum", "overwrit", "blend")),
    ("place_digit", place_digit_blank_canvas, ("copy", "existing", "blank", "zeros")),
    ("place_digit", place_digit_float, ("uint8", "dtype", "float")),
    ("tight_box", tight_box_inclusive_max, ("exclusive", "+ 1", "off by one", "last ink")),
    ("tight_box", tight_box_rows_first, ("swap", "x and y", "order", "rows first")),
    ("tight_box", tight_box_empty_frame, ("no ink", "empty", "[0, 0, 0, 0]", "zeros")),
    ("tight_box", tight_box_bright_only, ("> 0", "faint", "threshold", "brighter")),
    ("tight_box", tight_box_int, ("float32", "dtype")),
    ("iou", iou_no_clamp, ("clamp", "overlap", "negative")),
    ("iou", iou_clamp_product, ("clamp", "each side", "width and height", "both")),
    ("iou", iou_plus_one, ("+1", "+ 1", "inclusive", "exclusive")),
    ("iou", iou_nan_on_empty, ("nan", "empty", "divi")),
    ("iou", iou_union_double_counts, ("union", "subtract", "twice")),
    ("build_head", build_head_valid_padding, ("padding", "same", "shrink")),
    ("build_head", build_head_no_relu, ("relu", "hidden", "linear")),
    ("build_head", build_head_ignores_activation, ("activation", "sigmoid", "softmax")),
    ("build_head", build_head_fixed_grid, ("none", "any grid", "grid size", "fixed")),
    ("build_head", build_head_hidden_1x1, ("3x3", "kernel", "neighbour")),
    ("classic_model", classic_model_no_rescaling, ("rescal", "255", "scale")),
    ("classic_model", classic_model_list_outputs, ("dict", "named", "keys")),
    ("classic_model", classic_model_linear_box, ("sigmoid", "linear", "activation")),
    ("classic_model", classic_model_presence_softmax, ("softmax", "sigmoid", "always 1")),
    ("classic_model", classic_model_same_padding, ("padding", "valid")),
    ("boxes_from_cells", boxes_from_cells_corner, ("0.5", "centre", "corner", "half")),
    ("boxes_from_cells", boxes_from_cells_xy_swapped, ("swap", "x and y", "rows and columns", "transpos")),
    ("boxes_from_cells", boxes_from_cells_no_stride, ("stride", "cells", "pixels")),
    ("boxes_from_cells", boxes_from_cells_leading_axes, ("leading", "batch", "any shape", "axes")),
    ("boxes_from_cells", boxes_from_cells_clipped, ("clip",)),
    # lesson 2
    ("union_box", union_box_no_mask, ("mask", "unused", "slot")),
    ("union_box", union_box_empty_inf, ("empty", "inf", "no digit", "zeros")),
    ("union_box", union_box_min_everywhere, ("max", "x1", "smallest box holding")),
    ("union_box", union_box_float64, ("float32", "dtype")),
    ("heatmap_targets", heatmap_targets_sum, ("max", "sum", "larger")),
    ("heatmap_targets", heatmap_targets_no_mask, ("mask", "unused", "empty")),
    ("heatmap_targets", heatmap_targets_no_floor, ("floor", "centre cell", "integer", "exactly 1")),
    ("heatmap_targets", heatmap_targets_xy_swapped, ("swap", "x and y", "transpos", "rows and columns")),
    ("heatmap_targets", heatmap_targets_no_two, ("2 sigma", "sigma^2", "factor", "width")),
    ("box_targets", box_targets_last_slot_wins, ("nearest", "owner", "overwrit", "closer")),
    ("box_targets", box_targets_corner, ("0.5", "centre", "corner", "half")),
    ("box_targets", box_targets_pixels, ("stride", "cells", "pixels")),
    ("box_targets", box_targets_tie_later, ("tie", "earlier", "first slot")),
    ("box_targets", box_targets_no_mask, ("mask", "unused", "empty")),
    ("box_targets", box_targets_round_radius, ("radius", "block", "3x3", "square")),
    ("find_peaks", find_peaks_strict, ("equal", "plateau", "tie", "both")),
    ("find_peaks", find_peaks_roll, ("wrap", "edge", "border", "off the grid")),
    ("find_peaks", find_peaks_threshold_strict, ("at least", ">=", "threshold")),
    ("find_peaks", find_peaks_pad_zero, ("-1", "pad", "fewer")),
    ("find_peaks", find_peaks_rows_cols_swapped, ("swap", "rows and columns", "row-major", "transpos")),
    ("masked_box_loss", masked_box_loss_no_mask, ("mask", "every entry", "empty")),
    ("masked_box_loss", masked_box_loss_mean_all, ("divide", "number of masked", "sum of the mask", "denominator")),
    ("masked_box_loss", masked_box_loss_no_guard, ("nan", "at least 1", "empty batch", "maximum")),
    ("masked_box_loss", masked_box_loss_mask_channel, ("channel", "y_true[..., 1:]", "first", "slice")),
    ("masked_box_loss", masked_box_loss_sum_four, ("mean", "four", "sum over")),
    ("focal_loss", focal_loss_no_clip, ("clip", "nan", "log(0)", "inf")),
    ("focal_loss", focal_loss_mean_cells, ("number of centres", "centres", "divide", "mean")),
    ("focal_loss", focal_loss_alpha_beta_swapped, ("alpha", "beta", "swap")),
    ("focal_loss", focal_loss_no_penalty_reduction, ("(1 - y)", "forgive", "penalty", "beta")),
    ("focal_loss", focal_loss_bump_positive, ("y == 1", "centre", "bump", "positive")),
    # lesson 3
    ("one_hot", one_hot_eye, ("-1", "last class", "none", "row of zeros")),
    ("one_hot", one_hot_int, ("float32", "dtype")),
    ("one_hot", one_hot_flat, ("shape", "any shape", "leading")),
    ("one_hot", one_hot_one_based, ("off by one", "shift", "class 0")),
    ("nms", nms_ge, ("above", ">=", "equal", "strictly")),
    ("nms", nms_ascending, ("descending", "highest", "lowest")),
    ("nms", nms_dropped_suppress, ("dropped", "kept box", "only kept", "chain")),
    ("nms", nms_index_order, ("descending score", "order", "sorted")),
    ("nms", nms_forgets_earlier, ("any kept", "every kept", "already kept", "accumulat")),
    ("iou_loss", iou_loss_no_relu, ("relu", "clamp", "negative", "at least 0")),
    ("iou_loss", iou_loss_unweighted, ("weight", "mask")),
    ("iou_loss", iou_loss_max_intersection, ("min", "minimum", "larger")),
    ("iou_loss", iou_loss_wrong_pairs, ("l + r", "t + b", "pair", "width")),
    ("iou_loss", iou_loss_returns_iou, ("1 - iou", "1 -", "minus")),
    # lesson 4
    ("order_left_to_right", order_left_to_right_unused_first, ("unused", "last", "mask", "inf")),
    ("order_left_to_right", order_left_to_right_no_y_tie, ("tie", "y0")),
    ("order_left_to_right", order_left_to_right_boxes_only, ("together", "classes", "same order")),
    ("order_left_to_right", order_left_to_right_lexsort_keys, ("primary", "lexsort", "y0", "top to bottom")),
    ("order_left_to_right", order_left_to_right_descending, ("left to right", "descending", "reverse", "rightmost")),
    ("average_precision", average_precision_no_envelope, ("envelope", "best precision", "beyond", "accumulate")),
    ("average_precision", average_precision_recall_over_detections, ("num_true", "true boxes", "recall")),
    ("average_precision", average_precision_unsorted, ("sort", "rank", "descending", "score")),
    ("average_precision", average_precision_eleven_points, ("101", "11")),
    ("average_precision", average_precision_unreached_last, ("never reached", "unreached", "0 for", "beyond")),
    ("match_detections", match_detections_given_order, ("score", "best first", "descending", "order")),
    ("match_detections", match_detections_reuse, ("once", "taken", "twice", "free")),
    ("match_detections", match_detections_strict_threshold, ("at least", ">=", "threshold", "equal")),
    ("match_detections", match_detections_tie_earlier, ("later", "tie", "equal iou", "last")),
    ("match_detections", match_detections_best_or_nothing, ("free", "next best", "taken", "already")),
    # lesson 5
    ("choose_nms_threshold", choose_nms_threshold_ignores_score, ("min_score", "score")),
    ("choose_nms_threshold", choose_nms_threshold_strict_score, ("at least", ">=", "strict")),
    ("choose_nms_threshold", choose_nms_threshold_last_of_equals, ("first", "equal", "tie")),
    ("choose_nms_threshold", choose_nms_threshold_returns_index, ("index", "threshold value", "not the index")),
    ("choose_nms_threshold", choose_nms_threshold_ignores_keeps, ("keeps", "kept", "nms")),
    ("bump_sigmas", bump_sigmas_no_clip, ("clip", "inverted", "negative")),
    ("bump_sigmas", bump_sigmas_no_floor, ("0.5", "floor", "at least")),
    ("bump_sigmas", bump_sigmas_pixels, ("stride", "cells", "pixels")),
    ("bump_sigmas", bump_sigmas_mean_side, ("sqrt", "area", "geometric")),
    ("bump_sigmas", bump_sigmas_float64, ("float32", "dtype")),
    ("detector_targets", detector_targets_power_inverted, ("power", "1 / s", "width", "sigma")),
    ("detector_targets", detector_targets_one_width, ("sigma_fn", "bump_sigmas", "one width", "size")),
    ("detector_targets", detector_targets_weight_everywhere, ("weight", "marks", "elsewhere", "cells that learn")),
    ("detector_targets", detector_targets_sum_bumps, ("max", "larger", "sum")),
    ("detector_targets", detector_targets_class_tie_later, ("tie", "earlier", "nearest", "first slot")),
    ("detect_digits", detect_digits_no_clip, ("clip", "canvas")),
    ("detect_digits", detect_digits_presence_score, ("class probability", "times", "product", "presence x")),
    ("detect_digits", detect_digits_no_nms, ("nms", "duplicate", "suppress")),
    ("detect_digits", detect_digits_rows_cols_swapped, ("swap", "rows and columns", "x and y", "transpos")),
    ("detect_digits", detect_digits_not_resorted, ("best score first", "sort", "order", "descending")),
]
