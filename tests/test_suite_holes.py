"""Bugs an injected-bug probe showed the suite missing (issue 18), outside the checks' own test files."""
from __future__ import annotations

import json

import numpy as np
from course import release

from mnistloc import canvas
from mnistloc.grading import judge, leaderboard


def test_the_leaderboards_hidden_canvases_use_held_out_digits():
    """Same recipe and seed as ``hidden_canvases``; only the split differs: the test one must be what it makes."""
    got = leaderboard.hidden_canvases(3, 4)
    rng = lambda: np.random.default_rng([3, 5, 0x1eade])  # noqa: E731 - the seed hidden_canvases documents
    held_out = canvas.make_dataset(5, 4, seed=rng(), split="test")
    training = canvas.make_dataset(5, 4, seed=rng(), split="train")
    assert np.array_equal(got.images, held_out.images)
    assert not np.array_equal(got.images, training.images)


def test_a_duplicated_answer_cell_is_not_graded_from_its_first_copy(tmp_path):
    lesson = "01-single-digit"
    nb = json.loads(release(lesson).read_text())
    (i,) = [k for k, c in enumerate(nb["cells"]) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "iou"]
    right = json.loads(json.dumps(nb["cells"][i]))
    right["source"] = "def iou(a, b):\n    return np.zeros(len(a))\n"  # the first copy: what a bug would grade
    nb["cells"].insert(i, right)
    path = tmp_path / f"{lesson}.ipynb"
    path.write_text(json.dumps(nb))
    answers = judge.read_answers(path)
    assert "iou" not in answers.sources and answers.blocked["iou"][0] == "duplicated"
    (result,) = [r for r in judge.plan(answers, None, only=["iou"]).finish([]) if r.name == "iou"]
    assert (result.status, result.points) == ("duplicated", 0)
