"""bench.growth compares lookup p50s between two benchmark reports of different sizes."""

import json

from bench import growth


def _report(users: int, p50s: dict) -> dict:
    runs = [
        {"app": "questdb", "group": "point", "scenario": scenario, "state": state, "latency_ms": {"p50": p50}}
        for (scenario, state), p50 in p50s.items()
    ]
    runs += [
        {"app": "naive", "group": "point", "scenario": "user_id", "state": "cold", "latency_ms": {"p50": 99.0}},
        {"app": "questdb", "group": "write", "scenario": "character_patch", "state": "-", "latency_ms": {"p50": 9.0}},
    ]
    return {"dataset": {"users": users}, "results": runs}


def test_growth_is_the_ratio_of_questdb_lookup_p50s(tmp_path, capsys):
    small = _report(10_000, {("user_id", "cold"): 10.0, ("user_id", "warm"): 4.0, ("session_lookup", "warm"): 5.0})
    large = _report(1_000_000, {("user_id", "cold"): 12.0, ("user_id", "warm"): 6.0, ("character_id", "warm"): 1.0})
    assert growth.growth([small], [large]) == {("user_id", "cold"): 1.2, ("user_id", "warm"): 1.5}
    paths = []
    for name, report in (("small", small), ("large", large)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report))
    assert growth.main([str(path) for path in paths]) == 0
    out = capsys.readouterr().out
    assert "p50 at 1,000,000 users / p50 at 10,000 users (1 over 1 report(s))" in out
    assert "median 1.35, worst 1.50 (target: every lookup <= 1.2): MISSED" in out


def test_reports_without_common_lookups_are_an_error(tmp_path):
    paths = []
    for name, p50s in (("a", {("user_id", "warm"): 1.0}), ("b", {("character_id", "warm"): 1.0})):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_report(10, p50s)))
    assert growth.main([str(path) for path in paths]) == 1


def test_several_reports_of_a_size_count_by_their_median_p50(tmp_path, capsys):
    smalls = [_report(10_000, {("user_id", "warm"): p50}) for p50 in (4.0, 40.0, 5.0)]  # one noisy run
    larges = [_report(1_000_000, {("user_id", "warm"): p50}) for p50 in (5.0, 4.5)]
    assert growth.growth(smalls, larges) == {("user_id", "warm"): 4.75 / 5.0}
    paths = {}
    for name, report in [*((f"s{i}", r) for i, r in enumerate(smalls)), *((f"l{i}", r) for i, r in enumerate(larges))]:
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report))
    small_arg = ",".join(str(paths[f"s{i}"]) for i in range(3))
    large_arg = ",".join(str(paths[f"l{i}"]) for i in range(2))
    assert growth.main([small_arg, large_arg]) == 0
    assert "(2 over 3 report(s))" in capsys.readouterr().out
    assert growth.main([f"{small_arg},{paths['l0']}", large_arg]) != 0  # one side mixes two sizes
