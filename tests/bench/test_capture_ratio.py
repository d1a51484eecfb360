"""bench.runner.capture_ratio: capture's cost as the median over back-to-back pairs of phases."""

import pytest

from bench.runner import capture_ratio


def _runs(topology: str, rows_per_second: list[tuple[float, float]]) -> list[dict]:
    runs = []
    for on, off in rows_per_second:
        runs += [
            {"topology": topology, "capture": "on", "rate": on, "cpu": {"total": 1e6 / on if on else None}},
            {"topology": topology, "capture": "off", "rate": off, "cpu": {"total": 1e6 / off if off else None}},
        ]
    return runs


def test_one_phase_slowed_by_something_else_moves_one_pair_not_the_figure():
    # Pairs at 0.9, 0.8 and one whose "off" phase met a burst of other load (0.9 / 0.45 = 2.0).
    runs = _runs("shared", [(900, 1000), (800, 1000), (900, 450)])
    assert capture_ratio(runs, "shared", lambda run: run["rate"]) == 0.9
    # The mean of the phases, as the benchmark reported before, would say 866.7 / 816.7 = 1.06.
    assert capture_ratio(runs, "shared", lambda run: 1 / run["cpu"]["total"]) == 0.9


def test_pairs_are_taken_within_their_core_layout_and_empty_phases_are_left_out():
    runs = _runs("shared", [(900, 1000)]) + _runs("split", [(700, 1000), (0, 0), (800, 1000)])
    assert capture_ratio(runs, "shared", lambda run: run["rate"]) == 0.9
    assert capture_ratio(runs, "split", lambda run: run["rate"]) == 0.75  # the pair that wrote nothing is skipped
    assert capture_ratio(runs, "split", lambda run: 1 / run["cpu"]["total"]) == 0.75
    assert capture_ratio(runs, "none", lambda run: run["rate"]) is None


def test_phases_out_of_order_are_refused():
    runs = _runs("shared", [(900, 1000)])
    runs.reverse()
    with pytest.raises(AssertionError):
        capture_ratio(runs, "shared", lambda run: run["rate"])
