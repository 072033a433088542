"""The ``mnistloc`` command: parses arguments and calls the library, nothing more.

Each subcommand is a pair: ``_args_NAME(parser)`` declares its arguments and
``_run_NAME(args) -> int`` calls the library. Bad arguments exit with code 2
and a message that names the argument.
"""
from __future__ import annotations

import argparse
import os
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
    from mnistloc.cases import ALL_CASES

    if text not in tuple(map(str, ALL_CASES)):
        raise argparse.ArgumentTypeError(f"expected a case from {ALL_CASES[0]} to {ALL_CASES[-1]}, got {text!r}")
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
    p.add_argument("--case", type=_case, required=True, help="1 to 5")
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
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for index.html, pictures, tables")
    p.add_argument("--seconds", type=float, default=None,
                   help="the live training run, in seconds of both cores (default 30; 0: none)")
    p.add_argument("--no-grading", action="store_true", help="skip grading the sample class")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run in about a minute: 200 canvases, 200 test canvases, 5 s of training")


def _run_demo(args) -> int:
    from mnistloc import demo

    options = dict(demo.QUICK) if args.quick else {}
    if args.seconds is not None:
        if args.seconds < 0:
            raise UsageError(f"--seconds should be >= 0, got {args.seconds}")
        options["live_seconds"] = args.seconds
    return demo.run(args.out, grading=not args.no_grading, **options)


# ---- grade / doctor (hardened grader) --------------------------------------------------------

def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/8, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def _args_grade(p: argparse.ArgumentParser) -> None:
    p.add_argument("course", type=Path, metavar="COURSE_DIR", help="nbgrader course folder with submitted/")
    p.add_argument("--lesson", action="append", help="grade only this lesson (repeatable)")
    p.add_argument("--student", action="append", help="grade only this student (repeatable); with --force, a regrade "
                   "that keeps every other student's results untouched")
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, help="notebooks at a time (all cores)")
    p.add_argument("--shard", type=_shard, metavar="I/N", help="grade one N-th of the students (0 <= I < N)")
    p.add_argument("--merge", nargs="*", type=Path, metavar="SHARD", help="join shard files (default: OUT/shards/*)")
    p.add_argument("--out", type=Path, help="results folder (default: COURSE_DIR/mnistloc_grades)")
    p.add_argument("--timeout", type=float, default=60, help="seconds per exercise")
    p.add_argument("--memory-mb", type=_positive_int, default=4096, help="address space per child process")
    p.add_argument("--no-gradebook", action="store_true", help="do not write nbgrader's gradebook")
    p.add_argument("--fresh-children", action="store_true",
                   help="start each student's sandbox child as a new Python instead of forking it from a warm "
                        "parent that imported TensorFlow once (slower; the same isolation)")
    p.add_argument("--export", nargs=2, action="append", metavar=("LMS", "FILE"), default=[],
                   help="also write the gradebook as FILE for LMS canvas or moodle (one column per lesson; "
                        "repeatable)")
    p.add_argument("--reports-only", action="store_true",
                   help="grade nothing: rebuild class.html and write the --export files from the recorded grades "
                        "(after scoring the written answers in formgrader)")
    p.add_argument("--force", action="store_true", help="overwrite existing results")


def _run_grade(args) -> int:
    from mnistloc.grading import grade, results

    for fmt, _ in args.export:
        if fmt not in ("canvas", "moodle"):
            raise UsageError(f"--export should name canvas or moodle, then a file. Got --export {fmt}")
    if args.shard is not None and args.export:
        raise UsageError("--export needs the whole class: pass it to the --merge run, not to a --shard")
    if args.reports_only:
        results.write_reports(args.course, args.out or args.course / "mnistloc_grades", force=args.force,
                              export=[(fmt, Path(path)) for fmt, path in args.export])
        return 0
    grade.grade_course(args.course, out=args.out, lessons=args.lesson, students=args.student, shard=args.shard,
                       merge=args.merge, jobs=args.jobs, timeout=args.timeout, memory_mb=args.memory_mb,
                       gradebook=not args.no_gradebook, force=args.force,
                       export=[(fmt, Path(path)) for fmt, path in args.export], progress=True,
                       warm=False if args.fresh_children else None)
    return 0


def _args_leaderboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("course", type=Path, metavar="COURSE_DIR", help="nbgrader course folder with submitted/")
    p.add_argument("--out", type=Path, help="results folder (default: COURSE_DIR/mnistloc_leaderboard)")
    p.add_argument("--reference", type=Path, metavar="MODEL", help="a model.keras from `mnistloc train --case 5`, "
                   "or `shipped` for the package's case 5 weights, shown for comparison")
    p.add_argument("--student", action="append", help="score only this student (repeatable)")
    p.add_argument("--canvases", type=_positive_int, default=200, help="hidden case 5 canvases per model")
    p.add_argument("--timeout", type=float, default=120, help="seconds per model to load and run")
    p.add_argument("--memory-mb", type=_positive_int, default=4096, help="address space per child process")
    p.add_argument("--max-mb", type=_positive_int, default=32, help="largest model file opened, in MB")
    p.add_argument("--bonus", type=_bonus, action="append", metavar="MAP=POINTS",
                   help="extra credit in nbgrader's gradebook for a mAP at or above MAP (repeatable: the highest "
                        "threshold reached counts), on lesson 5's test_choose_nms_threshold cell")
    p.add_argument("--force", action="store_true", help="overwrite existing results (and earlier extra credit)")


def _bonus(text: str) -> tuple[float, float]:
    try:
        threshold, points = (float(v) for v in text.split("="))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MAP=POINTS such as 0.7=1, got {text!r}") from None
    if not (0 < threshold <= 1 and points > 0):
        raise argparse.ArgumentTypeError(f"expected a mAP in (0, 1] and points > 0, got {text!r}")
    return threshold, points


def _run_leaderboard(args) -> int:
    from mnistloc.grading import leaderboard

    entries = leaderboard.leaderboard(args.course, out=args.out, reference=args.reference, students=args.student,
                                      canvases=args.canvases, timeout=args.timeout, memory_mb=args.memory_mb,
                                      max_bytes=args.max_mb * 1024 * 1024, force=args.force)
    for e in entries:
        score = f"mAP {e.map:.3f}" if e.status == "ok" else e.status
        print(f"{e.rank or '-':>3}  {e.student:<24} {score}")
    out = args.out or args.course / "mnistloc_leaderboard"
    print(f"wrote {out / 'leaderboard.csv'} and {out / 'leaderboard.html'}")
    if args.bonus:
        from mnistloc.grading import results

        scores = {e.student: e.map for e in entries if e.entry == "student" and e.status == "ok"}
        awards = results.bonus_points(scores, dict(args.bonus))
        results.record_bonus(args.course, awards, leaderboard.LESSON, leaderboard.BONUS_CELL, force=args.force)
        print(f"extra credit for {len(awards)} of {len(scores)} scored students in nbgrader's gradebook "
              f"({leaderboard.LESSON}, {leaderboard.BONUS_CELL}): "
              + (", ".join(f"{s} {p:g}" for s, p in sorted(awards.items())) or "none"))
    return 0


def _args_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", type=Path, metavar="NOTEBOOK", help="a lesson notebook (.ipynb); only read")
    p.add_argument("--lesson", help="the lesson it should be (default: from its name or cells)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def _run_doctor(args) -> int:
    import json

    from mnistloc.grading import doctor

    diagnosis = doctor.diagnose(args.notebook, lesson=args.lesson)
    print(json.dumps(diagnosis.to_dict(), indent=1) if args.json else doctor.format_report(diagnosis))
    return 0 if diagnosis.ok else 1


# ---- check (the course) -----------------------------------------------------------------------

def _args_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", type=Path, help="a lesson notebook (.ipynb)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--timeout", type=_positive_int, default=60, help="seconds each exercise may take")
    p.add_argument("--reveal", metavar="NAME", help="after trying exercise NAME (or writing written question NAME), "
                   "show its answer step by step: your hint, a worked case, the reference (never while grading)")


def _run_reveal(args) -> int:
    import sys

    from mnistloc.grading import reveal

    try:
        blocks = reveal.format_ladder(args.reveal, reveal.reveal(args.notebook, args.reveal, timeout=args.timeout))
    except reveal.RevealRefused as refused:
        print(refused)
        return 1
    for i, block in enumerate(blocks):
        if i and sys.stdin.isatty() and sys.stdout.isatty():  # a person at a terminal climbs one rung at a time
            input("(Enter for the next step) ")
        print(block + "\n")
    return 0


def _run_check(args) -> int:
    import json

    from mnistloc.grading.check import check_notebook
    from mnistloc.grading.registry import QUESTIONS, questions_of

    if args.reveal:
        return _run_reveal(args)
    report = check_notebook(args.notebook, timeout=args.timeout)
    if args.json:
        print(json.dumps({k: report[k] for k in ("score", "max_score", "exercises")}, indent=2))
    else:
        print(f"{report['lesson']}: {args.notebook}")
        for ex in report["exercises"]:
            mark = "ok " if ex["passed"] else "   "
            hint = ex["hint"].removeprefix(f"{ex['name']}: ")
            print(f"  {mark}{ex['name']:<22} {ex['points']}/{ex['max_points']}  {hint}".rstrip())
        for name in questions_of(report["lesson"]):
            points = QUESTIONS[name].points
            print(f"     {name:<22} {points} point{'s' if points != 1 else ''}, a written question: graded by your "
                  f"instructor")
        print(f"score {report['score']}/{report['max_score']}")
    return 0 if report["score"] == report["max_score"] else 1


# ---- lessons (self-learners) ------------------------------------------------------------------

def _args_lessons(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, metavar="DIR", help="where the lessons go (created if missing)")


def _run_lessons(args) -> int:
    from mnistloc import course

    print(course.format_fetched(course.fetch_lessons(args.folder)))
    return 0


# ---- train / evaluate (reference models) -----------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _args_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", type=_case, required=True, help="1 to 5")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=_positive_float, help="training time budget (default 180)")
    budget.add_argument("--epochs", type=_positive_int, help="epochs of 5,000 fresh canvases")
    budget.add_argument("--steps", type=_positive_int,
                        help="optimiser steps of 64 canvases: the same seed and steps give the same model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for model.keras, metrics.json and pictures")
    p.add_argument("--mnist", metavar="PATH", help="a local mnist.npz (full MNIST) instead of the bundled digits")
    p.add_argument("--force", action="store_true", help="overwrite an existing model and report")


def _run_train(args) -> int:
    from mnistloc import evaluation, training

    model_path = _new_output(args.out / "model.keras", args.force)
    config = training.TrainConfig(seconds=args.seconds, epochs=args.epochs, steps=args.steps, seed=args.seed,
                                  source=_source(args))
    model, history = training.train(args.case, config)
    training.save_model(model, model_path, force=True)
    result = evaluation.write_report(model, args.case, args.out, history=history, source=_source(args))
    print(evaluation.format_metrics(result))
    print(f"trained case {args.case} for {history.steps} steps in {history.seconds:.0f} s; wrote {model_path}, "
          f"metrics.json, predictions.png, worst.png and history.png to {args.out}/")
    return 0


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="a .keras file (from `mnistloc train`, or lesson 5's save cell), or "
                   "`shipped` for the package's reference weights of --case")
    p.add_argument("--case", type=_case, required=True, help="1 to 5: the case the model was trained for")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--mnist", metavar="PATH", help="a local mnist.npz (full MNIST) instead of the bundled digits")


def _run_evaluate(args) -> int:
    import json

    from mnistloc import evaluation, pretrained, training

    shipped = str(args.model) == "shipped"
    model = pretrained.model(args.case) if shipped else training.load_model(args.model, compile=False)
    result = evaluation.evaluate(model, args.case, source=_source(args))
    print(json.dumps(result, indent=2) if args.json else evaluation.format_metrics(result))
    return 0


DESCRIPTION = ("Object localization and detection on canvases of MNIST digits: make data, draw it, train and "
               "score the reference models, and check or grade the course's lesson notebooks. "
               "Run 'mnistloc COMMAND --help' for a command's options.")

COMMANDS = {
    "lessons": ("copy the lessons into DIR, never overwriting your work, and say how to open them", _args_lessons,
                _run_lessons),
    "check": ("check the exercises of a lesson notebook: points and a hint each", _args_check, _run_check),
    "data": ("make a dataset of canvases (.npz, optionally COCO)", _args_data, _run_data),
    "show": ("draw a grid of canvases with their boxes", _args_show, _run_show),
    "demo": ("the main job: data, reference models, live training and grading, on one page", _args_demo, _run_demo),
    "train": ("train a case's model; write it, its metrics and pictures", _args_train, _run_train),
    "evaluate": ("score a trained model on held-out canvases", _args_evaluate, _run_evaluate),
    "grade": ("grade a class of untrusted notebooks safely (CSV, feedback, gradebook)", _args_grade, _run_grade),
    "leaderboard": ("score the class's case 5 models safely on hidden canvases (CSV, HTML)", _args_leaderboard,
                    _run_leaderboard),
    "doctor": ("say what is structurally wrong with a lesson notebook and how to fix it", _args_doctor, _run_doctor),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnistloc", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"mnistloc {args.command}: error: {err}", file=sys.stderr)
        return 2
