"""The dense detector's targets and decoding, got wrong the way a student would."""
import numpy as np


def _centre_cells(boxes, stride, g):
    b = np.asarray(boxes, float)
    c = np.floor((b[..., :2] + b[..., 2:]) / 2 / stride)
    return np.clip(c, 0, g - 1)  # [N, K, 2] col, row


def _heat(boxes, mask, size, stride, sigma, *, d2_scale=1.0, denom=None, combine=np.maximum, centre=None):
    g = size // stride
    c = _centre_cells(boxes, stride, g) if centre is None else centre
    i = np.arange(g)
    out = np.zeros((len(boxes), g, g), np.float32)
    for n in range(len(boxes)):
        for k in range(boxes.shape[1]):
            if not mask[n, k]:
                continue
            d2 = (i[:, None] - c[n, k, 1]) ** 2 + (i[None, :] - c[n, k, 0]) ** 2
            bump = np.exp(-d2 * d2_scale / (denom if denom is not None else 2 * sigma ** 2))
            out[n] = combine(out[n], bump)
    return out


def heat_sigma_not_squared(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return _heat(boxes, mask, size, stride, sigma, denom=2 * sigma)


def heat_no_two(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return _heat(boxes, mask, size, stride, sigma, denom=sigma ** 2)


def heat_sum(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return np.minimum(_heat(boxes, mask, size, stride, sigma, combine=np.add), 1)  # "clipped so it stays a probability"


def heat_round(boxes, mask, *, size=128, stride=8, sigma=1.0):
    g = size // stride
    b = np.asarray(boxes, float)
    c = np.clip(np.round((b[..., :2] + b[..., 2:]) / 2 / stride), 0, g - 1)
    return _heat(boxes, mask, size, stride, sigma, centre=c)


def heat_transposed(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return np.transpose(_heat(boxes, mask, size, stride, sigma), (0, 2, 1))


def heat_pixels(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return _heat(boxes, mask, size, stride, sigma, d2_scale=stride ** 2)


def heat_no_mask(boxes, mask, *, size=128, stride=8, sigma=1.0):
    return _heat(boxes, np.ones_like(mask), size, stride, sigma)


def heat_exact_centre(boxes, mask, *, size=128, stride=8, sigma=1.0):  # the bump around the true centre
    b = np.asarray(boxes, float)
    return _heat(boxes, mask, size, stride, sigma, centre=(b[..., :2] + b[..., 2:]) / 2 / stride - 0.5)


def _targets(boxes, mask, size, stride, radius, *, centre_off=0.5, scale=True, order=(0, 1, 2, 3), nearest=True,
             zero=True):
    b, m, g = np.asarray(boxes, float), np.asarray(mask, bool), size // stride
    c = _centre_cells(b, stride, g)
    i = np.arange(g)
    d = np.zeros((len(b), g, g, 4), np.float32)
    cells = np.zeros((len(b), g, g), bool)
    best = np.full((len(b), g, g), np.inf)
    cx = ((i + centre_off) * stride)[None, :].repeat(g, 0)
    cy = ((i + centre_off) * stride)[:, None].repeat(g, 1)
    for n in range(len(b)):
        for k in range(b.shape[1]):
            if not m[n, k]:
                continue
            dr, dc = i[:, None] - c[n, k, 1], i[None, :] - c[n, k, 0]
            near = (np.abs(dr) <= radius) & (np.abs(dc) <= radius)
            dist = dr ** 2 + dc ** 2 + 0 * near
            win = near & ((dist < best[n]) if nearest else True)
            best[n] = np.where(win, dist, best[n])
            x0, y0, x1, y1 = b[n, k]
            sides = np.stack([cx - x0, cy - y0, x1 - cx, y1 - cy], -1)[..., list(order)] / (stride if scale else 1)
            d[n][win] = sides[win]
            cells[n] |= near
    if not zero:
        d[~cells] = 1.0
    return d, cells


def box_pixels(boxes, mask, *, size=128, stride=8, radius=1):
    return _targets(boxes, mask, size, stride, radius, scale=False)


def box_lt_swapped(boxes, mask, *, size=128, stride=8, radius=1):
    return _targets(boxes, mask, size, stride, radius, order=(1, 0, 2, 3))


def box_corner_centres(boxes, mask, *, size=128, stride=8, radius=1):
    return _targets(boxes, mask, size, stride, radius, centre_off=0)


def box_last_writes(boxes, mask, *, size=128, stride=8, radius=1):
    return _targets(boxes, mask, size, stride, radius, nearest=False)


def box_centre_only(boxes, mask, *, size=128, stride=8, radius=1):
    return _targets(boxes, mask, size, stride, 0)


def box_xyxy_targets(boxes, mask, *, size=128, stride=8, radius=1):  # the box itself instead of distances
    d, cells = _targets(boxes, mask, size, stride, radius)
    b = np.asarray(boxes, float) / stride
    first = np.take_along_axis(b, np.argmax(mask, 1)[:, None, None].repeat(4, -1), 1)[:, 0]
    return np.where(cells[..., None], first[:, None, None, :], 0).astype(np.float32), cells


def _decode(d, stride, *, off=0.5, scale=True, order=(0, 1, 2, 3), sign=1):
    d = np.asarray(d, float)[..., list(order)] * (stride if scale else 1)
    h, w = d.shape[-3:-1]
    cx = ((np.arange(w) + off) * stride)[None, :].repeat(h, 0)
    cy = ((np.arange(h) + off) * stride)[:, None].repeat(w, 1)
    return np.stack([cx - sign * d[..., 0], cy - sign * d[..., 1], cx + sign * d[..., 2], cy + sign * d[..., 3]],
                    -1).astype(np.float32)


def cells_corners(distances, *, stride=8):
    return _decode(distances, stride, off=0)


def cells_no_stride(distances, *, stride=8):
    return _decode(distances, stride, scale=False)


def cells_rows_cols(distances, *, stride=8):  # i as x, j as y
    d = np.asarray(distances, float) * stride
    h, w = d.shape[-3:-1]
    cx = ((np.arange(h) + 0.5) * stride)[:, None].repeat(w, 1)
    cy = ((np.arange(w) + 0.5) * stride)[None, :].repeat(h, 0)
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1).astype(np.float32)


def cells_ltrb_as_lrtb(distances, *, stride=8):
    return _decode(distances, stride, order=(0, 2, 1, 3))


def cells_minus_plus_swapped(distances, *, stride=8):
    return _decode(distances, stride, sign=-1)


def cells_half_stride(distances, *, stride=8):  # a cell's centre taken as stride / 2 off in x only
    d = np.asarray(distances, float) * stride
    h, w = d.shape[-3:-1]
    cx = ((np.arange(w) + 0.5) * stride)[None, :].repeat(h, 0)
    cy = (np.arange(h) * stride)[:, None].repeat(w, 1).astype(float)
    return np.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], -1).astype(np.float32)


def _peaks(heat, k, threshold, *, strict=False, local=True, keep_low=False, pad=-1, row_col=True, edge=-np.inf):
    heat = np.asarray(heat, float)
    n, h, w = heat.shape
    p = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=edge)
    best = np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3) if (i, j) != (1, 1)], 0)
    peak = (heat > best if strict else heat >= best) if local else np.ones_like(heat, bool)
    if not keep_low:
        peak &= heat >= threshold
    rows, cols, scores = np.full((n, k), pad), np.full((n, k), pad), np.zeros((n, k), np.float32)
    for b in range(n):
        flat = np.where(peak[b], heat[b], -np.inf).ravel()
        order = np.argsort(-flat, kind="stable")[:k]
        order = order[np.isfinite(flat[order])]
        r, c = np.divmod(order, w) if row_col else np.divmod(order, h)
        rows[b, :len(order)], cols[b, :len(order)], scores[b, :len(order)] = r, c, flat[order]
    return rows, cols, scores


def peaks_strict(heatmap, *, k=10, threshold=0.0):
    return _peaks(heatmap, k, threshold, strict=True)


def peaks_top_k(heatmap, *, k=10, threshold=0.0):
    return _peaks(heatmap, k, threshold, local=False)


def peaks_no_threshold(heatmap, *, k=10, threshold=0.0):
    return _peaks(heatmap, k, threshold, keep_low=True)


def peaks_pad_zero(heatmap, *, k=10, threshold=0.0):
    return _peaks(heatmap, k, threshold, pad=0)


def peaks_divmod_by_h(heatmap, *, k=10, threshold=0.0):
    return _peaks(heatmap, k, threshold, row_col=False)


def peaks_list(heatmap, *, k=10, threshold=0.0):  # a list of (row, col, score) per map
    r, c, s = _peaks(heatmap, k, threshold)
    return [list(zip(r[b].tolist(), c[b].tolist(), s[b].tolist())) for b in range(len(r))]


def _iou_1_to_n(b, others):
    lt = np.maximum(b[:2], others[:, :2])
    rb = np.minimum(b[2:], others[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    union = _area1(b) + _area1(others) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _area1(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def nms_given_order(boxes, scores, iou_threshold):
    b = np.asarray(boxes, float).reshape(-1, 4)
    keep = []
    for i in range(len(b)):
        if all(_iou_1_to_n(b[i], b[[j]])[0] <= iou_threshold for j in keep):
            keep.append(i)
    return np.array(keep, np.int64)


def nms_ge(boxes, scores, iou_threshold):
    b, s = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if all(_iou_1_to_n(b[i], b[[j]])[0] < iou_threshold for j in keep):
            keep.append(int(i))
    return np.array(keep, np.int64)


def nms_sorted_indices(boxes, scores, iou_threshold):
    b, s = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if all(_iou_1_to_n(b[i], b[[j]])[0] <= iou_threshold for j in keep):
            keep.append(int(i))
    return np.array(sorted(keep), np.int64)


def nms_over_smaller(boxes, scores, iou_threshold):
    b, s = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        ok = True
        for j in keep:
            lt, rb = np.maximum(b[i, :2], b[j, :2]), np.minimum(b[i, 2:], b[j, 2:])
            inter = np.clip(rb - lt, 0, None).prod()
            ok &= inter / max(min(_area1(b[i]), _area1(b[j])), 1e-9) <= iou_threshold
        if ok:
            keep.append(int(i))
    return np.array(keep, np.int64)


def nms_chain(boxes, scores, iou_threshold):  # every box, kept or not, drops the ones after it
    b, s = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)
    order = np.argsort(-s, kind="stable")
    dropped = np.zeros(len(b), bool)
    for n, i in enumerate(order):
        later = order[n + 1:]
        dropped[later[_iou_1_to_n(b[i], b[later]) > iou_threshold]] = True
    return np.array([int(i) for i in order if not dropped[i]], np.int64)


def _nms_keep(boxes, scores, iou_threshold):
    b, s = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float)
    keep = []
    for i in np.argsort(-s, kind="stable"):
        if all(_iou_1_to_n(b[i], b[[j]])[0] <= iou_threshold for j in keep):
            keep.append(int(i))
    return np.array(keep, np.int64)


def nms_boxes(boxes, scores, iou_threshold):
    return np.asarray(boxes, np.float32).reshape(-1, 4)[_nms_keep(boxes, scores, iou_threshold)]


MISTAKES = [
    ("heatmap_targets", heat_sigma_not_squared, ("sigma is squared",)),
    ("heatmap_targets", heat_no_two, ("factor 2",)),
    ("heatmap_targets", heat_sum, ("np.maximum", "larger bump")),
    ("heatmap_targets", heat_round, ("floor", "np.round")),
    ("heatmap_targets", heat_transposed, ("x and y swapped",)),
    ("heatmap_targets", heat_pixels, ("in cells",)),
    ("heatmap_targets", heat_no_mask, ("unused slots",)),
    ("heatmap_targets", heat_exact_centre, ("no 1 at the centre", "centre cell holds exactly 1")),
    ("box_targets", box_pixels, ("in cells", "divide the pixel distances")),
    ("box_targets", box_lt_swapped, ("l + r is the box's width",)),
    ("box_targets", box_corner_centres, ("top-left corner",)),
    ("box_targets", box_last_writes, ("nearest", "written last")),
    ("box_targets", box_centre_only, ("radius",)),
    ("box_targets", box_xyxy_targets, ("l + r is the box's width", "distances")),
    ("boxes_from_cells", cells_corners, ("top-left corner",)),
    ("boxes_from_cells", cells_no_stride, ("multiply them by stride",)),
    ("boxes_from_cells", cells_rows_cols, ("x and y swapped",)),
    ("boxes_from_cells", cells_ltrb_as_lrtb, ("(l, t, r, b)",)),
    ("boxes_from_cells", cells_minus_plus_swapped, ("signs",)),
    ("boxes_from_cells", cells_half_stride, ("cell's centre",)),
    ("find_peaks", peaks_strict, (">=",)),
    ("find_peaks", peaks_top_k, ("local maxima",)),
    ("find_peaks", peaks_no_threshold, ("threshold",)),
    ("find_peaks", peaks_pad_zero, ("-1",)),
    ("find_peaks", peaks_divmod_by_h, ("index // W", "row = col")),
    ("find_peaks", peaks_list, ()),
    ("nms", nms_given_order, ("descending score", "in the order given")),
    ("nms", nms_ge, ("IoU equal to it stays",)),
    ("nms", nms_sorted_indices, ("not sorted",)),
    ("nms", nms_over_smaller, ("smaller box",)),
    ("nms", nms_chain, ("dropped box drops nothing",)),
    ("nms", nms_boxes, ("not the boxes",)),
]
