"""The hardened grader: grades a class of untrusted lesson notebooks safely and fast.

``grade_course(COURSE_DIR)`` grades nbgrader's ``submitted/<student>/<lesson>/<lesson>.ipynb``
layout (it is what ``mnistloc grade`` calls). Each notebook's answer cells run in a
sandbox child (``mnistloc.grading.sandbox``) on the public cases and on cases from
the course's secret seed; this process judges the results, so nothing a submission
does inside its child can raise its grade. Results (``mnistloc.grading.results``):
one ``Row`` per student, lesson and exercise, written as ``grades.csv`` and
``grades.json``, a feedback page per student and lesson, and the scores of the
test cells (``test_<exercise>``) in nbgrader's gradebook, so ``nbgrader export``
and formgrader agree. A large class can be graded in shards (``shard=(i, n)`` on
n machines) and merged (``merge=[...]``).

The secret seed comes from ``$MNISTLOC_SECRET_SEED``, else from the file
``COURSE_DIR/secret_seed`` (one integer; keep it ``chmod 600``). The child never
sees either: cases are made here and sent to it.
"""
from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import stat
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mnistloc.grading import judge, warden, warm_parent
from mnistloc.grading.warden import capabilities, guard_this_process
from mnistloc.grading.launcher import MAX_NAME, Refused, open_regular, plain_id
from mnistloc.grading.exercises.base import keras
from mnistloc.grading.registry import (EXERCISES, LESSONS, QUESTIONS, SEED_FILE, exercises_of,  # noqa: F401
                                       hidden_seed, questions_of, secret_seed)
from mnistloc.grading.results import (Row, output_paths, publish, read_shards, refuse_overwrite, seed_fingerprint,
                                      write_shard)


def grade_course(course_dir, *, out=None, lessons=None, students=None, shard: tuple[int, int] | None = None,
                 merge=None, jobs: int = 1, timeout: float = 60, memory_mb: int = 4096, gradebook: bool = True,
                 force: bool = False, export=(), progress: bool = False, say=print,
                 warm: bool | None = None) -> list[Row]:
    """Grades a course folder and writes the results: what ``mnistloc grade`` does.

    Args:
        course_dir: the nbgrader course folder (with ``submitted/``).
        out: the results folder (default: ``COURSE_DIR/mnistloc_grades``).
        lessons: lesson ids to grade (default: every lesson).
        students: student ids to grade (default: every folder in ``submitted/``).
        shard: ``(i, n)``: grade only students i, i + n, ... and write ``out/shards/shard-i-of-n.json``.
        merge: shard files to join instead of grading (an empty list: every ``out/shards/*``); None: grade.
        jobs: students graded at a time.
        timeout: seconds per exercise.
        memory_mb: address space per child process.
        gradebook: also record the scores in nbgrader's gradebook.
        force: overwrite existing results. With ``students``, the other students' results are kept: their
            rows, feedback pages and gradebook entries are not touched (a one-student regrade).
        export: ``(format, path)`` pairs: also write the gradebook for an LMS (``lms_export.FORMATS``).
        progress: show a progress bar with the time left on stderr, when stderr is a terminal.
        say: prints one line of progress (``print``; pass ``lambda line: None`` for silence).
        warm: fork the sandbox children from a warm parent per grading process (``grade_tasks``); None: when
            more than one student is graded.

    Returns:
        list[Row]: one per student, lesson and exercise (of this shard only, when ``shard`` is given).

    Raises:
        ValueError: no secret seed, a bad lesson or shard, or shards of another seed.
        FileExistsError: an output exists and ``force`` is False (checked before grading).
    """
    guard_this_process()  # this process holds the secret seed
    course = Path(course_dir)
    out = Path(out) if out is not None else course / "mnistloc_grades"
    seed = secret_seed(course)
    refuse_overwrite(output_paths(out, shard) + [Path(p) for _, p in export], force)  # before grading, not after
    if merge is not None:
        shards = list(merge) or sorted((out / "shards").glob("shard-*-of-*.json"))
        rows, fingerprint = read_shards(shards)
        if fingerprint != seed_fingerprint(seed):
            raise ValueError("the shards were graded with another secret seed than this course's")
        for row in rows:  # a shard file names the feedback pages: its ids must not leave `out`
            check_name(row.student, "student")
            check_name(row.lesson, "lesson")
    else:
        caps = capabilities()
        say(f"sandbox: processes: {caps['processes']}; ipc: {caps['ipc']}; network: {caps['network']}; "
            f"files: {caps['files']}")
        tasks = find_tasks(course, lessons=lessons, students=students, shard=shard)
        bar = _progress_bar(len({t.student for t in tasks}), progress)
        with warden.own_keras_home(), bar:  # hidden: the results folder too (an earlier run's grades and feedback)
            rows = grade_tasks(tasks, seed, jobs=jobs, timeout=timeout, memory_mb=memory_mb,
                               hide=[course, *([out] if out.exists() else [])], on_student=bar.update, warm=warm)
        if shard is not None:
            mask = os.umask(0o077)
            try:
                say(f"wrote {write_shard(rows, out, shard, seed=seed, force=force)}")
            finally:
                os.umask(mask)
            return rows
    mask = os.umask(0o077)  # results readable by the instructor only, never by a later run's children
    try:
        publish(course, out, rows, seed=seed, keep_others=bool(students) and merge is None, gradebook=gradebook,
                export=export, force=force, say=say)
    finally:
        os.umask(mask)
    return rows


def _progress_bar(students: int, show: bool):
    """A tqdm bar over the students with the time left, on stderr and only when it is a terminal."""
    from tqdm import tqdm

    return tqdm(total=students, unit="student", file=sys.stderr, dynamic_ncols=True,
                disable=not (show and sys.stderr.isatty()))


@dataclasses.dataclass(frozen=True)
class Task:
    """One notebook to grade (``path`` may not exist: then every exercise is missing)."""

    student: str
    lesson: str
    path: Path


def find_tasks(course_dir, *, lessons=None, students=None, shard: tuple[int, int] | None = None) -> list[Task]:
    """Every (student, lesson) notebook to grade, sorted; a shard ``(i, n)`` keeps students i, i + n, ...

    Args:
        course_dir: the nbgrader course folder (with ``submitted/``).
        lessons: lesson ids to grade (default: every lesson of ``mnistloc.checks``).
        students: student ids to grade (default: every folder in ``submitted/``).
        shard: ``(i, n)`` with ``0 <= i < n``: grade only one n-th of the students.

    Raises:
        ValueError: no ``submitted/`` folder, an unknown lesson, or a bad shard.
    """
    submitted = Path(course_dir) / "submitted"
    for name in students or ():
        check_name(name, "student")
    if not submitted.is_dir():
        raise ValueError(f"`course_dir` should hold nbgrader's submitted/<student>/<lesson>/ folders; "
                         f"there is no {submitted}")
    lessons = list(lessons or LESSONS)
    unknown = sorted(set(lessons) - set(LESSONS))
    if unknown:
        raise ValueError(f"`lesson` should be one of {list(LESSONS)}. Got {unknown}.")
    names = sorted(students or (check_name(p.name, "student") for p in submitted.iterdir() if p.is_dir()))
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"`shard` should be I/N with 0 <= I < N. Got {i}/{n}.")
        names = names[i::n]
    return [Task(s, lesson, submitted / s / lesson / f"{lesson}.ipynb") for s in names for lesson in lessons]


MAX_NOTEBOOK = 256 * 1024 * 1024  # bytes of a submitted notebook: outputs (pictures) are never a reason to refuse it
READ_TIMEOUT = 30  # seconds to read one


def check_name(name, what: str) -> str:
    """Returns ``name`` when it is safe as one folder name (a student id or a lesson), else raises.

    Raises:
        ValueError: not ``launcher.plain_id``: empty, ``.`` or ``..``, over ``MAX_NAME`` characters, or holding a
            path separator, a control or a bidirectional character; the message names ``what``.
    """
    if not plain_id(name):
        shown = str(name)[:120].encode("unicode_escape").decode("ascii")
        raise ValueError(f"`{what}` should be a plain folder name (no '/', no '..', no control or bidirectional "
                         f"characters, at most {MAX_NAME} characters). Got {what}='{shown}'.")
    return name


def read_submission(path: Path, root: Path) -> bytes:
    """The bytes of a submitted notebook, read only if it is a regular file with one link inside ``root``
    (``launcher.open_regular``: no link followed, no FIFO or device read), at most ``MAX_NOTEBOOK`` bytes within
    ``READ_TIMEOUT`` seconds.

    Raises:
        ValueError: not a regular file, outside ``root``, too large or too slow; the message says which.
    """
    try:
        fd = open_regular(path, root, MAX_NOTEBOOK)
    except Refused as refusal:
        raise ValueError(str(refusal)) from None
    try:
        chunks, size, end = [], 0, time.monotonic() + READ_TIMEOUT
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_NOTEBOOK or time.monotonic() > end:
                raise ValueError(f"{path.name} is larger than {MAX_NOTEBOOK} bytes or took over {READ_TIMEOUT} s")
        return b"".join(chunks)
    finally:
        os.close(fd)


def grade_tasks(tasks: list[Task], seed: int, *, jobs: int = 1, timeout: float = 60, memory_mb: int = 4096,
                hide=(), on_student=None, warm: bool | None = None) -> list[Row]:
    """Grades every task, ``jobs`` students at a time; rows in the order of ``tasks``; ``on_student()`` is
    called as each student is done (a progress bar); ``warm`` as ``grade_course``.

    A student's lessons share one sandbox child, restarted after a timeout or crash; students
    never share one. With more than one student, each grading process forks its children
    from one warm parent (``warm_parent``), so TensorFlow is imported once per process, not
    once per student.
    """
    limits = {"timeout": timeout, "memory_mb": memory_mb, "hide": [str(p) for p in hide]}
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.student, []).append(task)
    units = list(groups.values())
    # One student: a fresh child costs the same as a warm parent, and imports TensorFlow only when it needs it.
    limits["warm"] = len(units) > 1 if warm is None else bool(warm)
    # As root, each student's child runs as a uid of its own, never reused within the batch.
    uids = warden.fresh_uids(len(units)) if os.geteuid() == 0 else [None] * len(units)
    tick = on_student or (lambda: None)
    done = []
    if jobs <= 1 or len(units) <= 1:
        try:
            for unit, uid in zip(units, uids):
                done.append(grade_student(unit, seed, uid=uid, **limits))
                tick()
        finally:
            warm_parent.close_shared()
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=warden.limit_grader) as pool:
            futures = [pool.submit(grade_student, unit, seed, uid=uid, **limits) for unit, uid in zip(units, uids)]
            for future in futures:
                future.add_done_callback(lambda _: tick())
            for unit, uid, future in zip(units, uids, futures):
                try:
                    done.append(future.result())
                except BrokenProcessPool:  # a worker was killed from outside (the OOM killer): grade here
                    done.append(grade_student(unit, seed, uid=uid, **limits))
                except Exception as err:  # noqa: BLE001 - whatever broke in its worker costs this student only
                    done.append(_overran(unit, err))
    by_task = {(r.student, r.lesson): [] for r in (row for rows in done for row in rows)}
    for row in (row for rows in done for row in rows):
        by_task[(row.student, row.lesson)].append(row)
    return [row for task in tasks for row in by_task[(task.student, task.lesson)]]


def grade_notebook(task: Task, seed: int, *, timeout: float = 60, memory_mb: int = 4096, hide=()) -> list[Row]:
    """Grades one notebook: its lesson's exercises, each full points or 0 with the reason."""
    return grade_student([task], seed, timeout=timeout, memory_mb=memory_mb, hide=hide)


def grade_student(tasks: list[Task], seed: int, *, timeout: float = 60, memory_mb: int = 4096,
                  hide=(), uid: int | None = None, warm: bool = False) -> list[Row]:
    """Grades notebooks of one student in one sandbox run (as ``uid``, when root), through ``judge.grade_answers``;
    reads their bytes only, never writes them. Whatever goes wrong in this process while grading them (a
    ``MemoryError`` or ``RecursionError`` from what the child sent) costs this student only. ``warm``: fork the
    child from this process's warm parent (``sandbox.run_exercises``)."""
    read = [_read_task(task) for task in tasks]
    batch = [(answers, hidden_seed(seed, task.student)) for task, answers in zip(tasks, read)
             if isinstance(answers, judge.Answers)]  # hidden cases of this student's own
    warming = _warm_keras_here([n for answers, _ in batch for n in answers.sources])
    try:
        graded = iter(judge.grade_answers(batch, timeout=timeout, memory_mb=memory_mb, hide=hide, uid=uid,
                                          warm=warm))
    except (MemoryError, RecursionError) as err:
        return _overran(tasks, err)
    finally:
        if warming is not None:
            warming.join()  # never import Keras from two threads at once
    rows = []
    for task, answers in zip(tasks, read):
        if not isinstance(answers, judge.Answers):
            rows += answers  # the rows of a notebook that could not be read
            continue
        rows += [Row.of(task.student, task.lesson, r) for r in next(graded)]
        rows += _written_answers(task, [name for name in questions_of(task.lesson) if name in answers.grade_ids])
    return rows


def _overran(tasks: list[Task], err: BaseException) -> list[Row]:
    """0 points, status ``crash``, for every exercise of a student whose grading failed in the grader itself."""
    reason = f"grading it overran the grader ({type(err).__name__})"
    return [Row.of(t.student, t.lesson, judge.blocked(EXERCISES[n], "crash", reason)) for t in tasks
            for n in exercises_of(t.lesson)]


def _read_task(task: Task) -> judge.Answers | list[Row]:
    """The answers of one notebook, or the rows that give every exercise 0 with the reason when there are none
    (not submitted, or not readable)."""
    if not task.path.exists() and not task.path.is_symlink():
        reason = _other_notebooks(task)
        return [Row.of(task.student, task.lesson, judge.blocked(EXERCISES[n], "not-submitted", reason))
                for n in exercises_of(task.lesson)]
    try:
        data = read_submission(task.path, task.path.parents[2])  # a regular file in submitted/, of sane size
        return judge.read_answers(task.path, lesson=task.lesson, data=data)  # those bytes, never the file again
    except Exception as err:  # noqa: BLE001 - one odd notebook must not stop the class (MemoryError included)
        reason = f"the grader could not read this notebook ({type(err).__name__}: {err})"[:500]
        return [Row.of(task.student, task.lesson, judge.blocked(EXERCISES[n], "unreadable", reason))
                for n in exercises_of(task.lesson)]


def _written_answers(task: Task, names: list[str]) -> list[Row]:
    """A ``manual`` row, 0 automatic points, for each written question ``names`` (those whose answer cell the
    notebook holds): the instructor scores it in formgrader."""
    return [Row(task.student, task.lesson, name, 0, 0, "manual",
                f"written answer ({QUESTIONS[name].points} points): graded by hand in formgrader")
            for name in names]


def _warm_keras_here(names: list[str]):
    """Starts importing Keras (and the reference models) in a thread while the child runs, when a model
    exercise will be judged here; returns the thread to join before judging, or None."""
    if not any(getattr(EXERCISES[n], "keras", False) for n in names):
        return None
    thread = threading.Thread(target=lambda: (getattr(keras, "Model"), importlib.import_module("mnistloc.models")),
                              daemon=True)
    thread.start()
    return thread


def _other_notebooks(task: Task) -> str:
    folder = task.path.parent
    others = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if others:
        return (f"no {task.path.name} in submitted/{task.student}/{task.lesson}/ (found {', '.join(others)}): "
                f"nbgrader grades only {task.path.name}; rename it back")
    return f"no submission: submitted/{task.student}/{task.lesson}/{task.path.name} does not exist"
