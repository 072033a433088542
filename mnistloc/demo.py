"""The main job (``make demo`` = ``mnistloc demo``): every case's data, a table and pictures.

``run`` makes a dataset of each case from the bundled digits, prints one
table and writes a sample grid per case. Each step is a small function so
that training and evaluation can be added as further steps of ``run``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistloc import canvas

CANVASES = 2000  # per case
SEED = 0
CASE_NAMES = {1: "single class", 2: "presence", 3: "multi-class", 4: "multiple objects"}


def make_datasets(n: int = CANVASES, seed: int = SEED, split: str = "train") -> dict:
    """One dataset per case, from the bundled digits.

    Returns:
        dict case -> CanvasDataset of ``n`` canvases (case c uses seed ``seed + c``).
    """
    return {case: canvas.make_dataset(case, n, seed=seed + case, split=split, source="bundled")
            for case in canvas.CASES}


def summary(ds) -> dict:
    """One table row: canvases, digits per canvas, share of 0/1/2 digits, mean digit box size.

    Args:
        ds: a CanvasDataset.

    Returns:
        dict with ``case``, ``canvases``, ``digits`` (mean per canvas), ``empty``/``one``/``two``
        (fractions), ``width`` and ``height`` (mean over digit boxes, pixels).
    """
    used = ds.boxes[ds.mask]  # [m, 4] every digit's box
    share = np.bincount(ds.count, minlength=3) / max(len(ds), 1)
    return {"case": ds.case, "canvases": len(ds), "digits": float(ds.count.mean()),
            "empty": share[0], "one": share[1], "two": share[2],
            "width": float((used[:, 2] - used[:, 0]).mean()), "height": float((used[:, 3] - used[:, 1]).mean())}


def format_table(rows: list[dict]) -> str:
    """The summary rows as a plain-text table."""
    head = f"{'case':<22} {'canvases':>8} {'digits/canvas':>13} {'0 / 1 / 2 digits':>18} {'mean box w x h':>15}"
    lines = [head, "-" * len(head)]
    for r in rows:
        shares = f"{r['empty']:.2f} / {r['one']:.2f} / {r['two']:.2f}"
        lines.append(f"{r['case']} {CASE_NAMES[r['case']]:<20} {r['canvases']:>8,} {r['digits']:>13.2f} "
                     f"{shares:>18} {r['width']:>7.1f} x {r['height']:.1f}")
    return "\n".join(lines)


def write_grids(datasets: dict, out_dir) -> list[Path]:
    """A sample grid PNG per case: ``out_dir/case{N}_samples.png``."""
    from mnistloc import viz

    return [viz.save(viz.sample_grid(ds), Path(out_dir) / f"case{case}_samples.png")
            for case, ds in datasets.items()]


def run(out_dir="demo-output", n: int = CANVASES) -> int:
    """Builds every case's data, prints the table, writes the pictures.

    Args:
        out_dir: folder for the pictures (created; files of the same name are replaced).
        n: canvases per case.

    Returns:
        0 (the CLI's exit code).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datasets = make_datasets(n)
    print(f"Canvases from the bundled MNIST digits (train split, {canvas.DIGIT}x{canvas.DIGIT} digits "
          f"on {datasets[1].size}x{datasets[1].size}), tight boxes:\n")
    print(format_table([summary(ds) for ds in datasets.values()]))
    paths = write_grids(datasets, out)
    print(f"\nwrote {len(paths)} sample grids to {out}/: " + ", ".join(p.name for p in paths))
    return 0
