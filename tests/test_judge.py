"""The one judge: ``compare``'s boundaries, every registered mistake named by its own hint, and the statuses and
hints that every front end (check, test cells, ``mnistloc grade``, pytest) shares."""
from __future__ import annotations

import numpy as np
import pytest

from mnistloc.grading import judge
from mnistloc.grading.check import check
from mnistloc.grading.exercises.outputs import compare, reduce
from mnistloc.grading.registry import EXERCISES
from mnistloc.grading.sandbox import Outcome


def _differ(got, expected) -> bool:
    return compare(reduce(got), reduce(expected)) is not None


# ---- compare: where "the same" ends -----------------------------------------------------------------
# The tolerance is rtol=1e-4, atol=1e-5: for an expected value of 1.0, |got - 1| <= 1e-5 + 1e-4 * 1 = 1.1e-4.

def test_a_relative_error_of_1e_3_differs_and_1e_6_does_not():
    expected = np.float32([1.0, 0.25, 40.0])
    assert _differ(expected * (1 + 1e-3), expected)  # 1e-3 * 40 = 0.04 > 1e-5 + 1e-4 * 40 = 0.00401
    assert not _differ(expected * (1 + 1e-6), expected)
    assert _differ(np.float64(0.5 * (1 + 1e-3)), 0.5)  # numbers too: 5e-4 > 1e-5 + 5e-5
    assert not _differ(0.5 * (1 + 1e-6), 0.5)


def test_nan_where_a_number_is_expected_differs_and_says_so_even_for_hidden_cases():
    public, secret = compare(reduce(np.float32([0.5, np.nan])), reduce(np.float32([0.5, 0.0])))
    assert "expected" in public and "NaN where a number is expected" in secret and "0." not in secret
    assert not _differ(np.float32([np.nan]), np.float32([np.nan]))  # NaN where NaN is expected is the same
    assert _differ(np.float32([0.0]), np.float32([np.nan]))


def test_integer_widths_are_interchangeable_but_uint8_and_float_kinds_are_strict():
    assert not _differ(np.int32([1, 2]), np.int64([1, 2]))
    assert not _differ(np.float32([1, 2]), np.float64([1, 2]))
    problem = compare(reduce(np.int64([[0, 255]])), reduce(np.uint8([[0, 255]])))
    assert problem is not None and "dtype int64" in problem[0] and "uint8" in problem[0]
    assert _differ(np.float32([1, 2]), np.int64([1, 2]))  # a float where integers are expected
    assert _differ(np.int64([1, 2]), np.float32([1, 2]))  # and integers where floats are expected


def test_float_widths_are_strict_only_where_an_exercise_promises_float32():
    union, iou = EXERCISES["union_box"], EXERCISES["iou"]
    case = union.cases(None)[0]
    right = union.call(union.reference, case)
    wide = {**right, "value": right["value"].astype(np.float64)}
    assert union.difference(wide, union.expected(case))[0] == "the result has dtype float64; it should be float32"
    assert union.difference(right, union.expected(case)) is None
    pair = iou.cases(None)[0]
    assert iou.difference(reduce(np.float64(iou.call(iou.reference, pair)["value"])), iou.expected(pair)) is None
    hint = check("union_box", lambda boxes, mask: union.reference(boxes, mask).astype(np.float64)).hint
    assert "float32" in hint and "float64" in hint


def test_a_list_may_stand_for_a_tuple_but_not_for_an_array_and_lengths_must_match():
    expected = (np.float32([1]), np.int64([2]))
    assert not _differ([np.float32([1]), np.int64([2])], expected)
    assert "should have 2 items; got 1" in compare(reduce([np.float32([1])]), reduce(expected))[0]
    assert "should be a numpy array" in compare(reduce([1.0, 2.0]), reduce(np.float32([1, 2])))[0]


def test_dict_keys_must_match_exactly_in_any_order():
    expected = {"map": 0.5, "map50": 1.0}
    assert not _differ({"map50": 1.0, "map": 0.5}, expected)
    assert "should have keys ['map', 'map50']; got ['map']" in compare(reduce({"map": 0.5}), reduce(expected))[0]
    assert _differ({"map": 0.5, "map50": 1.0, "extra": 0.0}, expected)
    assert compare(reduce({"map": 0.5, "map50": 0.9}), reduce(expected))[0].startswith("map50 is 0.9")


def test_shapes_and_booleans_are_compared_before_values():
    assert "shape (1, 4)" in compare(reduce(np.zeros((1, 4))), reduce(np.zeros(4)))[0]
    assert _differ(True, False) and not _differ(np.bool_(True), True)


# ---- every registered mistake is rejected, with its own hint ---------------------------------------

MISTAKES = [(name, i) for name, ex in EXERCISES.items() for i in range(len(ex.mistakes))]


@pytest.mark.parametrize("name,i", MISTAKES, ids=[f"{n}-{i}" for n, i in MISTAKES])
def test_each_registered_mistake_fails_with_its_own_hint(name, i):
    hint, wrong = EXERCISES[name].mistakes[i]
    result = check(name, wrong)
    assert (result.points, result.status) == (0, "failed")
    assert result.hint == f"{name}: {hint}"


def test_every_exercise_registers_mistakes():
    assert all(len(ex.mistakes) >= 2 for ex in EXERCISES.values()), {n: len(e.mistakes) for n, e in EXERCISES.items()}


# ---- judge: statuses and hints -----------------------------------------------------------------------

IOU = EXERCISES["iou"]


def _trials(func, secret=False, seed=None):
    public = IOU.cases(None)
    cases = public if seed is None else IOU.cases(seed)[len(public):]
    return [(c, secret, Outcome("iou", "ok", IOU.call(func, c))) for c in cases]


def test_judge_gives_full_points_only_when_every_case_matches():
    assert judge.judge(IOU, _trials(IOU.reference)) == judge.Result("iou", 3, 3, "passed", "")
    trials = _trials(IOU.reference)
    trials[-1] = (trials[-1][0], False, Outcome("iou", "ok", IOU.call(lambda a, b: np.zeros(len(a)), trials[-1][0])))
    result = judge.judge(IOU, trials)  # only the last case is wrong: still 0
    assert (result.points, result.status, result.passed) == (0, "failed", False)


def test_sandbox_statuses_become_the_same_worded_hints_everywhere():
    case = IOU.cases(None)[0]
    for status, message, phrase in [("timeout", "took longer than the time limit", "took too long"),
                                    ("error", "SyntaxError: invalid syntax", "does not run: SyntaxError"),
                                    ("crash", "killed by signal SIGKILL", "process died"),
                                    ("forbidden", "imports the reference", "calls the mnistloc reference"),
                                    ("missing", "no cell defines `iou`", "no answer cell defines it")]:
        result = judge.judge(IOU, [(case, False, Outcome("iou", status, message))])
        assert (result.status, result.points) == (status, 0)
        assert result.hint.startswith("iou: ") and phrase in result.hint and message in result.hint


def test_a_malformed_result_from_the_child_fails_without_raising():
    case = IOU.cases(None)[0]
    result = judge.judge(IOU, [(case, False, Outcome("iou", "ok", {"no": "type"}))])
    assert result.status == "failed" and "could not be checked (KeyError)" in result.hint


def test_hidden_case_hints_never_show_expected_values():
    result = judge.judge(IOU, _trials(lambda a, b: np.full(len(a), 0.5), secret=True, seed=5))
    assert "hidden test case" in result.hint and "expected" not in result.hint


def test_blocked_exercises_score_zero_with_a_prefixed_reason_and_a_known_status():
    result = judge.blocked(IOU, "duplicated", "the graded cell 'iou' appears 2 times")
    assert result == judge.Result("iou", 0, 3, "duplicated", "iou: the graded cell 'iou' appears 2 times")
    assert result.to_dict() == {"name": "iou", "points": 0, "max_points": 3, "passed": False,
                                "status": "duplicated", "hint": result.hint}
    with pytest.raises(ValueError, match="status"):
        judge.blocked(IOU, "passed", "")
