"""Hints: each names only the mistake it describes, and none hands over the answer line."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from mnistloc.grading import judge
from mnistloc.grading.registry import EXERCISES, LESSONS

REPO = Path(__file__).resolve().parents[1]
MINE = ("place_digit", "tight_box", "union_box", "one_hot", "order_left_to_right", "iou", "average_precision",
        "match_detections", "masked_box_loss", "focal_loss", "iou_loss", "classic_model", "heatmap_targets",
        "box_targets", "boxes_from_cells", "find_peaks", "nms", "bump_sigmas", "detector_targets", "detect_digits")
FAST = [n for n in MINE if not EXERCISES[n].keras]


@pytest.mark.parametrize("name", FAST)
def test_every_catalogued_mistake_against_every_hint_of_its_exercise(name):
    """On the public case where mistake i first fails, no other mistake gives its output, unless it is
    listed after i (the judge takes the first match): so hint j never fires for mistake i. A difference and a
    match are the judge's own (``Exercise.difference``, ``Exercise.gives``: a float of another width counts where
    the exercise promises float32)."""
    ex = EXERCISES[name]
    cases = ex.cases(None)
    outputs = [[ex.call(wrong, c) for c in cases] for _, wrong in ex.mistakes]  # [mistake][case]
    expected = [ex.expected(c) for c in cases]
    for i, (hint, _) in enumerate(ex.mistakes):
        first = next(k for k, e in enumerate(expected) if ex.difference(outputs[i][k], e) is not None)
        fires = [j for j in range(len(ex.mistakes)) if ex.gives(outputs[i][first], outputs[j][first], expected[first])]
        assert fires[0] == i, (f"mistake {i} ({hint[:50]}) gets hint {fires[0]} "
                               f"({ex.mistakes[fires[0]][0][:50]}) on case {first}")


def _code_pieces(text: str) -> list[str]:
    """The statements and assignment sides of ``text``'s code lines, whitespace and quote style removed."""
    out = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        out += [_norm(p) for p in re.split(r"(?<![=<>!+\-*/])=(?!=)", line) if len(_norm(p)) >= 14]
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).replace('"', "'")


def _answer_lines() -> dict:
    """Each exercise's solution lines (the solution notebooks) and its reference's source lines."""
    from mnistloc.grading import reveal

    lines = {}
    for lesson in LESSONS:
        for name, src in judge.read_answers(REPO / "solutions" / lesson / f"{lesson}.ipynb").sources.items():
            body = src.split("### BEGIN SOLUTION")[-1].split("### END SOLUTION")[0]
            lines[name] = _code_pieces(body)
    for name in FAST:
        body = inspect.getsource(reveal._reference_function(EXERCISES[name]))
        lines[name] = lines.get(name, []) + _code_pieces(body.split('"""')[-1])
    return lines


def _lesson_text() -> str:
    """Everything the released lessons say (markdown and stubs): what a hint may repeat."""
    text = ""
    for lesson in LESSONS:
        nb = json.loads((REPO / "lessons" / lesson / f"{lesson}.ipynb").read_text())
        text += "".join("".join(c["source"]) for c in nb["cells"])
    return _norm(text)


def _hints(ex) -> list[str]:
    return [h for h, _ in ex.mistakes] + [p.text for p in ex.properties]


def _slices_with(params, hint: str) -> list[str]:
    """Subscripts in ``hint`` whose index uses one of the function's parameters: code that places the answer."""
    return [m for m in re.findall(r"\w+\[[^\]]*\]", hint)
            if any(re.search(rf"\b{re.escape(p)}\b", m.split("[", 1)[1]) for p in params)]


def test_the_answer_line_detector_sees_the_former_place_digit_hint():
    former = "x is the column and y the row: the digit goes to canvas[y:y + 28, x:x + 28] (x and y swapped)."
    assert _slices_with(["canvas", "digit", "x", "y"], former) == ["canvas[y:y + 28, x:x + 28]"]


@pytest.mark.parametrize("name", MINE)
def test_no_hint_hands_over_the_answer_line(name):
    ex, lines, lesson = EXERCISES[name], ANSWERS.get(name, []), LESSON_TEXT
    params = list(inspect.signature(ex.reference).parameters) if not ex.keras else ["y_true", "y_pred"]
    for hint in _hints(ex):
        assert not _slices_with([p for p in params if p not in ("y_true", "boxes", "mask")], hint), hint
        leaked = [piece for piece in lines if piece in _norm(hint) and piece not in lesson]
        assert not leaked, (hint, leaked)


ANSWERS = _answer_lines()
LESSON_TEXT = _lesson_text()
