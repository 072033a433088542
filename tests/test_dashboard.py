"""The class dashboard (``class.html``) on a graded class with known mistakes: every count, the escaping, the
links and pictures, a shard merge rebuilding it, and the progress bar of the class run."""
from __future__ import annotations

import fcntl
import html
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from pages import parse_page

import classroom
from classroom import HOSTILE, LESSON
from mnistloc.grading import dashboard
from mnistloc.grading.exercises.base import mistake_id
from mnistloc.grading.registry import EXERCISES, exercises_of
from mnistloc.grading.results import Row, read_results

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("classroom")]

POINTS = {name: EXERCISES[name].points for name in classroom.NUMPY}
IOU_UNCLAMPED = mistake_id("iou", EXERCISES["iou"].mistakes[0][0])  # the first catalogued iou mistake
TIGHT_INCLUSIVE = mistake_id("tight_box", next(h for h, _ in EXERCISES["tight_box"].mistakes if "off by one" in h))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    course = classroom.make_class(tmp_path_factory.mktemp("dashboard"))
    classroom.grade(course)
    return course / "mnistloc_grades"


@pytest.fixture(scope="module")
def lesson(graded) -> dashboard.LessonSummary:
    (only,) = dashboard.class_summary(read_results(graded)[0])
    return only


def _exercise(lesson, name) -> dashboard.ExerciseSummary:
    return next(ex for ex in lesson.exercises if ex.name == name)


def test_the_ids_of_the_mistakes_are_those_of_the_catalogue(graded):
    rows = read_results(graded)[0]
    assert {r.mistake for r in rows if r.student == "cy"} - {""} == {IOU_UNCLAMPED, TIGHT_INCLUSIVE}
    assert IOU_UNCLAMPED.startswith("iou:overlap-not-clamped-at-zero-")


def test_each_exercise_counts_its_statuses_pass_rate_and_hidden_failures(lesson):
    # 7 students, eve submitted nothing: 6 notebooks. See classroom.CLASS for who does what.
    assert lesson.students == 7 and len(lesson.scores) == 6
    iou, tight, place = (_exercise(lesson, n) for n in ("iou", "tight_box", "place_digit"))
    assert iou.statuses == {"passed": 2, "failed": 4, "not-submitted": 1}  # ada, dee | ben, cy, HOSTILE, hal
    assert iou.pass_rate == pytest.approx(2 / 6)
    assert iou.hidden_failures == 1 and iou.unnamed_failures == 1  # hal: right on the public cases only
    assert tight.statuses == {"passed": 4, "failed": 2, "not-submitted": 1} and tight.pass_rate == pytest.approx(4 / 6)
    assert place.statuses == {"passed": 5, "crash": 1, "not-submitted": 1} and place.hidden_failures == 0
    head = _exercise(lesson, next(n for n in exercises_of(LESSON) if EXERCISES[n].keras))  # the first model one
    assert head.stubs == 6 and head.unnamed_failures == 0 and head.mistakes == ()  # nobody wrote it
    written = [ex for ex in lesson.exercises if ex.written]
    assert written and all(ex.pass_rate is None and ex.statuses == {"manual": 6} for ex in written)


def test_named_mistakes_list_who_made_them_most_common_first(lesson):
    (iou,) = _exercise(lesson, "iou").mistakes
    assert (iou.id, iou.count, iou.students) == (IOU_UNCLAMPED, 3, tuple(sorted(["ben", "cy", HOSTILE])))
    assert iou.hint == EXERCISES["iou"].mistakes[0][0]  # the catalogued hint, without the exercise's name
    (tight,) = _exercise(lesson, "tight_box").mistakes
    assert (tight.id, tight.students) == (TIGHT_INCLUSIVE, ("cy", "dee"))


def test_scores_per_student_and_the_trouble_list(lesson):
    p, t, i = POINTS["place_digit"], POINTS["tight_box"], POINTS["iou"]
    assert lesson.scores == {"ada": p + t + i, "ben": p + t, "cy": p, "dee": p + i, HOSTILE: t, "hal": p + t}
    assert dashboard.most_trouble([lesson]) == [(LESSON, "place_digit", {"crash": 1})]


def test_mistakes_sort_by_count_then_id():
    rows = [Row(s, "L", "iou", 0, 3, "failed", f"iou: {h}", m) for s, h, m in
            [("a", "x", "iou:b"), ("b", "y", "iou:a"), ("c", "x", "iou:b"), ("d", "z", "iou:c")]]
    (ls,) = dashboard.class_summary(rows)
    assert [(m.id, m.count) for m in ls.exercises[0].mistakes] == [("iou:b", 2), ("iou:a", 1), ("iou:c", 1)]


def test_score_bins_one_point_each_up_to_20_else_ten_bins():
    assert dashboard.score_bins([0, 2, 2, 5], 5) == [(0, 0, 1), (1, 1, 0), (2, 2, 2), (3, 3, 0), (4, 4, 0),
                                                      (5, 5, 1)]
    bins = dashboard.score_bins([0, 3, 4, 37], 37)  # 38 possible totals in 10 bins: width ceil(38 / 10) = 4
    assert bins[0] == (0, 3, 2) and bins[1] == (4, 7, 1) and bins[-1] == (36, 37, 1) and len(bins) == 10


def test_every_student_string_is_escaped_and_shown_as_text(graded):
    text = (graded / "class.html").read_text()
    assert HOSTILE not in text and "<img src=x" not in text and html.escape(HOSTILE) in text
    assert HOSTILE in "".join(parse_page(graded / "class.html").text)  # the parsed page shows the id itself


def test_links_and_pictures_resolve_and_the_histogram_numbers_are_beside_it(graded, lesson):
    page = graded / "class.html"
    targets = set()
    for link in parse_page(page).links:
        url = urlparse(link)
        assert not url.scheme and not url.netloc and not url.query and not url.fragment, link
        target = (page.parent / unquote(url.path)).resolve()
        assert target.is_relative_to(graded.resolve()) and target.is_file(), link
        targets.add(target.relative_to(graded.resolve()).as_posix())
    assert {f"feedback/{s}/{LESSON}.html" for s in ("ben", "cy", "dee", HOSTILE)} <= targets
    assert "class/scores-0.png" in targets
    assert (graded / "class" / "scores-0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    for lo, hi, n in dashboard.score_bins(list(lesson.scores.values()), lesson.max_points):
        if n:
            assert f"<td class='num'>{lo}</td><td class='num'>{n}</td>" in text


def _run_on_a_terminal(cmd: list[str]) -> tuple[int, str, str]:
    """Runs ``cmd`` with stderr on a pseudo-terminal (as in an instructor's shell); returns code, stdout, stderr."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal's 24 x 120
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=child, text=True,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = proc.stdout.read()
    os.close(main)
    return proc.wait(), out, b"".join(chunks).decode(errors="replace")


def test_a_shard_merge_rebuilds_the_same_dashboard_and_the_bar_shows_only_on_a_terminal(graded, tmp_path):
    course = graded.parent
    out = tmp_path / "sharded"
    base = [sys.executable, "-m", "mnistloc", "grade", str(course), "--lesson", LESSON, "--jobs", "2",
            "--timeout", "30", "--out", str(out), "--no-gradebook"]
    code, _, terminal = _run_on_a_terminal(base + ["--shard", "0/2"])
    assert code == 0
    # tqdm's bar: students done of the shard's 4 (sorted ids 0, 2, 4, 6), and the time left after '<'.
    assert re.search(r"4/4 \[\d\d:\d\d<00:00", terminal), terminal[-500:]
    quiet = classroom.grade(course, "--shard", "1/2", out=out)
    assert quiet.stderr == ""  # not a terminal: no bar
    classroom.grade(course, "--merge", out=out)
    assert json.loads((out / "grades.json").read_text())["rows"] == json.loads((graded / "grades.json").read_text())["rows"]
    assert (out / "class.html").read_text() == (graded / "class.html").read_text()
