"""mnistloc.coco: the export loads in pycocotools and evaluates as it should."""
import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mnistloc import coco
from mnistloc.canvas import make_dataset


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return fn(*args)


def _evaluate(gt, detections):
    dt = _quiet(gt.loadRes, detections)
    e = COCOeval(gt, dt, "bbox")
    _quiet(e.evaluate)
    _quiet(e.accumulate)
    _quiet(e.summarize)
    return e


@pytest.fixture(scope="module", params=[4, 5])
def exported(request, tmp_path_factory):
    """Case 4 (up to two digits) and case 5 (up to six, resized, overlapping) exported."""
    ds = make_dataset(request.param, 60, seed=2)
    out = tmp_path_factory.mktemp(f"coco{request.param}")
    return ds, out, coco.write_coco(ds, out)


def test_layout_and_pngs(exported):
    ds, out, path = exported
    assert path == out / "instances.json"
    data = json.loads(path.read_text())
    assert [im["id"] for im in data["images"]] == list(range(60))  # image_id = canvas index
    for im, canvas in zip(data["images"], ds.images):
        assert (im["width"], im["height"]) == (128, 128)
        with Image.open(out / im["file_name"]) as png:
            assert png.mode == "L" and np.array_equal(np.asarray(png), canvas)  # exact bytes back


def test_annotations_match_the_dataset(exported):
    ds, _, path = exported
    gt = _quiet(COCO, str(path))
    assert sorted(gt.getCatIds()) == list(range(10))
    assert [c["name"] for c in gt.loadCats(range(10))] == [str(c) for c in range(10)]
    anns = gt.dataset["annotations"]
    assert len(anns) == ds.count.sum() and sorted(a["id"] for a in anns) == list(range(1, len(anns) + 1))
    for i in range(len(ds)):
        mine = gt.loadAnns(gt.getAnnIds(imgIds=[i]))
        assert len(mine) == ds.count[i]  # empty canvases: an image without annotations
        for a, box, cls in zip(mine, ds.boxes[i][ds.mask[i]], ds.classes[i][ds.mask[i]]):
            x0, y0, x1, y1 = box
            assert a["bbox"] == [x0, y0, x1 - x0, y1 - y0]  # xywh
            assert a["area"] == (x1 - x0) * (y1 - y0) and a["category_id"] == cls and a["iscrowd"] == 0
    assert (ds.count == 0).any()


def test_perfect_detections_score_one_and_jitter_less(exported):
    ds, _, path = exported
    gt = _quiet(COCO, str(path))
    anns = gt.dataset["annotations"]
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in anns]
    assert _evaluate(gt, perfect).stats[0] == pytest.approx(1.0)  # AP .50:.95
    # one pixel down: IoU = (h - 1) / (h + 1), >= .6 for every digit (h >= 4) but < .95 unless h >= 39
    shifted = [dict(d, bbox=[d["bbox"][0], d["bbox"][1] + 1, *d["bbox"][2:]]) for d in perfect]
    assert min(d["bbox"][3] for d in shifted) >= 4
    e = _evaluate(gt, shifted)
    assert e.stats[1] == pytest.approx(1.0) and e.stats[0] < 0.9  # AP .50 is 1, AP .50:.95 is not


def test_category_zero_is_evaluated(tmp_path):
    # pycocotools accepts category id 0: case 1 with digit 0 gives only class-0 annotations
    ds = make_dataset(1, 20, seed=0, digit=0)
    gt = _quiet(COCO, str(coco.write_coco(ds, tmp_path)))
    anns = gt.dataset["annotations"]
    assert {a["category_id"] for a in anns} == {0}
    dets = [{"image_id": a["image_id"], "category_id": 0, "bbox": a["bbox"], "score": 1.0} for a in anns]
    e = _evaluate(gt, dets)
    precision = e.eval["precision"][:, :, 0, 0, 2]  # [IoU thresholds, recall points] for category 0
    assert (precision == 1).all()
    misses = _evaluate(gt, [dict(d, category_id=3) for d in dets])  # right boxes, wrong class
    assert misses.stats[0] == 0


def test_coco_dict_and_file_names():
    ds = make_dataset(2, 3, seed=0)
    data = coco.coco_dict(ds)
    assert set(data) == {"info", "images", "annotations", "categories"}
    assert [im["file_name"] for im in data["images"]] == ["000000.png", "000001.png", "000002.png"]
    assert "case 2" in data["info"]["description"]
    assert coco._file_name(1_234_567, 2_000_000) == "1234567.png"  # wider names once needed
