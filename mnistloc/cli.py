"""The ``mnistloc`` command: parses arguments and calls the library, nothing more.

Each subcommand is a pair: ``_args_NAME(parser)`` declares its arguments and
``_run_NAME(args) -> int`` calls the library. Bad arguments exit with code 2
and a message that names the argument.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(Exception):
    """A bad argument: printed as ``mnistloc NAME: error: ...`` with exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _case(text: str) -> int:
    if text not in ("1", "2", "3", "4"):
        raise argparse.ArgumentTypeError(f"expected a case from 1 to 4, got {text!r}")
    return int(text)


def _new_output(path: Path, force: bool, suffix: str | None = None) -> Path:
    """Refuses to overwrite an existing output unless ``--force`` was given, or one of the wrong type."""
    if suffix is not None and path.suffix.lower() != suffix:
        raise UsageError(f"--out should be a {suffix} file. Got {path}")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _source(args) -> str:
    return args.mnist if getattr(args, "mnist", None) else "auto"


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", type=_case, required=True, help="1 to 4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--mnist", metavar="PATH", help="a local mnist.npz (full MNIST) instead of the bundled digits")


# ---- data / show / demo (foundation) ---------------------------------------------------------

def _args_data(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--count", type=_positive_int, default=1000, help="number of canvases")
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--coco", type=Path, metavar="DIR", help="also write PNGs and a COCO instances JSON here")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _run_data(args) -> int:
    from mnistloc import canvas

    out = _new_output(args.out, args.force, ".npz")  # numpy would append .npz to any other name
    if args.coco is not None and (args.coco / "instances.json").exists() and not args.force:
        raise UsageError(f"{args.coco / 'instances.json'} exists; pass --force to overwrite it")
    ds = canvas.make_dataset(args.case, args.count, seed=args.seed, split=args.split,
                             source=_source(args), progress=args.count >= 20_000)
    ds.save(out)
    print(f"wrote {len(ds)} canvases of case {args.case} to {out}")
    if args.coco is not None:
        from mnistloc import coco

        path = coco.write_coco(ds, args.coco, progress=True)
        print(f"wrote {len(ds)} PNGs and {path}")
    return 0


def _args_show(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--count", type=_positive_int, default=16, help="canvases in the grid")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing PNG")


def _run_show(args) -> int:
    from mnistloc import canvas, viz

    out = _new_output(args.out, args.force, ".png")
    ds = canvas.make_dataset(args.case, args.count, seed=args.seed, split=args.split, source=_source(args))
    viz.save(viz.sample_grid(ds), out)
    print(f"wrote {out}")
    return 0


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for pictures and metrics")


def _run_demo(args) -> int:
    from mnistloc import demo

    return demo.run(args.out)


COMMANDS = {
    "data": ("make a dataset of canvases (.npz, optionally COCO)", _args_data, _run_data),
    "show": ("draw a grid of canvases with their boxes", _args_show, _run_show),
    "demo": ("the main job: every case, a table and pictures", _args_demo, _run_demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnistloc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"mnistloc {args.command}: error: {err}", file=sys.stderr)
        return 2
