"""Blind corpus C: typical student mistakes for the 22 exercises, written from the lessons' text only.

Each function is one plausible wrong answer with the stub's signature; ``MISTAKES`` lists
``(exercise, function, words)``, where ``words`` are lower-case words or short phrases that a hint
naming this mistake would very likely contain. Every function is self-contained (``np`` at module
level, ``keras`` imported inside), as an answer cell of the lessons is.
"""
import numpy as np

# ==== Lesson 01-single-digit ====
# ---- place_digit ----
def place_digit_mutates_canvas(canvas, digit, x, y):
    """Writes the digit into the given canvas in place and returns it, so the caller's canvas changes too."""
    canvas[y:y + 28, x:x + 28] = digit
    return canvas


def place_digit_swapped_xy(canvas, digit, x, y):
    """Indexes the canvas as image[x, y], so x picks the rows and y the columns."""
    out = canvas.copy()
    out[x:x + 28, y:y + 28] = digit
    return out


def place_digit_adds_pixels(canvas, digit, x, y):
    """Adds the digit's pixels to the canvas's pixels (uint8 sums wrap around) instead of replacing them."""
    out = canvas.copy()
    out[y:y + 28, x:x + 28] += digit
    return out


def place_digit_fresh_black_canvas(canvas, digit, x, y):
    """Starts from a new black canvas of the same shape, dropping whatever the given canvas already held."""
    out = np.zeros_like(canvas)
    out[y:y + 28, x:x + 28] = digit
    return out


def place_digit_float_canvas(canvas, digit, x, y):
    """Copies the canvas into a float32 array, so the returned canvas is not uint8."""
    out = np.array(canvas, dtype=np.float32)
    out[y:y + 28, x:x + 28] = digit
    return out


# ---- tight_box ----
def tight_box_inclusive_max(image):
    """Uses the last ink column and row themselves as x1 and y1, forgetting the exclusive max's + 1."""
    cols = np.flatnonzero(np.any(image > 0, axis=0))
    rows = np.flatnonzero(np.any(image > 0, axis=1))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def tight_box_swapped_axes(image):
    """Takes np.any over the wrong axes, so the "columns" it finds are the ink rows and the "rows" the ink columns."""
    cols = np.flatnonzero(np.any(image > 0, axis=1))
    rows = np.flatnonzero(np.any(image > 0, axis=0))
    if len(cols) == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def tight_box_integer_dtype(image):
    """Returns the box as an integer array instead of float32."""
    cols = np.flatnonzero(np.any(image > 0, axis=0))
    rows = np.flatnonzero(np.any(image > 0, axis=1))
    if len(cols) == 0:
        return np.zeros(4, dtype=int)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])


def tight_box_first_ink_pixel(image):
    """Takes x0 and x1 from the first and last ink pixels in row-major order instead of the smallest and largest ink columns."""
    ys, xs = np.nonzero(image > 0)
    if len(xs) == 0:
        return np.zeros(4, np.float32)
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float32)


def tight_box_argmax_no_empty_guard(image):
    """Finds the edges with np.argmax and never checks for an image without ink, which then gets the whole frame instead of zeros."""
    cols = np.any(image > 0, axis=0)
    rows = np.any(image > 0, axis=1)
    x0, y0 = np.argmax(cols), np.argmax(rows)
    x1, y1 = len(cols) - np.argmax(cols[::-1]), len(rows) - np.argmax(rows[::-1])
    return np.array([x0, y0, x1, y1], np.float32)


# ---- iou ----
def iou_no_clamp(a, b):
    """Does not clamp the overlap's width and height at 0, so boxes apart get a negative (or, apart both ways, a positive) overlap."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_clamps_area(a, b):
    """Clamps the overlap's area at 0 instead of its width and height, so boxes apart in both x and y still overlap."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(w * h, 0)
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_no_empty_guard(a, b):
    """Divides by the union without a guard, so two empty boxes give NaN instead of 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0)
    h = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / union


def iou_pixel_plus_one(a, b):
    """Counts pixels inclusively, adding 1 to every width and height, though the boxes' max is exclusive."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0)
    h = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_union_is_sum_of_areas(a, b):
    """Takes the union as the sum of the two areas without subtracting the overlap, so identical boxes score 0.5."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0)
    h = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# ---- build_head ----
def build_head_no_hidden_relu(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Leaves the hidden 3x3 convolution without its ReLU, so the two layers stay one linear map before the last activation."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_valid_padding(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Leaves the 3x3 convolution at its default valid padding, so the output grid loses a cell on every side."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_ignores_activation(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Never passes ``activation`` to the last layer, so presence and class heads come out linear."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1)(x)
    return keras.Model(features, out, name=name)


def build_head_kernel_sizes_swapped(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Uses a 1x1 hidden convolution and a 3x3 output convolution instead of a 3x3 hidden one and a 1x1 output."""
    import keras
    features = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(hidden, 1, activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 3, padding="same", activation=activation)(x)
    return keras.Model(features, out, name=name)


def build_head_fixed_grid(channels=64, hidden=64, outputs=4, activation=None, name="head"):
    """Fixes the input to a 16x16 grid instead of (None, None, channels), so the head refuses features of other grid sizes."""
    import keras
    features = keras.Input(shape=(16, 16, channels))
    x = keras.layers.Conv2D(hidden, 3, padding="same", activation="relu")(features)
    out = keras.layers.Conv2D(outputs, 1, activation=activation)(x)
    return keras.Model(features, out, name=name)


# ---- classic_model ----
def classic_model_no_rescaling(*, size=128, filters=(16, 32, 64), units=128):
    """Feeds the raw 0-255 pixels to the convolutions, leaving out the Rescaling(1 / 255) layer."""
    import keras
    from keras import layers
    image = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(image)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_linear_box(*, size=128, filters=(16, 32, 64), units=128):
    """Gives the box head no activation, so the rel_xyxy box is not squashed into [0, 1] by a sigmoid."""
    import keras
    from keras import layers
    image = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_max_pooling(*, size=128, filters=(16, 32, 64), units=128):
    """Uses MaxPooling2D after each convolution where the lesson asks for AveragePooling2D."""
    import keras
    from keras import layers
    image = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_fixed_size(*, size=128, filters=(16, 32, 64), units=128):
    """Hard-codes a 128x128 input and reshape, ignoring the ``size`` argument."""
    import keras
    from keras import layers
    image = keras.Input(shape=(128, 128), name="image")
    x = layers.Reshape((128, 128, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


def classic_model_no_hidden_dense(*, size=128, filters=(16, 32, 64), units=128):
    """Connects the heads straight to Flatten, leaving out the hidden Dense(units, relu) layer."""
    import keras
    from keras import layers
    image = keras.Input(shape=(size, size), name="image")
    x = layers.Reshape((size, size, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    presence = layers.Dense(1, activation="sigmoid", name="presence")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(image, {"presence": presence, "box": box})


# ---- boxes_from_cells ----
def boxes_from_cells_no_half_cell(distances, *, stride=8):
    """Puts each cell's centre at its top-left corner (j * stride, i * stride), forgetting the + 0.5."""
    d = np.asarray(distances, np.float32)
    cy = (np.arange(d.shape[-3]) * stride)[:, None]
    cx = (np.arange(d.shape[-2]) * stride)[None, :]
    return np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                     cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1).astype(np.float32)


def boxes_from_cells_rows_as_x(distances, *, stride=8):
    """Takes the cell's x centre from its row index and its y centre from its column index."""
    d = np.asarray(distances, np.float32)
    cx = ((np.arange(d.shape[-3]) + 0.5) * stride)[:, None]
    cy = ((np.arange(d.shape[-2]) + 0.5) * stride)[None, :]
    return np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                     cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1).astype(np.float32)


def boxes_from_cells_distances_as_pixels(distances, *, stride=8):
    """Adds the distances to the cell's centre as if they were pixels, never multiplying them by the stride."""
    d = np.asarray(distances, np.float32)
    cy = ((np.arange(d.shape[-3]) + 0.5) * stride)[:, None]
    cx = ((np.arange(d.shape[-2]) + 0.5) * stride)[None, :]
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], axis=-1).astype(np.float32)


def boxes_from_cells_clipped(distances, *, stride=8):
    """Clips the boxes to the grid's extent in pixels, though the lesson says no clipping."""
    d = np.asarray(distances, np.float32)
    h, w = d.shape[-3], d.shape[-2]
    cy = ((np.arange(h) + 0.5) * stride)[:, None]
    cx = ((np.arange(w) + 0.5) * stride)[None, :]
    out = np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                    cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1)
    return np.clip(out, 0, w * stride).astype(np.float32)


def boxes_from_cells_single_map_only(distances, *, stride=8):
    """Unpacks the shape as (H, W, 4), so it fails on distances with leading batch axes."""
    d = np.asarray(distances, np.float32)
    h, w, _ = d.shape
    cy = ((np.arange(h) + 0.5) * stride)[:, None]
    cx = ((np.arange(w) + 0.5) * stride)[None, :]
    return np.stack([cx - d[..., 0] * stride, cy - d[..., 1] * stride,
                     cx + d[..., 2] * stride, cy + d[..., 3] * stride], axis=-1).astype(np.float32)


# ==== Lesson 02-presence ====
# ---- union_box ----
def union_box_ignores_mask(boxes, mask):
    """Takes the minimum and maximum over every slot, so an unused slot's zeros pull x0 and y0 to 0."""
    b = np.asarray(boxes, np.float32)
    out = np.concatenate([b[..., :2].min(axis=1), b[..., 2:].max(axis=1)], axis=-1)
    return np.where(np.asarray(mask).any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_no_empty_fallback(boxes, mask):
    """Keeps unused slots out with infinities but never turns an empty canvas's result into zeros, so it stays inf and -inf."""
    m = np.asarray(mask, bool)[..., None]
    lo = np.where(m, boxes, np.inf)[..., :2].min(axis=1)
    hi = np.where(m, boxes, -np.inf)[..., 2:].max(axis=1)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)


def union_box_inf_for_max_too(boxes, mask):
    """Fills unused slots with +inf for the maximum as well as the minimum, so a canvas with an unused slot gets x1 = y1 = inf."""
    m = np.asarray(mask, bool)
    filled = np.where(m[..., None], boxes, np.inf)
    out = np.concatenate([filled[..., :2].min(axis=1), filled[..., 2:].max(axis=1)], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_intersection(boxes, mask):
    """Takes the largest x0, y0 and the smallest x1, y1, which is the boxes' overlap, not the box holding them all."""
    m = np.asarray(mask, bool)
    lo = np.where(m[..., None], boxes, -np.inf)[..., :2].max(axis=1)
    hi = np.where(m[..., None], boxes, np.inf)[..., 2:].min(axis=1)
    out = np.concatenate([lo, hi], axis=-1)
    return np.where(m.any(axis=1)[:, None], out, 0).astype(np.float32)


def union_box_float64(boxes, mask):
    """Fills a default float64 array, so the union boxes come back as float64 instead of float32."""
    m = np.asarray(mask, bool)
    out = np.zeros((len(m), 4))
    lo = np.where(m[..., None], boxes, np.inf)[..., :2].min(axis=1)
    hi = np.where(m[..., None], boxes, -np.inf)[..., 2:].max(axis=1)
    has = m.any(axis=1)
    out[has] = np.concatenate([lo, hi], axis=-1)[has]
    return out


# ---- heatmap_targets ----
def heatmap_targets_no_floor(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Centres the bump on the exact centre in cells, cy / stride, instead of on its cell floor(cy / stride), so no cell is exactly 1."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = (b[..., 1] + b[..., 3]) / 2 / stride
    col = (b[..., 0] + b[..., 2]) / 2 / stride
    i = np.arange(g)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1).astype(np.float32)


def heatmap_targets_ignores_mask(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Never zeroes the unused slots, so their placeholder boxes put a bump in the top-left cell."""
    b = np.asarray(boxes, np.float64)
    g = size // stride
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2))
    return heat.max(axis=1).astype(np.float32)


def heatmap_targets_sums_bumps(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Adds the slots' bumps instead of keeping the larger one, so where two digits' bumps meet the heatmap exceeds them (even 1)."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.sum(axis=1).astype(np.float32)


def heatmap_targets_row_from_x(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Takes the centre cell's row from the x centre and its column from the y centre, transposing every bump."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    col = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma ** 2)) * m[..., None, None]
    return heat.max(axis=1).astype(np.float32)


def heatmap_targets_two_sigma_squared(boxes, mask, *, size=128, stride=8, sigma=1.0):
    """Reads the Gaussian's 2 sigma^2 as (2 sigma)^2, so every bump is twice as wide as it should be."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    g = size // stride
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    i = np.arange(g)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    heat = np.exp(-d2 / (2 * sigma) ** 2) * m[..., None, None]
    return heat.max(axis=1).astype(np.float32)


# ---- box_targets ----
def box_targets_tie_to_later_slot(boxes, mask, *, size=128, stride=8, radius=1):
    """Loops over the slots and lets a slot take a cell when it is as near as or nearer than the owner so far, so ties go to the later slot."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n, k = m.shape
    g = size // stride
    i = np.arange(g)
    ctr = (i + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    best = np.full((n, g, g), np.inf)
    dist = np.zeros((n, g, g, 4))
    learns = np.zeros((n, g, g), bool)
    for s in range(k):
        row = np.floor((b[:, s, 1] + b[:, s, 3]) / 2 / stride)[:, None, None]
        col = np.floor((b[:, s, 0] + b[:, s, 2]) / 2 / stride)[:, None, None]
        dr, dc = i[None, :, None] - row, i[None, None, :] - col
        near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius) & m[:, s, None, None]
        d2 = dr ** 2 + dc ** 2
        take = near & (d2 <= best)
        best = np.where(take, d2, best)
        x0, y0, x1, y1 = (b[:, s, j, None, None] for j in range(4))
        ltrb = np.stack(np.broadcast_arrays(cx - x0, cy - y0, x1 - cx, y1 - cy), axis=-1) / stride
        dist = np.where(take[..., None], ltrb, dist)
        learns |= near
    return dist.astype(np.float32), learns


def box_targets_no_half_cell(boxes, mask, *, size=128, stride=8, radius=1):
    """Measures the distances from each cell's top-left corner (j * stride, i * stride) instead of its centre."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    dr = i[None, None, :, None] - row[..., None, None]
    dc = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius) & m[..., None, None]
    d2 = np.where(m[..., None, None], dr ** 2 + dc ** 2, np.inf)
    owner = np.argmin(d2, axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = i * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_pixels_not_cells(boxes, mask, *, size=128, stride=8, radius=1):
    """Leaves the distances in pixels, never dividing them by the stride to express them in cells."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    dr = i[None, None, :, None] - row[..., None, None]
    dc = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius) & m[..., None, None]
    d2 = np.where(m[..., None, None], dr ** 2 + dc ** 2, np.inf)
    owner = np.argmin(d2, axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (i + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1)
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_ignores_mask(boxes, mask, *, size=128, stride=8, radius=1):
    """Never uses the mask, so an unused slot's zero box claims the cells around the top-left corner and competes for ownership."""
    b = np.asarray(boxes, np.float64)
    n = len(b)
    g = size // stride
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    dr = i[None, None, :, None] - row[..., None, None]
    dc = i[None, None, None, :] - col[..., None, None]
    near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius)
    owner = np.argmin(dr ** 2 + dc ** 2, axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (i + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


def box_targets_round_block(boxes, mask, *, size=128, stride=8, radius=1):
    """Picks the learning cells by squared distance <= radius^2, a disc, instead of within radius rows and columns, so the block's corners learn nothing."""
    b, m = np.asarray(boxes, np.float64), np.asarray(mask, bool)
    n = len(b)
    g = size // stride
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / stride)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / stride)
    dr = i[None, None, :, None] - row[..., None, None]
    dc = i[None, None, None, :] - col[..., None, None]
    near = (dr ** 2 + dc ** 2 <= radius ** 2) & m[..., None, None]
    d2 = np.where(m[..., None, None], dr ** 2 + dc ** 2, np.inf)
    owner = np.argmin(d2, axis=1)
    learns = near.any(axis=1)
    own = np.take_along_axis(b, owner.reshape(n, -1, 1), axis=1).reshape(n, g, g, 4)
    ctr = (i + 0.5) * stride
    cx, cy = ctr[None, None, :], ctr[None, :, None]
    ltrb = np.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], axis=-1) / stride
    return np.where(learns[..., None], ltrb, 0).astype(np.float32), learns


# ---- find_peaks ----
def find_peaks_strictly_greater(heatmap, *, k=10, threshold=0.0):
    """Asks a peak to beat all eight neighbours strictly, so two equal neighbouring cells are neither of them a peak."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    neighbours = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)], axis=0)
    peak = (heat > neighbours) & (heat >= threshold)
    flat = np.where(peak, heat, -np.inf).reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(flat, order, axis=1)
    found = np.isfinite(top)
    rows = np.full((n, k), -1, np.int64)
    cols = np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    rows[:, :order.shape[1]] = np.where(found, order // w, -1)
    cols[:, :order.shape[1]] = np.where(found, order % w, -1)
    scores[:, :order.shape[1]] = np.where(found, top, 0)
    return rows, cols, scores


def find_peaks_roll_wraps_around(heatmap, *, k=10, threshold=0.0):
    """Shifts the maps with np.roll instead of padding, so cells on one edge are compared with cells on the opposite edge."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    local = np.max([np.roll(heat, (di, dj), axis=(1, 2)) for di in (-1, 0, 1) for dj in (-1, 0, 1)], axis=0)
    peak = (heat >= local) & (heat >= threshold)
    flat = np.where(peak, heat, -np.inf).reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(flat, order, axis=1)
    found = np.isfinite(top)
    rows = np.full((n, k), -1, np.int64)
    cols = np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    rows[:, :order.shape[1]] = np.where(found, order // w, -1)
    cols[:, :order.shape[1]] = np.where(found, order % w, -1)
    scores[:, :order.shape[1]] = np.where(found, top, 0)
    return rows, cols, scores


def find_peaks_threshold_strict(heatmap, *, k=10, threshold=0.0):
    """Keeps peaks scoring strictly above ``threshold`` instead of at least ``threshold``."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = (heat >= local) & (heat > threshold)
    flat = np.where(peak, heat, -np.inf).reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(flat, order, axis=1)
    found = np.isfinite(top)
    rows = np.full((n, k), -1, np.int64)
    cols = np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    rows[:, :order.shape[1]] = np.where(found, order // w, -1)
    cols[:, :order.shape[1]] = np.where(found, order % w, -1)
    scores[:, :order.shape[1]] = np.where(found, top, 0)
    return rows, cols, scores


def find_peaks_reversed_ties(heatmap, *, k=10, threshold=0.0):
    """Sorts ascending and reverses, so peaks of equal score come out in reverse row-major order."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = (heat >= local) & (heat >= threshold)
    flat = np.where(peak, heat, -np.inf).reshape(n, -1)
    order = np.argsort(flat, axis=1, kind="stable")[:, ::-1][:, :k]
    top = np.take_along_axis(flat, order, axis=1)
    found = np.isfinite(top)
    rows = np.full((n, k), -1, np.int64)
    cols = np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    rows[:, :order.shape[1]] = np.where(found, order // w, -1)
    cols[:, :order.shape[1]] = np.where(found, order % w, -1)
    scores[:, :order.shape[1]] = np.where(found, top, 0)
    return rows, cols, scores


def find_peaks_no_padding_marker(heatmap, *, k=10, threshold=0.0):
    """Zeroes the non-peaks and takes the k highest cells, so a map with fewer than k peaks returns ordinary cells instead of -1 padding."""
    heat = np.asarray(heatmap, np.float64)
    n, h, w = heat.shape
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    peak = (heat >= local) & (heat >= threshold)
    flat = np.where(peak, heat, 0.0).reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(flat, order, axis=1)
    return (order // w).astype(np.int64), (order % w).astype(np.int64), top.astype(np.float32)


# ---- masked_box_loss ----
def masked_box_loss_unmasked(y_true, y_pred):
    """Averages the absolute error over every entry, empty ones included, never using the mask."""
    from keras import ops
    return ops.mean(ops.abs(y_true[..., 1:] - y_pred))


def masked_box_loss_mean_over_all(y_true, y_pred):
    """Averages the masked errors over all entries instead of dividing their sum by the number of masked entries."""
    from keras import ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.mean(mask * err)


def masked_box_loss_no_floor(y_true, y_pred):
    """Divides by the number of masked entries without the floor of 1, so an all-empty batch gives NaN."""
    from keras import ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.sum(mask)


def masked_box_loss_mask_in_box(y_true, y_pred):
    """Slices the true box as y_true[..., :4], which includes the mask channel and drops the last box number."""
    from keras import ops
    mask = y_true[..., 0]
    err = ops.mean(ops.abs(y_true[..., :4] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.maximum(ops.sum(mask), 1.0)


def masked_box_loss_sum_of_coordinates(y_true, y_pred):
    """Sums the absolute errors of the four box numbers instead of averaging them, a loss four times too large."""
    from keras import ops
    mask = y_true[..., 0]
    err = ops.sum(ops.abs(y_true[..., 1:] - y_pred), axis=-1)
    return ops.sum(mask * err) / ops.maximum(ops.sum(mask), 1.0)


# ---- focal_loss ----
def focal_loss_no_clip(y_true, y_pred, alpha=2.0, beta=4.0):
    """Takes the logarithms of the raw probabilities without clipping them to [1e-6, 1 - 1e-6], so p = 0 or 1 gives inf or NaN."""
    from keras import ops
    p = y_pred
    pos = ops.cast(ops.equal(y_true, 1.0), "float32")
    pos_loss = -ops.power(1 - p, alpha) * ops.log(p) * pos
    neg_loss = -ops.power(1 - y_true, beta) * ops.power(p, alpha) * ops.log(1 - p) * (1 - pos)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_mean_over_cells(y_true, y_pred, alpha=2.0, beta=4.0):
    """Averages the loss over all cells instead of summing it and dividing by the number of centres."""
    from keras import ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), "float32")
    pos_loss = -ops.power(1 - p, alpha) * ops.log(p) * pos
    neg_loss = -ops.power(1 - y_true, beta) * ops.power(p, alpha) * ops.log(1 - p) * (1 - pos)
    return ops.mean(pos_loss + neg_loss)


def focal_loss_no_penalty_reduction(y_true, y_pred, alpha=2.0, beta=4.0):
    """Leaves out the (1 - y)^beta factor of the non-centre cells, so cells next to a centre are not forgiven."""
    from keras import ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), "float32")
    pos_loss = -ops.power(1 - p, alpha) * ops.log(p) * pos
    neg_loss = -ops.power(p, alpha) * ops.log(1 - p) * (1 - pos)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_hardcoded_exponents(y_true, y_pred, alpha=2.0, beta=4.0):
    """Writes the exponents as the literal defaults 2 and 4, ignoring the ``alpha`` and ``beta`` arguments."""
    from keras import ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), "float32")
    pos_loss = -ops.power(1 - p, 2.0) * ops.log(p) * pos
    neg_loss = -ops.power(1 - y_true, 4.0) * ops.power(p, 2.0) * ops.log(1 - p) * (1 - pos)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(pos), 1.0)


def focal_loss_divides_by_heat_sum(y_true, y_pred, alpha=2.0, beta=4.0):
    """Counts the centres as the sum of the target heatmap, bumps included, instead of the number of cells where y == 1."""
    from keras import ops
    p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    pos = ops.cast(ops.equal(y_true, 1.0), "float32")
    pos_loss = -ops.power(1 - p, alpha) * ops.log(p) * pos
    neg_loss = -ops.power(1 - y_true, beta) * ops.power(p, alpha) * ops.log(1 - p) * (1 - pos)
    return ops.sum(pos_loss + neg_loss) / ops.maximum(ops.sum(y_true), 1.0)


# ==== Lesson 03-multi-class ====
# ---- one_hot ----
def one_hot_eye_minus_one(labels, num_classes):
    """Indexes np.eye with the labels directly, so a label of -1 becomes the last class instead of a row of zeros."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def one_hot_none_as_class_zero(labels, num_classes):
    """Clips -1 up to 0 to make it a valid index, so "no digit" becomes class 0 instead of a row of zeros."""
    return np.eye(num_classes, dtype=np.float32)[np.maximum(np.asarray(labels), 0)]


def one_hot_float64(labels, num_classes):
    """Casts the comparison to Python float, so the rows are float64 instead of float32."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(num_classes)).astype(float)


def one_hot_flattens_labels(labels, num_classes):
    """Flattens the labels into one list of rows and never reshapes back, so labels of shape (N, K) give (N * K, classes)."""
    labels = np.asarray(labels).ravel()
    out = np.zeros((labels.size, num_classes), np.float32)
    used = labels >= 0
    out[np.flatnonzero(used), labels[used]] = 1
    return out


def one_hot_ten_classes(labels, num_classes):
    """Hard-codes ten classes, ignoring the ``num_classes`` argument."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(10)).astype(np.float32)


# ---- nms ----
def nms_drops_at_threshold(boxes, scores, iou_threshold=0.5):
    """Drops a box whose IoU with a kept box equals the threshold, using >= where only an IoU above it means the same object."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] >= iou_threshold
    return np.array(keep, dtype=np.int64)


def nms_dropped_boxes_suppress(boxes, scores, iou_threshold=0.5):
    """Drops a box that overlaps any better-scored box, dropped ones included, though a dropped box should drop nothing."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(b, b)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    for pos, i in enumerate(order):
        if not np.any(ious[i, order[:pos]] > iou_threshold):
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def nms_index_order(boxes, scores, iou_threshold=0.5):
    """Marks the kept boxes in a boolean array and returns np.flatnonzero of it, so they come in index order, not by descending score."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area[:, None] + area[None, :] - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    kept = np.zeros(len(b), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not np.any(ious[i, kept] > iou_threshold):
            kept[i] = True
    return np.flatnonzero(kept).astype(np.int64)


def nms_reversed_ties(boxes, scores, iou_threshold=0.5):
    """Orders the boxes with np.argsort(scores)[::-1], so boxes of equal score are taken last-first instead of in the given order."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(np.asarray(scores))[::-1]:
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep, dtype=np.int64)


def nms_empty_float(boxes, scores, iou_threshold=0.5):
    """Returns np.array(keep) without a dtype, so no boxes at all give an empty float64 array instead of int64."""
    from mnistloc.boxes import pairwise_iou
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ious = pairwise_iou(b, b)
    dropped = np.zeros(len(b), bool)
    keep = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not dropped[i]:
            keep.append(i)
            dropped |= ious[i] > iou_threshold
    return np.array(keep)


# ---- iou_loss ----
def iou_loss_unclamped_intersection(y_true, y_pred):
    """Does not clamp the intersection's width and height at 0, so boxes apart get a negative (or falsely positive) overlap."""
    from keras import ops
    w = y_true[..., 0]
    l, t, r, b = y_true[..., 1], y_true[..., 2], y_true[..., 3], y_true[..., 4]
    pl, pt, pr, pb = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    inter = (ops.minimum(l, pl) + ops.minimum(r, pr)) * (ops.minimum(t, pt) + ops.minimum(b, pb))
    union = (l + r) * (t + b) + ops.relu(pl + pr) * ops.relu(pt + pb) - inter
    iou = inter / ops.maximum(union, 1e-6)
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_no_union_guard(y_true, y_pred):
    """Divides the intersection by the union without guarding it with ops.maximum(union, 1e-6), so cells where both boxes are empty give NaN."""
    from keras import ops
    w = y_true[..., 0]
    l, t, r, b = y_true[..., 1], y_true[..., 2], y_true[..., 3], y_true[..., 4]
    pl, pt, pr, pb = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    inter = ops.relu(ops.minimum(l, pl) + ops.minimum(r, pr)) * ops.relu(ops.minimum(t, pt) + ops.minimum(b, pb))
    union = (l + r) * (t + b) + ops.relu(pl + pr) * ops.relu(pt + pb) - inter
    iou = inter / union
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_unweighted_mean(y_true, y_pred):
    """Averages 1 - IoU over every cell, ignoring the weights in y_true[..., 0]."""
    from keras import ops
    l, t, r, b = y_true[..., 1], y_true[..., 2], y_true[..., 3], y_true[..., 4]
    pl, pt, pr, pb = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    inter = ops.relu(ops.minimum(l, pl) + ops.minimum(r, pr)) * ops.relu(ops.minimum(t, pt) + ops.minimum(b, pb))
    union = (l + r) * (t + b) + ops.relu(pl + pr) * ops.relu(pt + pb) - inter
    iou = inter / ops.maximum(union, 1e-6)
    return ops.mean(1 - iou)


def iou_loss_binary_weights(y_true, y_pred):
    """Turns the weights into a 0/1 mask (weight > 0), so fractional weights count as full ones."""
    from keras import ops
    w = ops.cast(y_true[..., 0] > 0, "float32")
    l, t, r, b = y_true[..., 1], y_true[..., 2], y_true[..., 3], y_true[..., 4]
    pl, pt, pr, pb = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    inter = ops.relu(ops.minimum(l, pl) + ops.minimum(r, pr)) * ops.relu(ops.minimum(t, pt) + ops.minimum(b, pb))
    union = (l + r) * (t + b) + ops.relu(pl + pr) * ops.relu(pt + pb) - inter
    iou = inter / ops.maximum(union, 1e-6)
    return ops.sum(w * (1 - iou)) / ops.maximum(ops.sum(w), 1.0)


def iou_loss_negative_log(y_true, y_pred):
    """Uses UnitBox's -log(IoU) per cell instead of the lesson's 1 - IoU."""
    from keras import ops
    w = y_true[..., 0]
    l, t, r, b = y_true[..., 1], y_true[..., 2], y_true[..., 3], y_true[..., 4]
    pl, pt, pr, pb = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    inter = ops.relu(ops.minimum(l, pl) + ops.minimum(r, pr)) * ops.relu(ops.minimum(t, pt) + ops.minimum(b, pb))
    union = (l + r) * (t + b) + ops.relu(pl + pr) * ops.relu(pt + pb) - inter
    iou = inter / ops.maximum(union, 1e-6)
    return ops.sum(w * -ops.log(ops.maximum(iou, 1e-6))) / ops.maximum(ops.sum(w), 1.0)


# ==== Lesson 04-multiple-digits ====
# ---- order_left_to_right ----
def order_left_to_right_ignores_mask(boxes, classes, mask):
    """Sorts by x0 and y0 without sending the unused slots to the end, so their zero boxes come first."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask)
    order = np.lexsort((b[..., 1], b[..., 0]), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_no_tie_break(boxes, classes, mask):
    """Sorts by x0 alone with a stable sort, so digits with equal x0 keep their slot order instead of the smaller y0 first."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    order = np.argsort(np.where(m, b[..., 0], np.inf), axis=1, kind="stable")
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_only_boxes(boxes, classes, mask):
    """Reorders the boxes but returns the classes and the mask unchanged, so they no longer move with their boxes."""
    b, m = np.asarray(boxes), np.asarray(mask, bool)
    order = np.lexsort((np.where(m, b[..., 1], np.inf), np.where(m, b[..., 0], np.inf)), axis=-1)
    return np.take_along_axis(b, order[..., None], axis=1), classes, mask


def order_left_to_right_lexsort_keys_swapped(boxes, classes, mask):
    """Passes the keys to np.lexsort as (x0, y0), but lexsort sorts by its last key first, so the order is top to bottom."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    order = np.lexsort((np.where(m, b[..., 0], np.inf), np.where(m, b[..., 1], np.inf)), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


def order_left_to_right_by_centre(boxes, classes, mask):
    """Sorts by the box's centre (x0 + x1) / 2 instead of its left edge x0."""
    b, c, m = np.asarray(boxes), np.asarray(classes), np.asarray(mask, bool)
    centre = (b[..., 0] + b[..., 2]) / 2
    order = np.lexsort((np.where(m, b[..., 1], np.inf), np.where(m, centre, np.inf)), axis=-1)
    return (np.take_along_axis(b, order[..., None], axis=1), np.take_along_axis(c, order, axis=1),
            np.take_along_axis(m, order, axis=1))


# ---- average_precision ----
def average_precision_no_envelope(scores, matched, num_true):
    """Samples the raw precision at the first rank reaching each recall instead of the best precision at that recall or beyond."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    sampled = np.where(idx < len(recall), precision[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


def average_precision_unranked(scores, matched, num_true):
    """Walks the detections in the given order without ranking them by descending score."""
    m = np.asarray(matched, bool)
    if len(m) == 0:
        return 0.0
    tp = np.cumsum(m)
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


def average_precision_recall_of_matches(scores, matched, num_true):
    """Divides the true positives by the number of matched detections instead of ``num_true``, so missed true boxes never lower the recall."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / max(m.sum(), 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


def average_precision_unreached_recall_not_zero(scores, matched, num_true):
    """Clamps the index of a recall never reached to the last rank and takes its precision instead of 0."""
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


def average_precision_hundred_points(scores, matched, num_true):
    """Samples recalls with np.arange(0, 1, 0.01), 100 points that leave out recall 1, instead of COCO's 101."""
    s, m = np.asarray(scores, np.float64), np.asarray(matched, bool)
    if len(s) == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(m[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / num_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.arange(0, 1, 0.01), side="left")
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


# ---- match_detections ----
def match_detections_given_order(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Matches the detections in the given order instead of by descending score."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(pb), -1, np.int64)
    if len(pb) == 0 or len(tb) == 0:
        return out
    ious = pairwise_iou(pb, tb)
    taken = np.zeros(len(tb), bool)
    for d in range(len(pb)):
        cand = np.where(taken, -1.0, ious[d])
        g = len(tb) - 1 - int(np.argmax(cand[::-1]))
        if cand[g] >= iou_threshold:
            out[d], taken[g] = g, True
    return out


def match_detections_reuses_true_boxes(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Never marks a true box as taken, so a second detection of the same digit matches it again instead of being a false positive."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(pb), -1, np.int64)
    if len(pb) == 0 or len(tb) == 0:
        return out
    ious = pairwise_iou(pb, tb)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        g = len(tb) - 1 - int(np.argmax(ious[d][::-1]))
        if ious[d, g] >= iou_threshold:
            out[d] = g
    return out


def match_detections_no_fallback_to_free(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Picks the best-overlapping true box among all of them and gives up when it is taken, instead of taking the best free one."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(pb), -1, np.int64)
    if len(pb) == 0 or len(tb) == 0:
        return out
    ious = pairwise_iou(pb, tb)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        g = len(tb) - 1 - int(np.argmax(ious[d][::-1]))
        if not taken[g] and ious[d, g] >= iou_threshold:
            out[d], taken[g] = g, True
    return out


def match_detections_strict_threshold(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Requires an IoU strictly above the threshold, so an IoU exactly at it does not match."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(pb), -1, np.int64)
    if len(pb) == 0 or len(tb) == 0:
        return out
    ious = pairwise_iou(pb, tb)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1.0, ious[d])
        g = len(tb) - 1 - int(np.argmax(cand[::-1]))
        if cand[g] > iou_threshold:
            out[d], taken[g] = g, True
    return out


def match_detections_earlier_on_ties(pred_boxes, scores, true_boxes, iou_threshold=0.5):
    """Takes np.argmax's first true box on equal IoUs instead of the later one, as COCO does."""
    from mnistloc.boxes import pairwise_iou
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    tb = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(pb), -1, np.int64)
    if len(pb) == 0 or len(tb) == 0:
        return out
    ious = pairwise_iou(pb, tb)
    taken = np.zeros(len(tb), bool)
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1.0, ious[d])
        g = int(np.argmax(cand))
        if cand[g] >= iou_threshold:
            out[d], taken[g] = g, True
    return out


# ==== Lesson 05-many-digits ====
# ---- choose_nms_threshold ----
def choose_nms_threshold_ignores_scores(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts every peak NMS kept, forgetting that a peak must also score at least ``min_score``."""
    counted = np.asarray(keeps, bool).sum(axis=-1)
    accuracy = (counted == np.asarray(counts)[None, :]).mean(axis=-1)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy.astype(np.float64)


def choose_nms_threshold_strict_min_score(keeps, scores, counts, thresholds, min_score=0.5):
    """Counts the kept peaks scoring strictly above ``min_score`` instead of at least ``min_score``."""
    counted = (np.asarray(keeps, bool) & (np.asarray(scores) > min_score)[None]).sum(axis=-1)
    accuracy = (counted == np.asarray(counts)[None, :]).mean(axis=-1)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy.astype(np.float64)


def choose_nms_threshold_last_of_equals(keeps, scores, counts, thresholds, min_score=0.5):
    """Keeps the last of the thresholds with the best accuracy instead of the first."""
    counted = (np.asarray(keeps, bool) & (np.asarray(scores) >= min_score)[None]).sum(axis=-1)
    accuracy = (counted == np.asarray(counts)[None, :]).mean(axis=-1)
    best = len(accuracy) - 1 - int(np.argmax(accuracy[::-1]))
    return float(np.asarray(thresholds)[best]), accuracy.astype(np.float64)


def choose_nms_threshold_returns_index(keeps, scores, counts, thresholds, min_score=0.5):
    """Returns the index of the best threshold from np.argmax instead of the threshold itself."""
    counted = (np.asarray(keeps, bool) & (np.asarray(scores) >= min_score)[None]).sum(axis=-1)
    accuracy = (counted == np.asarray(counts)[None, :]).mean(axis=-1)
    return int(np.argmax(accuracy)), accuracy.astype(np.float64)


def choose_nms_threshold_counts_not_share(keeps, scores, counts, thresholds, min_score=0.5):
    """Sums the canvases counted right instead of averaging, so the accuracy is a number of canvases, not a share."""
    counted = (np.asarray(keeps, bool) & (np.asarray(scores) >= min_score)[None]).sum(axis=-1)
    accuracy = (counted == np.asarray(counts)[None, :]).sum(axis=-1)
    return float(np.asarray(thresholds)[np.argmax(accuracy)]), accuracy


# ---- bump_sigmas ----
def bump_sigmas_clip_after_product(boxes, stride=8):
    """Clips the area w h at 0 instead of each side, so an inverted box with both sides negative gets a positive size."""
    b = np.asarray(boxes, np.float32)
    side = np.sqrt(np.maximum((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 0))
    return np.maximum(0.5, 0.4 * side / stride).astype(np.float32)


def bump_sigmas_min_instead_of_max(boxes, stride=8):
    """Takes np.minimum(0.5, ...), which caps the width at half a cell instead of flooring it there."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.minimum(0.5, 0.4 * np.sqrt(w * h) / stride).astype(np.float32)


def bump_sigmas_mean_of_sides(boxes, stride=8):
    """Measures the digit's size as the mean of its sides (w + h) / 2 instead of sqrt(w h)."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * (w + h) / 2 / stride).astype(np.float32)


def bump_sigmas_hardcoded_stride(boxes, stride=8):
    """Divides by 8 whatever the ``stride`` argument says."""
    b = np.asarray(boxes, np.float32)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * np.sqrt(w * h) / 8).astype(np.float32)


def bump_sigmas_float64(boxes, stride=8):
    """Computes in float64 and never casts back, so the widths are float64 instead of float32."""
    b = np.asarray(boxes, dtype=float)
    w = np.clip(b[..., 2] - b[..., 0], 0, None)
    h = np.clip(b[..., 3] - b[..., 1], 0, None)
    return np.maximum(0.5, 0.4 * np.sqrt(w * h) / stride)


# ---- detector_targets ----
def detector_targets_power_one_over_sigma(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Raises the unit bump to the power 1 / s instead of 1 / s**2, so the bumps have the wrong widths."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (1.0 / sig[:, s, None, None]))
    dist, learns = box_fn(b, m, size=size, stride=8)
    dist, learns = np.asarray(dist), np.asarray(learns, bool)
    weight = np.where(learns, heat, 0.0)[..., None]
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    owner = np.argmin(np.where(m[..., None, None], d2, np.inf), axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & learns[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, onehot], axis=-1).astype(np.float32)}


def detector_targets_one_width(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Draws every bump with heatmap_fn's one width sigma = 1, never using the widths ``sigma_fn`` gives."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    heat = np.asarray(heatmap_fn(b, m, size=size, stride=8, sigma=1.0), np.float64)
    dist, learns = box_fn(b, m, size=size, stride=8)
    dist, learns = np.asarray(dist), np.asarray(learns, bool)
    weight = np.where(learns, heat, 0.0)[..., None]
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    owner = np.argmin(np.where(m[..., None, None], d2, np.inf), axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & learns[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, onehot], axis=-1).astype(np.float32)}


def detector_targets_binary_weight(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Weighs every cell that learns a box by 1 instead of by the presence heat there."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = np.maximum(heat, unit ** (1.0 / sig[:, s, None, None] ** 2))
    dist, learns = box_fn(b, m, size=size, stride=8)
    dist, learns = np.asarray(dist), np.asarray(learns, bool)
    weight = learns.astype(np.float64)[..., None]
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    owner = np.argmin(np.where(m[..., None, None], d2, np.inf), axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & learns[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, onehot], axis=-1).astype(np.float32)}


def detector_targets_bumps_summed(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Adds the slots' bumps together instead of keeping the larger one where two meet."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    heat = np.zeros((n, g, g))
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        heat = heat + unit ** (1.0 / sig[:, s, None, None] ** 2)
    dist, learns = box_fn(b, m, size=size, stride=8)
    dist, learns = np.asarray(dist), np.asarray(learns, bool)
    weight = np.where(learns, heat, 0.0)[..., None]
    i = np.arange(g)
    row = np.floor((b[..., 1] + b[..., 3]) / 2 / 8)
    col = np.floor((b[..., 0] + b[..., 2]) / 2 / 8)
    d2 = (i[:, None] - row[..., None, None]) ** 2 + (i[None, :] - col[..., None, None]) ** 2
    owner = np.argmin(np.where(m[..., None, None], d2, np.inf), axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & learns[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, onehot], axis=-1).astype(np.float32)}


def detector_targets_class_by_largest_bump(boxes, classes, mask, heatmap_fn, box_fn, sigma_fn, *, size=128):
    """Gives each cell the class of the slot whose bump is largest there instead of the slot whose centre cell is nearest (box_targets' owner)."""
    b, c, m = np.asarray(boxes, np.float64), np.asarray(classes), np.asarray(mask, bool)
    n, k = m.shape
    g = size // 8
    sig = np.asarray(sigma_fn(b), np.float64)
    bumps = []
    for s in range(k):
        unit = np.asarray(heatmap_fn(b[:, s:s + 1], m[:, s:s + 1], size=size, stride=8, sigma=1.0), np.float64)
        bumps.append(unit ** (1.0 / sig[:, s, None, None] ** 2))
    bumps = np.stack(bumps, axis=1)
    heat = bumps.max(axis=1)
    dist, learns = box_fn(b, m, size=size, stride=8)
    dist, learns = np.asarray(dist), np.asarray(learns, bool)
    weight = np.where(learns, heat, 0.0)[..., None]
    owner = np.argmax(bumps, axis=1)
    cls = np.take_along_axis(np.where(m, c, 0), owner.reshape(n, -1), axis=1).reshape(n, g, g)
    onehot = (cls[..., None] == np.arange(10)) & learns[..., None]
    return {"presence": heat[..., None].astype(np.float32),
            "box": np.concatenate([weight, dist], axis=-1).astype(np.float32),
            "class": np.concatenate([weight, onehot], axis=-1).astype(np.float32)}


# ---- detect_digits ----
def detect_digits_no_clip(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Reads the boxes at the peaks but never clips them to the canvas, [0, G * 8]."""
    heat = np.asarray(outputs["presence"])[..., 0]
    rows, cols, peak_scores = (np.asarray(a) for a in peaks_fn(heat, k=k))
    cells = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak_scores[i][ok].astype(np.float32)
        bx = cells[i, r, c]
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels = np.argmax(p, axis=-1)
        score = s[keep] * np.max(p, axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_presence_only_score(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Scores each detection by its presence alone instead of presence x the probability of its class."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak_scores = (np.asarray(a) for a in peaks_fn(heat, k=k))
    cells = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak_scores[i][ok].astype(np.float32)
        bx = np.clip(cells[i, r, c], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        labels = np.argmax(probs[i, r[keep], c[keep]], axis=-1)
        score = s[keep]
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_fixed_iou_threshold(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Calls NMS with the literal 0.5, ignoring the ``iou_threshold`` argument."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak_scores = (np.asarray(a) for a in peaks_fn(heat, k=k))
    cells = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak_scores[i][ok].astype(np.float32)
        bx = np.clip(cells[i, r, c], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, 0.5), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels = np.argmax(p, axis=-1)
        score = s[keep] * np.max(p, axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_not_resorted(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Keeps NMS's order, by presence, instead of sorting the detections again by their final presence x class score."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak_scores = (np.asarray(a) for a in peaks_fn(heat, k=k))
    cells = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak_scores[i][ok].astype(np.float32)
        bx = np.clip(cells[i, r, c], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, r[keep], c[keep]]
        labels = np.argmax(p, axis=-1)
        score = s[keep] * np.max(p, axis=-1)
        sel = score >= min_score
        all_boxes.append(bx[keep][sel].astype(np.float32))
        all_labels.append(labels[sel].astype(np.int64))
        all_scores.append(score[sel].astype(np.float32))
    return all_boxes, all_labels, all_scores


def detect_digits_rows_cols_swapped(outputs, peaks_fn, cells_fn, nms_fn, *, k=20, iou_threshold=0.5, min_score=0.01):
    """Reads the boxes and classes at [column, row] instead of [row, column] of each peak."""
    heat = np.asarray(outputs["presence"])[..., 0]
    g = heat.shape[1]
    rows, cols, peak_scores = (np.asarray(a) for a in peaks_fn(heat, k=k))
    cells = np.asarray(cells_fn(np.asarray(outputs["box"])))
    probs = np.asarray(outputs["class"])
    all_boxes, all_labels, all_scores = [], [], []
    for i in range(len(heat)):
        ok = rows[i] >= 0
        r, c, s = rows[i][ok], cols[i][ok], peak_scores[i][ok].astype(np.float32)
        bx = np.clip(cells[i, c, r], 0, g * 8)
        keep = np.asarray(nms_fn(bx, s, iou_threshold), np.int64)
        p = probs[i, c[keep], r[keep]]
        labels = np.argmax(p, axis=-1)
        score = s[keep] * np.max(p, axis=-1)
        sel = score >= min_score
        bx, labels, score = bx[keep][sel], labels[sel], score[sel]
        order = np.argsort(-score, kind="stable")
        all_boxes.append(bx[order].astype(np.float32))
        all_labels.append(labels[order].astype(np.int64))
        all_scores.append(score[order].astype(np.float32))
    return all_boxes, all_labels, all_scores


MISTAKES = [
    # lesson 01
    ("place_digit", place_digit_mutates_canvas, ["copy", "unchanged", "in place", "new canvas"]),
    ("place_digit", place_digit_swapped_xy, ["row", "column", "image[y, x]", "swapped"]),
    ("place_digit", place_digit_adds_pixels, ["replace", "add", "overflow", "wrap"]),
    ("place_digit", place_digit_fresh_black_canvas, ["canvas's pixels", "keep", "existing", "zeros"]),
    ("place_digit", place_digit_float_canvas, ["uint8", "dtype", "float"]),
    ("tight_box", tight_box_inclusive_max, ["exclusive", "+ 1", "last ink column", "off by one"]),
    ("tight_box", tight_box_swapped_axes, ["axis", "rows", "columns", "swapped"]),
    ("tight_box", tight_box_integer_dtype, ["float32", "dtype", "integer"]),
    ("tight_box", tight_box_first_ink_pixel, ["first ink column", "smallest", "min", "row-major"]),
    ("tight_box", tight_box_argmax_no_empty_guard, ["no ink", "empty", "[0, 0, 0, 0]", "argmax"]),
    ("iou", iou_no_clamp, ["clamp", "negative", "do not overlap", "at 0"]),
    ("iou", iou_clamps_area, ["clamp", "width and height", "each side", "both negative"]),
    ("iou", iou_no_empty_guard, ["nan", "empty", "division", "guard"]),
    ("iou", iou_pixel_plus_one, ["+1", "exclusive", "inclusive", "area"]),
    ("iou", iou_union_is_sum_of_areas, ["union", "subtract", "intersection", "counted twice"]),
    ("build_head", build_head_no_hidden_relu, ["relu", "hidden", "activation", "linear"]),
    ("build_head", build_head_valid_padding, ["padding", "same", "grid", "shrink"]),
    ("build_head", build_head_ignores_activation, ["activation", "last layer", "sigmoid", "softmax"]),
    ("build_head", build_head_kernel_sizes_swapped, ["3x3", "1x1", "kernel", "hidden"]),
    ("build_head", build_head_fixed_grid, ["none", "any grid size", "input shape", "16"]),
    ("classic_model", classic_model_no_rescaling, ["rescaling", "1 / 255", "scale", "pixels"]),
    ("classic_model", classic_model_linear_box, ["sigmoid", "box", "activation", "[0, 1]"]),
    ("classic_model", classic_model_max_pooling, ["averagepooling2d", "maxpooling", "pooling"]),
    ("classic_model", classic_model_fixed_size, ["size", "128", "input shape", "hard-coded"]),
    ("classic_model", classic_model_no_hidden_dense, ["hidden", "dense", "units", "flatten"]),
    ("boxes_from_cells", boxes_from_cells_no_half_cell, ["+ 0.5", "centre", "corner", "half a cell"]),
    ("boxes_from_cells", boxes_from_cells_rows_as_x, ["row", "column", "swapped", "x is the column"]),
    ("boxes_from_cells", boxes_from_cells_distances_as_pixels, ["stride", "cells", "pixels", "multiply"]),
    ("boxes_from_cells", boxes_from_cells_clipped, ["clip", "no clipping", "outside"]),
    ("boxes_from_cells", boxes_from_cells_single_map_only, ["leading axes", "batch", "shape", "..."]),
    # lesson 02
    ("union_box", union_box_ignores_mask, ["mask", "unused slots", "zeros", "minimum"]),
    ("union_box", union_box_no_empty_fallback, ["empty", "no digit", "inf", "zeros"]),
    ("union_box", union_box_inf_for_max_too, ["-inf", "maximum", "unused slot", "inf"]),
    ("union_box", union_box_intersection, ["minimum", "maximum", "swapped", "smallest box holding"]),
    ("union_box", union_box_float64, ["float32", "dtype", "float64"]),
    ("heatmap_targets", heatmap_targets_no_floor, ["floor", "centre cell", "integer", "exactly 1"]),
    ("heatmap_targets", heatmap_targets_ignores_mask, ["mask", "unused slots", "0", "empty"]),
    ("heatmap_targets", heatmap_targets_sums_bumps, ["max", "sum", "larger bump", "overlap"]),
    ("heatmap_targets", heatmap_targets_row_from_x, ["row", "column", "swapped", "cy"]),
    ("heatmap_targets", heatmap_targets_two_sigma_squared, ["2 sigma^2", "sigma", "squared", "width"]),
    ("box_targets", box_targets_tie_to_later_slot, ["tie", "earlier slot", "argmin", "nearest"]),
    ("box_targets", box_targets_no_half_cell, ["+ 0.5", "cell's centre", "corner", "half"]),
    ("box_targets", box_targets_pixels_not_cells, ["stride", "in cells", "pixels", "divide"]),
    ("box_targets", box_targets_ignores_mask, ["mask", "unused slots", "inf", "zeros"]),
    ("box_targets", box_targets_round_block, ["radius", "rows and columns", "3x3 block", "corners"]),
    ("find_peaks", find_peaks_strictly_greater, ["equal neighbours", "both peaks", ">=", "plateau"]),
    ("find_peaks", find_peaks_roll_wraps_around, ["edge", "off the grid", "pad", "wrap"]),
    ("find_peaks", find_peaks_threshold_strict, ["threshold", "at least", ">=", "equal"]),
    ("find_peaks", find_peaks_reversed_ties, ["tie", "row-major", "stable", "equal scores"]),
    ("find_peaks", find_peaks_no_padding_marker, ["-1", "fewer than k", "padding", "pad"]),
    ("masked_box_loss", masked_box_loss_unmasked, ["mask", "empty", "every entry", "placeholder"]),
    ("masked_box_loss", masked_box_loss_mean_over_all, ["number of masked entries", "divide", "mean", "sum"]),
    ("masked_box_loss", masked_box_loss_no_floor, ["nan", "at least 1", "maximum", "empty batch"]),
    ("masked_box_loss", masked_box_loss_mask_in_box, ["first channel", "1:", "slice", "mask channel"]),
    ("masked_box_loss", masked_box_loss_sum_of_coordinates, ["mean", "four", "sum", "last axis"]),
    ("focal_loss", focal_loss_no_clip, ["clip", "1e-6", "log", "nan"]),
    ("focal_loss", focal_loss_mean_over_cells, ["number of centres", "sum", "mean", "divide"]),
    ("focal_loss", focal_loss_no_penalty_reduction, ["(1 - y)^beta", "beta", "penalty", "near a centre"]),
    ("focal_loss", focal_loss_hardcoded_exponents, ["alpha", "beta", "argument", "hard-coded"]),
    ("focal_loss", focal_loss_divides_by_heat_sum, ["number of centres", "y == 1", "count", "sum of the heatmap"]),
    # lesson 03
    ("one_hot", one_hot_eye_minus_one, ["-1", "last class", "row of zeros", "np.eye"]),
    ("one_hot", one_hot_none_as_class_zero, ["-1", "class 0", "row of zeros", "none"]),
    ("one_hot", one_hot_float64, ["float32", "dtype", "float64"]),
    ("one_hot", one_hot_flattens_labels, ["shape", "any shape", "labels.shape", "reshape"]),
    ("one_hot", one_hot_ten_classes, ["num_classes", "10", "hard-coded", "argument"]),
    ("nms", nms_drops_at_threshold, ["above", ">", "threshold", "equal"]),
    ("nms", nms_dropped_boxes_suppress, ["dropped", "kept", "drops nothing", "already kept"]),
    ("nms", nms_index_order, ["descending score", "order", "index order", "sorted"]),
    ("nms", nms_reversed_ties, ["tie", "equal scores", "stable", "given order"]),
    ("nms", nms_empty_float, ["empty", "int64", "dtype", "no boxes"]),
    ("iou_loss", iou_loss_unclamped_intersection, ["intersection", "at least 0", "relu", "clamp"]),
    ("iou_loss", iou_loss_no_union_guard, ["1e-6", "guard", "nan", "division"]),
    ("iou_loss", iou_loss_unweighted_mean, ["weight", "mask", "mean", "sum of the weights"]),
    ("iou_loss", iou_loss_binary_weights, ["weight", "fractional", "weighted", "0/1"]),
    ("iou_loss", iou_loss_negative_log, ["1 - iou", "log", "-log"]),
    # lesson 04
    ("order_left_to_right", order_left_to_right_ignores_mask, ["unused slots last", "mask", "inf", "unused"]),
    ("order_left_to_right", order_left_to_right_no_tie_break, ["tie", "y0", "equal x0", "smaller y0"]),
    ("order_left_to_right", order_left_to_right_only_boxes, ["classes", "mask", "move together", "reorder"]),
    ("order_left_to_right", order_left_to_right_lexsort_keys_swapped, ["lexsort", "last key", "primary", "y0"]),
    ("order_left_to_right", order_left_to_right_by_centre, ["x0", "left edge", "centre", "smallest x0"]),
    ("average_precision", average_precision_no_envelope, ["envelope", "maximum.accumulate", "best precision", "beyond"]),
    ("average_precision", average_precision_unranked, ["rank", "descending score", "sort", "argsort"]),
    ("average_precision", average_precision_recall_of_matches, ["num_true", "recall", "true boxes", "denominator"]),
    ("average_precision", average_precision_unreached_recall_not_zero, ["never reached", "recall", "0 for", "not reached"]),
    ("average_precision", average_precision_hundred_points, ["101", "recall 1", "linspace", "points"]),
    ("match_detections", match_detections_given_order, ["descending score", "best score first", "order", "sort"]),
    ("match_detections", match_detections_reuses_true_boxes, ["taken", "at most once", "false positive", "free"]),
    ("match_detections", match_detections_no_fallback_to_free, ["free", "taken", "next best", "best free"]),
    ("match_detections", match_detections_strict_threshold, [">=", "at least", "threshold", "equal"]),
    ("match_detections", match_detections_earlier_on_ties, ["equal ious", "later", "tie", "last"]),
    # lesson 05
    ("choose_nms_threshold", choose_nms_threshold_ignores_scores, ["min_score", "score", "kept", "at least"]),
    ("choose_nms_threshold", choose_nms_threshold_strict_min_score, [">=", "at least", "min_score", "equal"]),
    ("choose_nms_threshold", choose_nms_threshold_last_of_equals, ["first of equals", "tie", "first", "argmax"]),
    ("choose_nms_threshold", choose_nms_threshold_returns_index, ["threshold", "index", "thresholds[", "value"]),
    ("choose_nms_threshold", choose_nms_threshold_counts_not_share, ["share", "mean", "fraction", "float64"]),
    ("bump_sigmas", bump_sigmas_clip_after_product, ["each side", "clip", "inverted", "first"]),
    ("bump_sigmas", bump_sigmas_min_instead_of_max, ["max", "floor", "0.5", "minimum"]),
    ("bump_sigmas", bump_sigmas_mean_of_sides, ["sqrt(w h)", "area", "square", "mean of sides"]),
    ("bump_sigmas", bump_sigmas_hardcoded_stride, ["stride", "8", "argument", "hard-coded"]),
    ("bump_sigmas", bump_sigmas_float64, ["float32", "dtype", "float64"]),
    ("detector_targets", detector_targets_power_one_over_sigma, ["1 / s**2", "power", "squared", "sigma"]),
    ("detector_targets", detector_targets_one_width, ["sigma_fn", "bump_sigmas", "one width", "per slot"]),
    ("detector_targets", detector_targets_binary_weight, ["weight", "presence heat", "heat", "bump"]),
    ("detector_targets", detector_targets_bumps_summed, ["larger bump", "max", "sum", "where two meet"]),
    ("detector_targets", detector_targets_class_by_largest_bump, ["nearest", "centre cell", "owner", "box_targets"]),
    ("detect_digits", detect_digits_no_clip, ["clip", "canvas", "[0, g * 8]", "outside"]),
    ("detect_digits", detect_digits_presence_only_score, ["presence x", "class probability", "score", "multiply"]),
    ("detect_digits", detect_digits_fixed_iou_threshold, ["iou_threshold", "argument", "0.5", "hard-coded"]),
    ("detect_digits", detect_digits_not_resorted, ["best score first", "sort", "order", "descending"]),
    ("detect_digits", detect_digits_rows_cols_swapped, ["row", "column", "swapped", "peak"]),
]
