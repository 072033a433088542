"""COCO export: one PNG per canvas and an ``instances.json`` that pycocotools loads.

The layout, in ``out_dir``::

    instances.json      images, annotations, categories (COCO object detection)
    000000.png ...      the canvases, 8-bit grayscale, named by index

Conventions:
- ``image_id`` is the canvas index in the dataset; ``file_name`` is relative to
  ``out_dir``.
- ``category_id`` is the digit itself, 0 to 9, named ``"0"`` to ``"9"``.
  pycocotools accepts category id 0 (``tests/test_coco.py`` evaluates perfect
  detections of class 0 to AP 1). Annotation ids start at 1, because
  ``COCOeval`` marks unmatched detections with id 0.
- ``bbox`` is ``xywh`` in pixels (``boxes.convert`` from our ``xyxy``),
  ``area`` its width times height, ``iscrowd`` 0.
- Every digit is an annotation, whatever the case: the case's own labels
  (presence, union box, count) follow from them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mnistloc import boxes as B

ANNOTATIONS = "instances.json"


def coco_dict(ds) -> dict:
    """The COCO ``instances`` dictionary of a dataset (no files written).

    Args:
        ds: a ``mnistloc.canvas.CanvasDataset``.

    Returns:
        dict with ``info``, ``images``, ``annotations`` and ``categories``.
    """
    n, size = len(ds), ds.size
    images = [{"id": i, "file_name": _file_name(i, n), "width": size, "height": size} for i in range(n)]
    rows, slots = np.nonzero(ds.mask)  # every used slot, canvas by canvas, left to right
    xywh = B.convert(ds.boxes[rows, slots], "xyxy", "xywh")  # [m, 4]
    annotations = [{"id": k + 1, "image_id": int(i), "category_id": int(c),
                    "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0}
                   for k, (i, c, box) in enumerate(zip(rows, ds.classes[rows, slots], xywh))]
    categories = [{"id": c, "name": str(c), "supercategory": "digit"} for c in range(10)]
    info = {"description": f"mnistloc case {ds.case} canvases, {ds.split} split", "version": "1.0"}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def write_coco(ds, out_dir, *, progress: bool = False) -> Path:
    """Writes a dataset as COCO: a grayscale PNG per canvas and ``instances.json``.

    Existing files of the same names in ``out_dir`` are replaced; the CLI asks
    for ``--force`` before calling this on a folder that already has an export.

    Args:
        ds: a ``mnistloc.canvas.CanvasDataset`` (any case).
        out_dir: the folder to write into (created if missing).
        progress: show a progress bar while writing the PNGs.

    Returns:
        Path: ``out_dir / "instances.json"``.
    """
    from PIL import Image  # pillow comes with matplotlib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = coco_dict(ds)
    images = zip(data["images"], ds.images)
    if progress:
        from tqdm.auto import tqdm
        images = tqdm(images, total=len(ds), desc="PNGs", unit="canvas")
    for record, image in images:
        Image.fromarray(np.ascontiguousarray(image)).save(out / record["file_name"])  # uint8 (H, W): mode "L"
    path = out / ANNOTATIONS
    path.write_text(json.dumps(data))
    return path


def _file_name(i: int, n: int) -> str:
    return f"{i:0{max(6, len(str(n - 1)))}d}.png"
