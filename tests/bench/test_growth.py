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
    assert growth.growth(small, large) == {("user_id", "cold"): 1.2, ("user_id", "warm"): 1.5}
    paths = []
    for name, report in (("small", small), ("large", large)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report))
    assert growth.main([str(path) for path in paths]) == 0
    out = capsys.readouterr().out
    assert "p50 at 1,000,000 users / p50 at 10,000 users" in out
    assert "median 1.35, worst 1.50 (target: every lookup <= 1.2): MISSED" in out


def test_reports_without_common_lookups_are_an_error(tmp_path):
    paths = []
    for name, p50s in (("a", {("user_id", "warm"): 1.0}), ("b", {("character_id", "warm"): 1.0})):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_report(10, p50s)))
    assert growth.main([str(path) for path in paths]) == 1
