"""Blind corpus B: typical student mistakes for the 22 exercises, written from the lessons' text only.

Each function is one plausible wrong answer with the stub's signature; ``MISTAKES`` lists
``(exercise, function, words)``, where ``words`` are lower-case words or short phrases that a hint
naming this mistake would very likely contain. Every function is self-contained (``np`` at module
level, ``keras`` imported inside), as an answer cell of the lessons is.
"""
import numpy as np


# =============================================================================================
# Lesson 01-single-digit
# =============================================================================================

# ---- place_digit -----------------------------------------------------------------------------

def place_digit_slice_view(canvas, digit, x, y):
    """Copies with ``canvas[:]``, which is a view in numpy, so the caller's canvas is changed too."""
    out = canvas[:]
    out[y:y + 28, x:x + 28] = digit
    return out


def place_digit_swapped_xy(canvas, digit, x, y):
    """Indexes ``canvas[x, y]``: x used as the row and y as the column."""
    out = canvas.copy()
    out[x:x + 28, y:y + 28] = digit
    return out


def place_digit_maximum(canvas, digit, x, y):
    """Blends with ``np.maximum`` instead of replacing the canvas's pixels under the digit."""
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = np.maximum(out[y:y + 28, x:x + 28], digit)
    return out


def place_digit_added(canvas, digit, x, y):
    """Adds the digit to the canvas (``+=``), which also wraps around in uint8, instead of replacing."""
    out = canvas.copy()
    out[y:y + 28, x:x + 28] += digit
    return out


def place_digit_float_canvas(canvas, digit, x, y):
    """Builds the new canvas as float32 (``astype(np.float32)``): the result is no longer uint8."""
    out = canvas.astype(np.float32)
    out[y:y + 28, x:x + 28] = digit
    return out


# ---- tight_box -------------------------------------------------------------------------------

def tight_box_inclusive_max(image):
    """Returns the last ink column/row as x1/y1, forgetting the exclusive max (+1)."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def tight_box_rows_first(image):
    """Returns ``[y0, x0, y1, x1]``: rows before columns, x and y swapped."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def tight_box_argmax_no_empty_case(image):
    """Uses argmax on the ink profiles without handling a blank image, which then gives the whole image."""
    ink = np.asarray(image) > 0
    cols, rows = ink.any(axis=0), ink.any(axis=1)
    x0, y0 = cols.argmax(), rows.argmax()
    x1 = len(cols) - cols[::-1].argmax()
    y1 = len(rows) - rows[::-1].argmax()
    return np.array([x0, y0, x1, y1], np.float32)


def tight_box_xywh(image):
    """Returns ``[x0, y0, width, height]`` (xywh) instead of the xyxy corners."""
    ink = np.asarray(image) > 0
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    x0, y0, x1, y1 = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return np.array([x0, y0, x1 - x0, y1 - y0], np.float32)


def tight_box_bright_ink_only(image):
    """Counts only clearly visible ink (> 127) instead of every pixel brighter than 0."""
    ink = np.asarray(image) > 127
    cols = np.flatnonzero(ink.any(axis=0))
    rows = np.flatnonzero(ink.any(axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


# ---- iou -------------------------------------------------------------------------------------

def iou_no_clamp(a, b):
    """Does not clamp the overlap's width and height at 0, so disjoint boxes can give a nonzero IoU."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_plus_one(a, b):
    """Uses the inclusive-pixel convention ``x1 - x0 + 1`` for widths and heights (boxes are exclusive max)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a + area_b - inter)


def iou_unguarded_division(a, b):
    """Divides by the union without a guard: two empty boxes give NaN instead of 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def iou_union_not_subtracted(a, b):
    """Takes the union as ``area_a + area_b``, counting the intersection twice."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_min_max_swapped(a, b):
    """Swaps min and max for the overlap: ``max(x1) - min(x0)`` is the enclosing box, not the intersection."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


# ---- build_head ------------------------------------------------------------------------------

def build_head_no_hidden_relu(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Forgets the ReLU of the hidden 3x3 layer: two linear convolutions in a row."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_valid_padding(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Leaves the hidden 3x3 convolution at Keras's default ``padding="valid"``: the grid shrinks by 2."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_ignores_activation(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Never passes ``activation`` to the last layer: every head is linear (no sigmoid, no softmax)."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1)(x)
    return keras.Model(features, out, name=name)


def build_head_relu_default_output(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Reads ``activation=None`` as "use ReLU": the box head's distances can never be negative."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation or "relu")(x)
    return keras.Model(features, out, name=name)


def build_head_fixed_grid(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Fixes the input grid at 16x16 (``keras.Input(shape=(16, 16, channels))``): not any grid size."""
    import keras
    features = keras.Input(shape=(16, 16, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


# ---- classic_model ---------------------------------------------------------------------------

def classic_model_no_rescaling(*, size=128, filters=(16, 32, 64), units=128):
    """Forgets ``Rescaling(1 / 255)``: the convolutions see raw 0-255 pixels."""
    import keras
    from keras import layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(images)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    return keras.Model(images, {"presence": layers.Dense(1, activation="sigmoid", name="presence")(x),
                                "box": layers.Dense(4, activation="sigmoid", name="box")(x)})


def classic_model_linear_box(*, size=128, filters=(16, 32, 64), units=128):
    """Leaves the box head linear (no sigmoid), though the rel_xyxy box lies in [0, 1]."""
    import keras
    from keras import layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    return keras.Model(images, {"presence": layers.Dense(1, activation="sigmoid", name="presence")(x),
                                "box": layers.Dense(4, name="box")(x)})


def classic_model_list_outputs(*, size=128, filters=(16, 32, 64), units=128):
    """Returns the outputs as a list ``[presence, box]`` instead of a dict keyed by name."""
    import keras
    from keras import layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    return keras.Model(images, [layers.Dense(1, activation="sigmoid", name="presence")(x),
                                layers.Dense(4, activation="sigmoid", name="box")(x)])


def classic_model_no_hidden_dense(*, size=128, filters=(16, 32, 64), units=128):
    """Skips the hidden ``Dense(units, relu)`` layer: the heads read the flattened features directly."""
    import keras
    from keras import layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(images, {"presence": layers.Dense(1, activation="sigmoid", name="presence")(x),
                                "box": layers.Dense(4, activation="sigmoid", name="box")(x)})


def classic_model_softmax_presence(*, size=128, filters=(16, 32, 64), units=128):
    """Gives the one-unit presence head a softmax, which always outputs 1, instead of a sigmoid."""
    import keras
    from keras import layers
    images = keras.Input(shape=(size, size), name="image")
    x = layers.Rescaling(1 / 255)(layers.Reshape((size, size, 1))(images))
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    return keras.Model(images, {"presence": layers.Dense(1, activation="softmax", name="presence")(x),
                                "box": layers.Dense(4, activation="sigmoid", name="box")(x)})


# ---- boxes_from_cells ------------------------------------------------------------------------

def boxes_from_cells_rows_cols_swapped(distances, *, stride=8):
    """Takes the cell centre's x from the row index and y from the column index."""
    d = np.asarray(distances, np.float64)
    cx = (np.arange(d.shape[-3]) + 0.5)[:, None] * stride
    cy = (np.arange(d.shape[-2]) + 0.5)[None, :] * stride
    return np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                     cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1).astype(np.float32)


def boxes_from_cells_corner_not_centre(distances, *, stride=8):
    """Measures from the cell's top-left corner ``j * stride`` instead of its centre ``(j + 0.5) * stride``."""
    d = np.asarray(distances, np.float64)
    cy = np.arange(d.shape[-3])[:, None] * stride
    cx = np.arange(d.shape[-2])[None, :] * stride
    return np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                     cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1).astype(np.float32)


def boxes_from_cells_distances_not_scaled(distances, *, stride=8):
    """Subtracts the distances in cells from the centre in pixels (forgets ``* stride`` on l, t, r, b)."""
    d = np.asarray(distances, np.float64)
    cy = (np.arange(d.shape[-3]) + 0.5)[:, None] * stride
    cx = (np.arange(d.shape[-2]) + 0.5)[None, :] * stride
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_stride_hardcoded(distances, *, stride=8):
    """Hard-codes 8 pixels a cell and ignores the ``stride`` argument."""
    d = np.asarray(distances, np.float64)
    cy = (np.arange(d.shape[-3]) + 0.5)[:, None] * 8
    cx = (np.arange(d.shape[-2]) + 0.5)[None, :] * 8
    return np.stack([cx - d[..., 0] * 8, cy - d[..., 1] * 8, cx + d[..., 2] * 8, cy + d[..., 3] * 8],
                    axis=-1).astype(np.float32)


def boxes_from_cells_clipped(distances, *, stride=8):
    """Clips the boxes to the grid's canvas ``[0, W * stride]``, though the contract says no clipping."""
    d = np.asarray(distances, np.float64)
    h, w = d.shape[-3], d.shape[-2]
    cy = (np.arange(h) + 0.5)[:, None] * stride
    cx = (np.arange(w) + 0.5)[None, :] * stride
    out = np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                    cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1)
    return np.clip(out, 0, max(h, w) * stride).astype(np.float32)


# =============================================================================================
# Lesson 02-presence
# =============================================================================================

# ---- union_box -------------------------------------------------------------------------------

def union_box_ignores_mask(boxes, mask):
    """Takes the min and max over every slot, so an unused slot's zeros pull x0, y0 to 0."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    out = np.concatenate([b[..., :2].min(axis=1), b[..., 2:].max(axis=1)], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_inf_on_empty(boxes, mask):
    """Masks with +inf / -inf but never zeroes the canvases without a digit: they get inf and -inf."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)[..., None]
    lo = np.where(m, b[..., :2], np.inf).min(axis=1)
    hi = np.where(m, b[..., 2:], -np.inf).max(axis=1)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)


def union_box_min_max_swapped(boxes, mask):
    """Takes the max of x0, y0 and the min of x1, y1: the intersection of the boxes, not their union."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], b[..., :2], -np.inf).max(axis=1)
    hi = np.where(m[..., None], b[..., 2:], np.inf).min(axis=1)
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_first_two_slots(boxes, mask):
    """Hard-codes two slots: the union of slot 0 and slot 1 only, whatever K is."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    out = np.zeros((len(b), 4))
    for i in range(len(b)):
        used = [b[i, k] for k in range(min(2, b.shape[1])) if m[i, k]]
        if used:
            u = np.array(used)
            out[i] = [u[:, 0].min(), u[:, 1].min(), u[:, 2].max(), u[:, 3].max()]
    return out.astype(np.float32)


def union_box_float64(boxes, mask):
    """Right union box, but returned as float64 instead of float32."""
    b = np.asarray(boxes, np.float64)
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], b[..., :2], np.inf).min(axis=1)
    hi = np.where(m[..., None], b[..., 2:], -np.inf).max(axis=1)
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0.0)


# ---- heatmap_targets -------------------------------------------------------------------------

def heatmap_targets_sum_of_bumps(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Adds the bumps of the digits instead of keeping the larger one: cells between digits exceed 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.sum(axis=1).astype(np.float32)


def heatmap_targets_rows_cols_swapped(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Puts the centre cell at row ``floor(cx / stride)``, column ``floor(cy / stride)``: x and y swapped."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    col = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_no_floor(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Centres the bump at the exact centre in cells (``cy / stride``, no floor): no cell scores exactly 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = (b[..., 0] + b[..., 2]) / 2 / stride
    row = (b[..., 1] + b[..., 3]) / 2 / stride
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_ignores_mask(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Never applies the mask: an unused slot's zero box draws a bump at cell (0, 0)."""
    b = np.asarray(boxes, np.float64)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2))
    return heat.max(axis=1, initial=0.0).astype(np.float32)


def heatmap_targets_sigma_not_squared(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Divides by ``2 * sigma`` instead of ``2 * sigma ** 2``: right only when sigma is 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma)) * m[..., None, None]
    return heat.max(axis=1, initial=0.0).astype(np.float32)


# ---- box_targets -----------------------------------------------------------------------------

def box_targets_later_slot_overwrites(boxes, mask, *, size=128, stride=8, radius=1):
    """Fills slot by slot, each block overwriting the earlier ones: a shared cell learns the later digit."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n, k = m.shape
    g = size // stride
    ctr = (np.arange(g) + 0.5) * stride
    dist = np.zeros((n, g, g, 4))
    cells = np.zeros((n, g, g), bool)
    for i in range(n):
        for s in range(k):
            if not m[i, s]:
                continue
            x0, y0, x1, y1 = b[i, s]
            col, row = int((x0 + x1) / 2 // stride), int((y0 + y1) / 2 // stride)
            for r in range(max(row - radius, 0), min(row + radius, g - 1) + 1):
                for c in range(max(col - radius, 0), min(col + radius, g - 1) + 1):
                    cx, cy = ctr[c], ctr[r]
                    dist[i, r, c] = [(cx - x0) / stride, (cy - y0) / stride, (x1 - cx) / stride, (y1 - cy) / stride]
                    cells[i, r, c] = True
    return dist.astype(np.float32), cells


def box_targets_cell_corner(boxes, mask, *, size=128, stride=8, radius=1):
    """Measures from the cell's top-left corner ``j * stride`` instead of its centre ``(j + 0.5) * stride``."""
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
    owner = d2.argmin(axis=1) if m.shape[1] else np.zeros((n, g, g), int)
    cells = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    corner = np.arange(g) * stride
    cx, cy = corner[None, None, :], corner[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


def box_targets_in_pixels(boxes, mask, *, size=128, stride=8, radius=1):
    """Leaves the distances in pixels: forgets to divide by ``stride`` to get cells."""
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
    owner = d2.argmin(axis=1) if m.shape[1] else np.zeros((n, g, g), int)
    cells = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1)
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


def box_targets_round_radius(boxes, mask, *, size=128, stride=8, radius=1):
    """Selects cells by Euclidean distance ``dx^2 + dy^2 <= radius^2``: a plus shape, not the square block."""
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
    owner = d2.argmin(axis=1) if m.shape[1] else np.zeros((n, g, g), int)
    cells = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


def box_targets_unused_slots_compete(boxes, mask, *, size=128, stride=8, radius=1):
    """Uses the mask for the block but not for ownership: an unused slot's zero box at cell (0, 0) can own cells."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    dy = i[None, None, :, None] - row[..., None, None]
    dx = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & m[..., None, None]
    d2 = dy ** 2 + dx ** 2
    owner = d2.argmin(axis=1) if m.shape[1] else np.zeros((n, g, g), int)
    cells = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (np.arange(g) + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(cells[..., None], ltrb, 0).astype(np.float32), cells


# ---- find_peaks ------------------------------------------------------------------------------

def find_peaks_strictly_greater(heatmap, *, k=10, threshold=0.0):
    """Requires a peak to beat all eight neighbours strictly, so two equal neighbours are no peak at all."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    around = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)], axis=0)
    peak = np.where((heat > around) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    rows, cols = np.full((n, k), -1, np.int64), np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        idx = np.flatnonzero(np.isfinite(peak[i]))
        idx = idx[np.argsort(-peak[i, idx], kind="stable")][:k]
        rows[i, :len(idx)], cols[i, :len(idx)], scores[i, :len(idx)] = idx // w, idx % w, peak[i, idx]
    return rows, cols, scores


def find_peaks_threshold_strict(heatmap, *, k=10, threshold=0.0):
    """Keeps peaks scoring above ``threshold`` (``>``) instead of at least it (``>=``)."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat > threshold), heat, -np.inf).reshape(n, -1)
    rows, cols = np.full((n, k), -1, np.int64), np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        idx = np.flatnonzero(np.isfinite(peak[i]))
        idx = idx[np.argsort(-peak[i, idx], kind="stable")][:k]
        rows[i, :len(idx)], cols[i, :len(idx)], scores[i, :len(idx)] = idx // w, idx % w, peak[i, idx]
    return rows, cols, scores


def find_peaks_pads_with_zero_cell(heatmap, *, k=10, threshold=0.0):
    """Pads missing peaks with row = col = 0 (a real cell) instead of -1."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    rows, cols = np.zeros((n, k), np.int64), np.zeros((n, k), np.int64)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        idx = np.flatnonzero(np.isfinite(peak[i]))
        idx = idx[np.argsort(-peak[i, idx], kind="stable")][:k]
        rows[i, :len(idx)], cols[i, :len(idx)], scores[i, :len(idx)] = idx // w, idx % w, peak[i, idx]
    return rows, cols, scores


def find_peaks_reversed_ties(heatmap, *, k=10, threshold=0.0):
    """Sorts ascending and reverses (``argsort(scores)[::-1]``): equal scores come in reverse row-major order."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = np.where((heat >= local) & (heat >= threshold), heat, -np.inf).reshape(n, -1)
    rows, cols = np.full((n, k), -1, np.int64), np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        idx = np.flatnonzero(np.isfinite(peak[i]))
        idx = idx[np.argsort(peak[i, idx], kind="stable")[::-1]][:k]
        rows[i, :len(idx)], cols[i, :len(idx)], scores[i, :len(idx)] = idx // w, idx % w, peak[i, idx]
    return rows, cols, scores


def find_peaks_top_cells_no_maxpool(heatmap, *, k=10, threshold=0.0):
    """Returns the k highest cells over the threshold, skipping the 3x3 local-maximum test."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    peak = np.where(heat >= threshold, heat, -np.inf).reshape(n, -1)
    rows, cols = np.full((n, k), -1, np.int64), np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        idx = np.flatnonzero(np.isfinite(peak[i]))
        idx = idx[np.argsort(-peak[i, idx], kind="stable")][:k]
        rows[i, :len(idx)], cols[i, :len(idx)], scores[i, :len(idx)] = idx // w, idx % w, peak[i, idx]
    return rows, cols, scores


# ---- masked_box_loss -------------------------------------------------------------------------

def masked_box_loss_no_mask(y_true, y_pred):
    """Never uses the mask: the plain mean absolute error over every entry, empty ones included."""
    from keras import ops
    return ops.mean(ops.abs(y_true[..., 1:] - y_pred))


def masked_box_loss_mean_not_per_masked(y_true, y_pred):
    """Averages ``mask * error`` over all entries instead of dividing by the number of masked entries."""
    from keras import ops
    mask = y_true[..., 0]
    error = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.mean(mask * error)


def masked_box_loss_no_guard(y_true, y_pred):
    """Divides by ``sum(mask)`` without ``max(., 1)``: an all-empty batch gives NaN."""
    from keras import ops
    mask = y_true[..., 0]
    error = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * error) / ops.sum(mask)


def masked_box_loss_squared(y_true, y_pred):
    """Uses the squared error (L2) instead of the absolute error (L1)."""
    from keras import ops
    mask = y_true[..., 0]
    error = ops.mean(ops.square(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * error) / ops.maximum(ops.sum(mask), 1.0)


def masked_box_loss_wrong_slice(y_true, y_pred):
    """Takes the box as ``y_true[..., :4]`` (the mask channel and three numbers) instead of ``y_true[..., 1:]``."""
    from keras import ops
    mask = y_true[..., 0]
    error = ops.mean(ops.abs(y_true[..., :4] - y_pred), axis=-1)
    return ops.sum(mask * error) / ops.maximum(ops.sum(mask), 1.0)


# ---- focal_loss ------------------------------------------------------------------------------

def focal_loss_no_clip(y_true, y_pred, alpha=2.0, beta=4.0):
    """Never clips the probabilities, so ``log(0)`` makes the loss inf or NaN at p = 0 or 1."""
    from keras import ops
    p = ops.convert_to_tensor(y_pred, "float32")
    y = ops.convert_to_tensor(y_true, "float32")
    pos = ops.cast(y >= 1.0, "float32")
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_mean_over_cells(y_true, y_pred, alpha=2.0, beta=4.0):
    """Averages over all cells (``ops.mean``) instead of dividing the sum by the number of centres."""
    from keras import ops
    y = ops.convert_to_tensor(y_true, "float32")
    p = ops.clip(ops.convert_to_tensor(y_pred, "float32"), 1e-6, 1 - 1e-6)
    pos = ops.cast(y >= 1.0, "float32")
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y) ** beta * p ** alpha * ops.log(1 - p)
    return ops.mean(pos_loss + neg_loss)


def focal_loss_bump_counts_as_centre(y_true, y_pred, alpha=2.0, beta=4.0):
    """Treats every cell of the bump (``y > 0``) as a centre, not only the cells where ``y == 1``."""
    from keras import ops
    y = ops.convert_to_tensor(y_true, "float32")
    p = ops.clip(ops.convert_to_tensor(y_pred, "float32"), 1e-6, 1 - 1e-6)
    pos = ops.cast(y > 0.0, "float32")
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_no_penalty_reduction(y_true, y_pred, alpha=2.0, beta=4.0):
    """Drops the ``(1 - y)^beta`` factor: cells next to a centre are punished like far background."""
    from keras import ops
    y = ops.convert_to_tensor(y_true, "float32")
    p = ops.clip(ops.convert_to_tensor(y_pred, "float32"), 1e-6, 1 - 1e-6)
    pos = ops.cast(y >= 1.0, "float32")
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_no_guard(y_true, y_pred, alpha=2.0, beta=4.0):
    """Divides by the number of centres without ``max(., 1)``: a heatmap with no centre gives inf or NaN."""
    from keras import ops
    y = ops.convert_to_tensor(y_true, "float32")
    p = ops.clip(ops.convert_to_tensor(y_pred, "float32"), 1e-6, 1 - 1e-6)
    pos = ops.cast(y >= 1.0, "float32")
    pos_loss = -pos * (1 - p) ** alpha * ops.log(p)
    neg_loss = -(1 - pos) * (1 - y) ** beta * p ** alpha * ops.log(1 - p)
    return ops.sum(pos_loss + neg_loss) / ops.sum(pos)


# =============================================================================================
# Lesson 03-multi-class
# =============================================================================================

# ---- one_hot ---------------------------------------------------------------------------------

def one_hot_eye_index(labels, num_classes):
    """Indexes ``np.eye(num_classes)[labels]``: a label of -1 becomes the last class, not a row of zeros."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def one_hot_flattened(labels, num_classes):
    """Fills a (labels.size, num_classes) array and never reshapes it: the labels' own shape is lost."""
    flat = np.asarray(labels).ravel()
    out = np.zeros((flat.size, num_classes), np.float32)
    used = flat >= 0
    out[np.flatnonzero(used), flat[used]] = 1
    return out


def one_hot_integer_dtype(labels, num_classes):
    """Right rows, but integers (``astype(int)``) instead of float32."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(num_classes)).astype(np.int64)


def one_hot_classes_first(labels, num_classes):
    """Puts the class axis first (``arange(C)[:, None] == labels``): shape (num_classes, ...) instead of (..., num_classes)."""
    labels = np.asarray(labels)
    return (np.arange(num_classes).reshape((num_classes,) + (1,) * labels.ndim) == labels).astype(np.float32)


def one_hot_overwrites_labels(labels, num_classes):
    """Replaces the -1 labels by 0 in the caller's array (in place) before indexing ``np.eye``."""
    labels = np.asarray(labels)
    none = labels < 0
    labels[none] = 0
    out = np.eye(num_classes, dtype=np.float32)[labels]
    out[none] = 0
    return out


# ---- nms -------------------------------------------------------------------------------------

def nms_at_or_above(boxes, scores, iou_threshold=0.5):
    """Drops a box whose IoU equals the threshold too (``>=``); only IoU above it should drop."""
    b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    keep, dropped = [], np.zeros(len(b), bool)
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] >= iou_threshold
    return np.array(keep, np.int64)


def nms_dropped_boxes_suppress(boxes, scores, iou_threshold=0.5):
    """Suppresses with every box visited, kept or already dropped (the update sits outside the ``if``)."""
    b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    keep, dropped = [], np.zeros(len(b), bool)
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
        dropped |= ious[i] > iou_threshold
    return np.array(keep, np.int64)


def nms_index_order(boxes, scores, iou_threshold=0.5):
    """Returns the kept indices sorted by index (``np.sort``) instead of by descending score."""
    b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    keep, dropped = [], np.zeros(len(b), bool)
    for i in np.argsort(-s, kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.sort(np.array(keep, np.int64))


def nms_reversed_ties(boxes, scores, iou_threshold=0.5):
    """Orders by ``argsort(scores)[::-1]``: descending, but equal scores in reverse of the given order."""
    b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    keep, dropped = [], np.zeros(len(b), bool)
    for i in np.argsort(s, kind="stable")[::-1]:
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, np.int64)


def nms_only_against_best(boxes, scores, iou_threshold=0.5):
    """Compares every box with the best box only, not with every box kept so far (one pass, not greedy)."""
    b, s = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    if len(b) == 0:
        return np.zeros(0, np.int64)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    order = np.argsort(-s, kind="stable")
    best = order[0]
    return np.array([best] + [j for j in order[1:] if ious[best, j] <= iou_threshold], np.int64)


# ---- iou_loss --------------------------------------------------------------------------------

def iou_loss_no_relu_intersection(y_true, y_pred):
    """Does not clamp the intersection's width and height at 0: disjoint boxes get a negative intersection."""
    from keras import ops
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2])
    ih = ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3])
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


def iou_loss_union_is_sum(y_true, y_pred):
    """Takes the union as ``area + area'`` without subtracting the intersection."""
    from keras import ops
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


def iou_loss_max_for_intersection(y_true, y_pred):
    """Uses ``max(l, l') + max(r, r')`` for the intersection: that is the enclosing box, not the overlap."""
    from keras import ops
    mask, t, p = y_true[..., 0], y_true[..., 1:], y_pred
    iw = ops.relu(ops.maximum(t[..., 0], p[..., 0]) + ops.maximum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.maximum(t[..., 1], p[..., 1]) + ops.maximum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


def iou_loss_unweighted_mean(y_true, y_pred):
    """Ignores the weight channel: the mean of ``1 - IoU`` over every cell, empty cells included."""
    from keras import ops
    t, p = y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.mean(1 - iou)


def iou_loss_binary_weight(y_true, y_pred):
    """Turns the weights into a 0/1 mask (``weight > 0``), so cells count equally instead of by their weight."""
    from keras import ops
    mask = ops.cast(y_true[..., 0] > 0, "float32")
    t, p = y_true[..., 1:], y_pred
    iw = ops.relu(ops.minimum(t[..., 0], p[..., 0]) + ops.minimum(t[..., 2], p[..., 2]))
    ih = ops.relu(ops.minimum(t[..., 1], p[..., 1]) + ops.minimum(t[..., 3], p[..., 3]))
    inter = iw * ih
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = ops.relu(p[..., 0] + p[..., 2]) * ops.relu(p[..., 1] + p[..., 3])
    iou = inter / ops.maximum(area_t + area_p - inter, 1e-6)
    return ops.sum(mask * (1 - iou)) / ops.maximum(ops.sum(mask), 1.0)


# =============================================================================================
# Lesson 04-multiple-digits
# =============================================================================================

# ---- order_left_to_right ---------------------------------------------------------------------

def order_left_to_right_unused_first(boxes, classes, mask):
    """Sorts on ``x0`` with no ``inf`` key for unused slots, whose zero boxes then come first."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    order = np.lexsort((b[..., 1], b[..., 0]), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_no_y_tiebreak(boxes, classes, mask):
    """Sorts on ``x0`` alone (stable), so digits with equal ``x0`` keep their slot order instead of ``y0``'s."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    key = np.where(m, b[..., 0], np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_by_centre(boxes, classes, mask):
    """Sorts by the box's centre ``(x0 + x1) / 2`` instead of its left edge ``x0``."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    cx = np.where(m, (b[..., 0] + b[..., 2]) / 2, np.inf)
    cy = np.where(m, (b[..., 1] + b[..., 3]) / 2, np.inf)
    order = np.lexsort((cy, cx), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_boxes_only(boxes, classes, mask):
    """Reorders the boxes but returns the classes and the mask in their old order."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    order = np.lexsort((np.where(m, b[..., 1], np.inf), np.where(m, b[..., 0], np.inf)), axis=-1)
    return np.take_along_axis(b, order[..., None], axis=1), c, m


def order_left_to_right_lexsort_keys_reversed(boxes, classes, mask):
    """Passes ``np.lexsort((x0, y0))``: lexsort's primary key is the last, so it sorts top to bottom."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    x0 = np.where(m, b[..., 0], np.inf)
    y0 = np.where(m, b[..., 1], np.inf)
    order = np.lexsort((x0, y0), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


# ---- average_precision -----------------------------------------------------------------------

def average_precision_no_envelope(scores, matched, num_true):
    """Samples the raw precision at the first rank reaching each recall, without the envelope (best at or beyond)."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(idx < len(recall), precision[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_recall_over_matches(scores, matched, num_true):
    """Divides the true positives by the number of matched detections instead of ``num_true`` for the recall."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / max(int(m.sum()), 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean(np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)))


def average_precision_unranked(scores, matched, num_true):
    """Walks the detections in the given order, never ranking them by descending score."""
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
    """Averages the envelope at the 11 recalls 0, 0.1, ..., 1 (old VOC) instead of COCO's 101."""
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


def average_precision_unreached_keep_last(scores, matched, num_true):
    """Gives recalls never reached the last precision (index clipped) instead of 0."""
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


# ---- match_detections ------------------------------------------------------------------------

def match_detections_given_order(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Matches the detections in the given order instead of best score first."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    lt = np.maximum(pb[:, None, :2], tb[None, :, :2])
    rb = np.minimum(pb[:, None, 2:], tb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_p = np.clip(pb[:, 2] - pb[:, 0], 0, None) * np.clip(pb[:, 3] - pb[:, 1], 0, None)
    area_t = np.clip(tb[:, 2] - tb[:, 0], 0, None) * np.clip(tb[:, 3] - tb[:, 1], 0, None)
    union = area_p[:, None] + area_t[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in range(len(pb)):
        cand = np.where(~taken & (ious[d] >= iou_threshold), ious[d], -np.inf)
        if len(cand) and np.isfinite(cand.max()):
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            taken[g], out[d] = True, g
    return out


def match_detections_reuses_true_boxes(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Never marks a true box as taken: two detections of one digit both match it."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    lt = np.maximum(pb[:, None, :2], tb[None, :, :2])
    rb = np.minimum(pb[:, None, 2:], tb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_p = np.clip(pb[:, 2] - pb[:, 0], 0, None) * np.clip(pb[:, 3] - pb[:, 1], 0, None)
    area_t = np.clip(tb[:, 2] - tb[:, 0], 0, None) * np.clip(tb[:, 3] - tb[:, 1], 0, None)
    union = area_p[:, None] + area_t[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.full(len(pb), -1, np.int64)
    for d in np.argsort(-s, kind="stable"):
        cand = np.where(ious[d] >= iou_threshold, ious[d], -np.inf)
        if len(cand) and np.isfinite(cand.max()):
            out[d] = len(cand) - 1 - int(np.argmax(cand[::-1]))
    return out


def match_detections_strict_threshold(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Requires IoU above the threshold (``>``), where an IoU equal to it should match."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    lt = np.maximum(pb[:, None, :2], tb[None, :, :2])
    rb = np.minimum(pb[:, None, 2:], tb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_p = np.clip(pb[:, 2] - pb[:, 0], 0, None) * np.clip(pb[:, 3] - pb[:, 1], 0, None)
    area_t = np.clip(tb[:, 2] - tb[:, 0], 0, None) * np.clip(tb[:, 3] - tb[:, 1], 0, None)
    union = area_p[:, None] + area_t[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-s, kind="stable"):
        cand = np.where(~taken & (ious[d] > iou_threshold), ious[d], -np.inf)
        if len(cand) and np.isfinite(cand.max()):
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            taken[g], out[d] = True, g
    return out


def match_detections_first_of_equal_ious(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Breaks equal IoUs with ``np.argmax`` (the earlier true box) instead of the later one, as COCO."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    lt = np.maximum(pb[:, None, :2], tb[None, :, :2])
    rb = np.minimum(pb[:, None, 2:], tb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_p = np.clip(pb[:, 2] - pb[:, 0], 0, None) * np.clip(pb[:, 3] - pb[:, 1], 0, None)
    area_t = np.clip(tb[:, 2] - tb[:, 0], 0, None) * np.clip(tb[:, 3] - tb[:, 1], 0, None)
    union = area_p[:, None] + area_t[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-s, kind="stable"):
        cand = np.where(~taken & (ious[d] >= iou_threshold), ious[d], -np.inf)
        if len(cand) and np.isfinite(cand.max()):
            g = int(np.argmax(cand))
            taken[g], out[d] = True, g
    return out


def match_detections_best_even_if_taken(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Looks only at the true box of highest IoU; when it is already taken, gives up instead of trying the next free one."""
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    lt = np.maximum(pb[:, None, :2], tb[None, :, :2])
    rb = np.minimum(pb[:, None, 2:], tb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_p = np.clip(pb[:, 2] - pb[:, 0], 0, None) * np.clip(pb[:, 3] - pb[:, 1], 0, None)
    area_t = np.clip(tb[:, 2] - tb[:, 0], 0, None) * np.clip(tb[:, 3] - tb[:, 1], 0, None)
    union = area_p[:, None] + area_t[None, :] - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    out = np.full(len(pb), -1, np.int64)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-s, kind="stable"):
        if len(tb) == 0:
            break
        g = len(tb) - 1 - int(np.argmax(ious[d][::-1]))
        if ious[d, g] >= iou_threshold and not taken[g]:
            taken[g], out[d] = True, g
    return out


# =============================================================================================
# Lesson 05-many-digits
# =============================================================================================

# ---- choose_nms_threshold --------------------------------------------------------------------

def choose_nms_threshold_ignores_min_score(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts every peak NMS kept, however low it scores: ``min_score`` is never applied."""
    found = np.asarray(keeps, bool).sum(axis=2)
    accuracy = (found == np.asarray(counts)[None, :]).mean(axis=1).astype(np.float64)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


def choose_nms_threshold_last_of_equals(keeps, scores, counts, thresholds, min_score=0.5):
    """On a tie picks the last best threshold (``argmax`` of the reversed accuracies) instead of the first."""
    sure = np.asarray(scores) >= min_score
    found = (np.asarray(keeps, bool) & sure[None]).sum(axis=2)
    accuracy = (found == np.asarray(counts)[None, :]).mean(axis=1).astype(np.float64)
    best = len(accuracy) - 1 - int(np.argmax(accuracy[::-1]))
    return float(np.asarray(thresholds)[best]), accuracy


def choose_nms_threshold_returns_index(keeps, scores, counts, thresholds, min_score=0.5):
    """Returns the index of the best threshold instead of the threshold itself."""
    sure = np.asarray(scores) >= min_score
    found = (np.asarray(keeps, bool) & sure[None]).sum(axis=2)
    accuracy = (found == np.asarray(counts)[None, :]).mean(axis=1).astype(np.float64)
    return float(np.argmax(accuracy)), accuracy


def choose_nms_threshold_ignores_keeps(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts the peaks scoring at least ``min_score`` without looking at which ones NMS kept."""
    keeps = np.asarray(keeps, bool)
    found = (np.asarray(scores) >= min_score).sum(axis=1)
    right = (found == np.asarray(counts)).mean()
    accuracy = np.full(len(keeps), right, np.float64)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


def choose_nms_threshold_counts_not_share(keeps, scores, counts, thresholds, min_score=0.5):
    """Returns how many canvases are counted right at each threshold instead of their share (a fraction)."""
    sure = np.asarray(scores) >= min_score
    found = (np.asarray(keeps, bool) & sure[None]).sum(axis=2)
    right = (found == np.asarray(counts)[None, :]).sum(axis=1).astype(np.float64)
    return float(np.asarray(thresholds)[np.argmax(right)]), right


# ---- bump_sigmas -----------------------------------------------------------------------------

def bump_sigmas_sides_not_clipped(boxes, stride=8):
    """Does not clip each side at 0, so an inverted box (both sides negative) gets a size."""
    b = np.asarray(boxes, np.float32)
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    with np.errstate(invalid="ignore"):
        return np.maximum(0.5, 0.4 * np.sqrt(w * h) / stride).astype(np.float32)


def bump_sigmas_no_floor(boxes, stride=8):
    """Forgets the floor of 0.5 cell: tiny or empty boxes get widths near 0."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return (0.4 * np.sqrt(w * h) / stride).astype(np.float32)


def bump_sigmas_in_pixels(boxes, stride=8):
    """Forgets to divide by ``stride``: the width comes out in pixels, not cells."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * np.sqrt(w * h)).astype(np.float32)


def bump_sigmas_mean_side(boxes, stride=8):
    """Measures the digit by its mean side ``(w + h) / 2`` instead of ``sqrt(w h)``."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * (w + h) / 2 / stride).astype(np.float32)


def bump_sigmas_min_not_max(boxes, stride=8):
    """Uses ``np.minimum(0.5, ...)``: 0.5 becomes a ceiling instead of a floor."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.minimum(0.5, 0.4 * np.sqrt(w * h) / stride).astype(np.float32)


# ---- detector_targets ------------------------------------------------------------------------

def detector_targets_power_sigma_squared(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Raises the unit bump to ``s**2`` instead of ``1 / s**2``: large digits get narrow bumps, small ones wide."""
    b, m, cl = np.asarray(boxes, np.float64), np.asarray(mask, bool), np.asarray(classes)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64).reshape(n, k)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (sig[:, s, None, None] ** 2))
    dist, cells = box_fn(b, m, size=size, stride=8)
    dist, cells = np.asarray(dist, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    d2 = np.where(m[..., None, None], d2, np.inf)
    owner = d2.argmin(axis=1) if k else np.zeros((n, g, g), np.int64)
    cls = np.take_along_axis(np.where(m, cl, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_bumps_added(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Adds the slots' bumps together instead of keeping the larger one where they meet."""
    b, m, cl = np.asarray(boxes, np.float64), np.asarray(mask, bool), np.asarray(classes)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64).reshape(n, k)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = heat + unit ** (1.0 / sig[:, s, None, None] ** 2)
    dist, cells = box_fn(b, m, size=size, stride=8)
    dist, cells = np.asarray(dist, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    d2 = np.where(m[..., None, None], d2, np.inf)
    owner = d2.argmin(axis=1) if k else np.zeros((n, g, g), np.int64)
    cls = np.take_along_axis(np.where(m, cl, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_weight_is_cells(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Uses the cells' 0/1 marks as the weight instead of the presence heat at those cells."""
    b, m, cl = np.asarray(boxes, np.float64), np.asarray(mask, bool), np.asarray(classes)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64).reshape(n, k)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (1.0 / sig[:, s, None, None] ** 2))
    dist, cells = box_fn(b, m, size=size, stride=8)
    dist, cells = np.asarray(dist, np.float64), np.asarray(cells, bool)
    w = cells.astype(np.float64)[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    d2 = np.where(m[..., None, None], d2, np.inf)
    owner = d2.argmin(axis=1) if k else np.zeros((n, g, g), np.int64)
    cls = np.take_along_axis(np.where(m, cl, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_weight_not_cut(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Uses the whole heatmap as the weight, not cut to the cells ``box_fn`` marks (0 elsewhere)."""
    b, m, cl = np.asarray(boxes, np.float64), np.asarray(mask, bool), np.asarray(classes)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64).reshape(n, k)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (1.0 / sig[:, s, None, None] ** 2))
    dist, cells = box_fn(b, m, size=size, stride=8)
    dist, cells = np.asarray(dist, np.float64), np.asarray(cells, bool)
    w = heat[..., None]
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    i = np.arange(g)
    d2 = (i[None, None, :, None] - row[..., None, None]) ** 2 + (i[None, None, None, :] - col[..., None, None]) ** 2
    d2 = np.where(m[..., None, None], d2, np.inf)
    owner = d2.argmin(axis=1) if k else np.zeros((n, g, g), np.int64)
    cls = np.take_along_axis(np.where(m, cl, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


def detector_targets_class_of_highest_bump(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Gives a cell the class of the slot whose bump is highest there, not of the nearest centre cell (earlier slot on ties)."""
    b, m, cl = np.asarray(boxes, np.float64), np.asarray(mask, bool), np.asarray(classes)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64).reshape(n, k)
    bumps = np.zeros((n, max(k, 1), g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        bumps[:, s] = unit ** (1.0 / sig[:, s, None, None] ** 2)
    heat = bumps.max(axis=1)
    dist, cells = box_fn(b, m, size=size, stride=8)
    dist, cells = np.asarray(dist, np.float64), np.asarray(cells, bool)
    w = np.where(cells, heat, 0)[..., None]
    owner = bumps.argmax(axis=1)
    cls = np.take_along_axis(np.where(m, cl, 0) if k else np.zeros((n, 1), np.int64), owner.reshape(n, -1),
                             axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & cells[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([w, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([w, onehot], axis=-1).astype(np.float32)}


# ---- detect_digits ---------------------------------------------------------------------------

def detect_digits_presence_only_score(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Scores each detection by its presence alone, forgetting to multiply by the class probability."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(outputs["box"]))
    probs = np.asarray(outputs["class"])
    out_b, out_l, out_s = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak[i][ok].astype(np.float32)
        bx = np.clip(every[i, r, c], 0, g * 8).astype(np.float32)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        bx, s, p = bx[keep], s[keep], probs[i, r[keep], c[keep]]
        label, score = p.argmax(axis=-1), s
        sel = score >= min_score
        order = np.argsort(-score[sel], kind="stable")
        out_b.append(bx[sel][order].astype(np.float32))
        out_l.append(label[sel][order].astype(np.int64))
        out_s.append(score[sel][order].astype(np.float32))
    return out_b, out_l, out_s


def detect_digits_not_clipped(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Reads the boxes at the peaks but never clips them to the canvas ``[0, G * 8]``."""
    heat = np.asarray(outputs["presence"])[..., 0]
    rows, cols, peak = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(outputs["box"]))
    probs = np.asarray(outputs["class"])
    out_b, out_l, out_s = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak[i][ok].astype(np.float32)
        bx = every[i, r, c].astype(np.float32)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        bx, s, p = bx[keep], s[keep], probs[i, r[keep], c[keep]]
        label, score = p.argmax(axis=-1), s * p.max(axis=-1)
        sel = score >= min_score
        order = np.argsort(-score[sel], kind="stable")
        out_b.append(bx[sel][order].astype(np.float32))
        out_l.append(label[sel][order].astype(np.int64))
        out_s.append(score[sel][order].astype(np.float32))
    return out_b, out_l, out_s


def detect_digits_min_score_on_presence(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Drops detections by their presence score instead of by the final score (presence x class probability)."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(outputs["box"]))
    probs = np.asarray(outputs["class"])
    out_b, out_l, out_s = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak[i][ok].astype(np.float32)
        bx = np.clip(every[i, r, c], 0, g * 8).astype(np.float32)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        bx, s, p = bx[keep], s[keep], probs[i, r[keep], c[keep]]
        label, score = p.argmax(axis=-1), s * p.max(axis=-1)
        sel = s >= min_score
        order = np.argsort(-score[sel], kind="stable")
        out_b.append(bx[sel][order].astype(np.float32))
        out_l.append(label[sel][order].astype(np.int64))
        out_s.append(score[sel][order].astype(np.float32))
    return out_b, out_l, out_s


def detect_digits_default_nms_threshold(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Calls ``nms_fn(boxes, scores)`` without ``iou_threshold``: the argument is ignored (always NMS's default)."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(outputs["box"]))
    probs = np.asarray(outputs["class"])
    out_b, out_l, out_s = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak[i][ok].astype(np.float32)
        bx = np.clip(every[i, r, c], 0, g * 8).astype(np.float32)
        keep = np.asarray(nms_fn(bx, s, 0.5), np.int64)
        bx, s, p = bx[keep], s[keep], probs[i, r[keep], c[keep]]
        label, score = p.argmax(axis=-1), s * p.max(axis=-1)
        sel = score >= min_score
        order = np.argsort(-score[sel], kind="stable")
        out_b.append(bx[sel][order].astype(np.float32))
        out_l.append(label[sel][order].astype(np.int64))
        out_s.append(score[sel][order].astype(np.float32))
    return out_b, out_l, out_s


def detect_digits_not_sorted(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Returns the detections in NMS's order (by presence) instead of sorting them by their final score."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak = (np.asarray(a) for a in peaks_fn(heat, k=k))
    every = np.asarray(cells_fn(outputs["box"]))
    probs = np.asarray(outputs["class"])
    out_b, out_l, out_s = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak[i][ok].astype(np.float32)
        bx = np.clip(every[i, r, c], 0, g * 8).astype(np.float32)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        bx, s, p = bx[keep], s[keep], probs[i, r[keep], c[keep]]
        label, score = p.argmax(axis=-1), s * p.max(axis=-1)
        sel = score >= min_score
        out_b.append(bx[sel].astype(np.float32))
        out_l.append(label[sel].astype(np.int64))
        out_s.append(score[sel].astype(np.float32))
    return out_b, out_l, out_s


# =============================================================================================
# The corpus: (exercise, wrong function, words a hint naming the mistake would very likely contain)
# =============================================================================================

MISTAKES = [
    # lesson 01-single-digit
    ("place_digit", place_digit_slice_view, ("copy", "unchanged", "view", "in place")),
    ("place_digit", place_digit_swapped_xy, ("row", "column", "swap")),
    ("place_digit", place_digit_maximum, ("replace", "maximum", "blend")),
    ("place_digit", place_digit_added, ("replace", "add", "overflow", "wrap")),
    ("place_digit", place_digit_float_canvas, ("uint8", "dtype")),

    ("tight_box", tight_box_inclusive_max, ("exclusive", "+ 1", "+1", "last ink")),
    ("tight_box", tight_box_rows_first, ("row", "column", "swap")),
    ("tight_box", tight_box_argmax_no_empty_case, ("no ink", "empty", "blank")),
    ("tight_box", tight_box_xywh, ("xyxy", "width", "x1")),
    ("tight_box", tight_box_bright_ink_only, ("> 0", "faint", "brighter than 0", "threshold")),

    ("iou", iou_no_clamp, ("clamp", "overlap", "negative", "disjoint")),
    ("iou", iou_plus_one, ("+1", "+ 1", "exclusive")),
    ("iou", iou_unguarded_division, ("nan", "empty", "division")),
    ("iou", iou_union_not_subtracted, ("union", "subtract", "twice")),
    ("iou", iou_min_max_swapped, ("min", "max", "intersection")),

    ("build_head", build_head_no_hidden_relu, ("relu", "hidden")),
    ("build_head", build_head_valid_padding, ("padding", "same", "shrink")),
    ("build_head", build_head_ignores_activation, ("activation", "sigmoid", "softmax")),
    ("build_head", build_head_relu_default_output, ("linear", "relu", "negative", "sign")),
    ("build_head", build_head_fixed_grid, ("none", "grid size", "any grid", "input shape")),

    ("classic_model", classic_model_no_rescaling, ("rescal", "255", "scale")),
    ("classic_model", classic_model_linear_box, ("sigmoid", "linear", "[0, 1]")),
    ("classic_model", classic_model_list_outputs, ("dict", "named", "keyed")),
    ("classic_model", classic_model_no_hidden_dense, ("hidden", "dense", "units")),
    ("classic_model", classic_model_softmax_presence, ("softmax", "sigmoid", "presence")),

    ("boxes_from_cells", boxes_from_cells_rows_cols_swapped, ("row", "column", "swap")),
    ("boxes_from_cells", boxes_from_cells_corner_not_centre, ("centre", "center", "0.5", "corner")),
    ("boxes_from_cells", boxes_from_cells_distances_not_scaled, ("stride", "pixels", "cells")),
    ("boxes_from_cells", boxes_from_cells_stride_hardcoded, ("stride", "argument", "parameter")),
    ("boxes_from_cells", boxes_from_cells_clipped, ("clip", "no clipping")),

    # lesson 02-presence
    ("union_box", union_box_ignores_mask, ("mask", "unused", "zeros")),
    ("union_box", union_box_inf_on_empty, ("empty", "inf", "no digit")),
    ("union_box", union_box_min_max_swapped, ("minimum", "maximum", "intersection", "smallest")),
    ("union_box", union_box_first_two_slots, ("every slot", "two slots", "k slots", "hard-coded")),
    ("union_box", union_box_float64, ("float32", "dtype")),

    ("heatmap_targets", heatmap_targets_sum_of_bumps, ("max", "sum", "larger")),
    ("heatmap_targets", heatmap_targets_rows_cols_swapped, ("row", "column", "swap")),
    ("heatmap_targets", heatmap_targets_no_floor, ("floor", "centre cell", "exactly 1")),
    ("heatmap_targets", heatmap_targets_ignores_mask, ("mask", "unused", "slot")),
    ("heatmap_targets", heatmap_targets_sigma_not_squared, ("sigma^2", "squared", "sigma ** 2", "sigma**2")),

    ("box_targets", box_targets_later_slot_overwrites, ("nearest", "earlier slot", "tie", "overwrit")),
    ("box_targets", box_targets_cell_corner, ("centre", "center", "0.5", "corner")),
    ("box_targets", box_targets_in_pixels, ("stride", "cells", "pixels")),
    ("box_targets", box_targets_round_radius, ("square", "block", "3x3", "rows and columns")),
    ("box_targets", box_targets_unused_slots_compete, ("mask", "unused", "slot")),

    ("find_peaks", find_peaks_strictly_greater, ("equal", "tie", ">=", "plateau")),
    ("find_peaks", find_peaks_threshold_strict, ("at least", ">=", "threshold")),
    ("find_peaks", find_peaks_pads_with_zero_cell, ("-1", "pad", "fewer")),
    ("find_peaks", find_peaks_reversed_ties, ("row-major", "stable", "equal scores", "tie")),
    ("find_peaks", find_peaks_top_cells_no_maxpool, ("local max", "neighbour", "3x3", "max-pool")),

    ("masked_box_loss", masked_box_loss_no_mask, ("mask", "empty", "every entry")),
    ("masked_box_loss", masked_box_loss_mean_not_per_masked, ("divide", "number of masked", "sum of the mask", "sum(mask)")),
    ("masked_box_loss", masked_box_loss_no_guard, ("nan", "at least 1", "empty batch", "max(")),
    ("masked_box_loss", masked_box_loss_squared, ("absolute", "squared", "l1")),
    ("masked_box_loss", masked_box_loss_wrong_slice, ("first channel", "1:", "slice", "mask channel")),

    ("focal_loss", focal_loss_no_clip, ("clip", "log", "nan", "inf")),
    ("focal_loss", focal_loss_mean_over_cells, ("number of centres", "mean", "divide")),
    ("focal_loss", focal_loss_bump_counts_as_centre, ("y == 1", "centre", "bump", "positive")),
    ("focal_loss", focal_loss_no_penalty_reduction, ("(1 - y)", "penalty", "forgiv", "beta")),
    ("focal_loss", focal_loss_no_guard, ("at least 1", "no centre", "empty", "nan")),

    # lesson 03-multi-class
    ("one_hot", one_hot_eye_index, ("-1", "last class", "zeros")),
    ("one_hot", one_hot_flattened, ("shape", "reshape", "any shape")),
    ("one_hot", one_hot_integer_dtype, ("float32", "dtype")),
    ("one_hot", one_hot_classes_first, ("last axis", "shape", "transpos")),
    ("one_hot", one_hot_overwrites_labels, ("in place", "copy", "modif", "input")),

    ("nms", nms_at_or_above, ("above", ">=", "equal", "strictly")),
    ("nms", nms_dropped_boxes_suppress, ("dropped", "kept", "drops nothing")),
    ("nms", nms_index_order, ("descending", "by score", "order")),
    ("nms", nms_reversed_ties, ("tie", "stable", "equal scores", "given order")),
    ("nms", nms_only_against_best, ("every kept", "each kept", "greedy", "kept box")),

    ("iou_loss", iou_loss_no_relu_intersection, ("relu", "at least 0", "negative", "clamp")),
    ("iou_loss", iou_loss_union_is_sum, ("union", "subtract", "intersection")),
    ("iou_loss", iou_loss_max_for_intersection, ("min", "intersection", "enclos")),
    ("iou_loss", iou_loss_unweighted_mean, ("weight", "mask")),
    ("iou_loss", iou_loss_binary_weight, ("weight", "0/1", "binar", "sum of the weights")),

    # lesson 04-multiple-digits
    ("order_left_to_right", order_left_to_right_unused_first, ("unused", "last", "inf")),
    ("order_left_to_right", order_left_to_right_no_y_tiebreak, ("tie", "y0")),
    ("order_left_to_right", order_left_to_right_by_centre, ("x0", "left edge", "centre")),
    ("order_left_to_right", order_left_to_right_boxes_only, ("together", "classes", "mask")),
    ("order_left_to_right", order_left_to_right_lexsort_keys_reversed, ("primary", "lexsort", "last key", "y0")),

    ("average_precision", average_precision_no_envelope, ("envelope", "beyond", "best precision", "maximum")),
    ("average_precision", average_precision_recall_over_matches, ("num_true", "true boxes", "recall")),
    ("average_precision", average_precision_unranked, ("sort", "descending", "rank")),
    ("average_precision", average_precision_eleven_points, ("101", "0.01", "11")),
    ("average_precision", average_precision_unreached_keep_last, ("never reached", "unreached", "0 for")),

    ("match_detections", match_detections_given_order, ("descending", "best score first", "score order", "sort")),
    ("match_detections", match_detections_reuses_true_boxes, ("once", "taken", "free", "twice")),
    ("match_detections", match_detections_strict_threshold, (">=", "at least", "threshold")),
    ("match_detections", match_detections_first_of_equal_ious, ("later", "tie", "equal iou")),
    ("match_detections", match_detections_best_even_if_taken, ("free", "next", "taken")),

    # lesson 05-many-digits
    ("choose_nms_threshold", choose_nms_threshold_ignores_min_score, ("min_score", "score")),
    ("choose_nms_threshold", choose_nms_threshold_last_of_equals, ("first", "tie", "equal")),
    ("choose_nms_threshold", choose_nms_threshold_returns_index, ("index", "threshold value", "thresholds[")),
    ("choose_nms_threshold", choose_nms_threshold_ignores_keeps, ("kept", "keeps", "nms")),
    ("choose_nms_threshold", choose_nms_threshold_counts_not_share, ("share", "fraction", "divide", "mean")),

    ("bump_sigmas", bump_sigmas_sides_not_clipped, ("clip", "inverted", "negative")),
    ("bump_sigmas", bump_sigmas_no_floor, ("0.5", "floor", "at least")),
    ("bump_sigmas", bump_sigmas_in_pixels, ("stride", "cells", "pixels")),
    ("bump_sigmas", bump_sigmas_mean_side, ("sqrt", "w h", "area", "geometric")),
    ("bump_sigmas", bump_sigmas_min_not_max, ("max", "floor", "ceiling", "at least")),

    ("detector_targets", detector_targets_power_sigma_squared, ("1 / s", "power", "exponent", "1/s")),
    ("detector_targets", detector_targets_bumps_added, ("max", "larger", "sum")),
    ("detector_targets", detector_targets_weight_is_cells, ("weight", "heat", "presence")),
    ("detector_targets", detector_targets_weight_not_cut, ("cells", "0 elsewhere", "cut", "marks")),
    ("detector_targets", detector_targets_class_of_highest_bump, ("nearest", "owner", "centre cell", "earlier slot")),

    ("detect_digits", detect_digits_presence_only_score, ("class probability", "presence x", "multipl", "product")),
    ("detect_digits", detect_digits_not_clipped, ("clip", "canvas")),
    ("detect_digits", detect_digits_min_score_on_presence, ("min_score", "final score", "presence x")),
    ("detect_digits", detect_digits_default_nms_threshold, ("iou_threshold", "threshold", "argument")),
    ("detect_digits", detect_digits_not_sorted, ("sort", "best first", "descending")),
]
