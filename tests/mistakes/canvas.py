"""Lessons 1-4's canvas and label exercises, got wrong the way a student would."""
import numpy as np


def place_no_copy(canvas, digit, x, y):
    canvas[y:y + 28, x:x + 28] = digit  # "paste the digit": writes into the caller's canvas
    return canvas


def place_xy(canvas, digit, x, y):
    out = canvas.copy()
    out[x:x + 28, y:y + 28] = digit
    return out


def place_max(canvas, digit, x, y):  # overlapping ink kept, as if blending
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = np.maximum(out[y:y + 28, x:x + 28], digit)
    return out


def place_plus(canvas, digit, x, y):
    out = canvas.copy()
    out[y:y + 28, x:x + 28] = out[y:y + 28, x:x + 28] + digit
    return out


def place_27(canvas, digit, x, y):  # "28 pixels" counted inclusively
    out = canvas.copy()
    out[y:y + 27, x:x + 27] = digit[:27, :27]
    return out


def place_float(canvas, digit, x, y):
    out = np.array(canvas, dtype=np.float32)
    out[y:y + 28, x:x + 28] = digit
    return out


def tight_inclusive(image):
    r, c = np.nonzero(image)
    if len(r) == 0:
        return np.zeros(4, np.float32)
    return np.array([c.min(), r.min(), c.max(), r.max()], np.float32)  # last ink column, not + 1


def tight_rows_cols(image):
    r, c = np.nonzero(image)
    if len(r) == 0:
        return np.zeros(4, np.float32)
    return np.array([r.min(), c.min(), r.max() + 1, c.max() + 1], np.float32)


def tight_threshold(image):  # "ink" taken as bright pixels only
    r, c = np.nonzero(np.asarray(image) > 127)
    if len(r) == 0:
        return np.zeros(4, np.float32)
    return np.array([c.min(), r.min(), c.max() + 1, r.max() + 1], np.float32)


def tight_crash(image):
    r, c = np.nonzero(image)
    return np.array([c.min(), r.min(), c.max() + 1, r.max() + 1], np.float32)


def tight_wh(image):  # returns xywh
    r, c = np.nonzero(image)
    if len(r) == 0:
        return np.zeros(4, np.float32)
    return np.array([c.min(), r.min(), c.max() + 1 - c.min(), r.max() + 1 - r.min()], np.float32)


def union_all_slots(boxes, mask):
    return np.concatenate([boxes[:, :, :2].min(1), boxes[:, :, 2:].max(1)], -1).astype(np.float32)


def union_nan_empty(boxes, mask):
    b = np.where(mask[..., None], boxes, np.nan)
    return np.concatenate([np.nanmin(b[..., :2], 1), np.nanmax(b[..., 2:], 1)], -1).astype(np.float32)


def union_max_everything(boxes, mask):  # the max of every coordinate
    return np.where(mask[..., None], boxes, 0).max(1).astype(np.float32)


def union_mean(boxes, mask):
    m = mask[..., None]
    n = np.maximum(m.sum(1), 1)
    return (np.where(m, boxes, 0).sum(1) / n).astype(np.float32)


def onehot_eye(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels]


def onehot_int(labels, num_classes):
    return (np.asarray(labels)[..., None] == np.arange(num_classes)).astype(np.int32)


def onehot_flat(labels, num_classes):  # forgets that labels may have more than one axis
    labels = np.asarray(labels).reshape(-1)
    out = np.zeros((len(labels), num_classes), np.float32)
    out[np.arange(len(labels))[labels >= 0], labels[labels >= 0]] = 1
    return out


def onehot_minus_one_class(labels, num_classes):  # -1 gets its own column 0, shifting classes up
    return (np.asarray(labels)[..., None] + 1 == np.arange(num_classes)).astype(np.float32)


def onehot_first_axis(labels, num_classes):
    return np.stack([(np.asarray(labels) == k).astype(np.float32) for k in range(num_classes)])


def _take(order, *arrays):
    return tuple(np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1) for a in arrays)


def order_by_x1(boxes, classes, mask):
    key = np.where(mask, boxes[..., 2], np.inf)
    return _take(np.argsort(key, 1, kind="stable"), boxes, classes, mask)


def order_boxes_only(boxes, classes, mask):
    key = np.where(mask, boxes[..., 0], np.inf)
    (b,) = _take(np.argsort(key, 1, kind="stable"), boxes)
    return b, classes, mask


def order_no_mask(boxes, classes, mask):
    return _take(np.argsort(boxes[..., 0], 1, kind="stable"), boxes, classes, mask)


def order_tie_by_y1_desc(boxes, classes, mask):  # ties broken by the larger y0
    order = np.lexsort((-boxes[..., 1], np.where(mask, boxes[..., 0], np.inf)), axis=1)
    return _take(order, boxes, classes, mask)


def order_by_centre(boxes, classes, mask):
    key = np.where(mask, (boxes[..., 0] + boxes[..., 2]) / 2, np.inf)
    return _take(np.argsort(key, 1, kind="stable"), boxes, classes, mask)


MISTAKES = [
    ("place_digit", place_no_copy, ("in place", "copy")),
    ("place_digit", place_xy, ("x and y swapped",)),
    ("place_digit", place_max, ("replace", "appears unchanged")),
    ("place_digit", place_plus, ("replace", "not +=")),
    ("place_digit", place_27, ("appears unchanged", "off by one")),
    ("place_digit", place_float, ("uint8",)),
    ("tight_box", tight_inclusive, ("off by one", "exclusive")),
    ("tight_box", tight_rows_cols, ("x and y swapped",)),
    ("tight_box", tight_threshold, ("every ink pixel", "ink means image > 0")),
    ("tight_box", tight_crash, ("no ink",)),
    ("tight_box", tight_wh, ("x1", "xywh", "every ink pixel", "no larger than the ink")),
    ("union_box", union_all_slots, ("unused slots",)),
    ("union_box", union_nan_empty, ("no digit", "no used slot", "[0, 0, 0, 0]")),
    ("union_box", union_max_everything, ("minimum of x0", "holds every used slot")),
    ("union_box", union_mean, ("holds every used slot", "minimum of x0")),
    ("one_hot", onehot_eye, ("-1",)),
    ("one_hot", onehot_int, ("float32",)),
    ("one_hot", onehot_flat, ("shape",)),
    ("one_hot", onehot_minus_one_class, ("off by one", "column k", "none for -1")),
    ("one_hot", onehot_first_axis, ("last axis", "shape")),
    ("order_left_to_right", order_by_x1, ("increasing x0",)),
    ("order_left_to_right", order_boxes_only, ("move together", "same slots")),
    ("order_left_to_right", order_no_mask, ("unused slots",)),
    ("order_left_to_right", order_tie_by_y1_desc, ("tie", "smaller y0")),
    ("order_left_to_right", order_by_centre, ("increasing x0",)),
]
