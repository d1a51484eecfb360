"""The benchmark's smoke mode: `python -m bench --smoke` runs every scenario on tiny data and writes its report.

It starts its own gunicorn servers and `manage.py grpcserver` against its own database (questdb_bench_smoke, or
BENCH_SMOKE_DATABASE) on the local PostgreSQL primary, the hot standby and Redis (database 14, or
BENCH_REDIS_DB), so it uses no Django test database.
Nothing about speed is asserted: only that every run served requests and wrote the report.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cores
from bench.scenarios import BATCH_SIZE, SCENARIOS

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# Non-2xx answers a scenario may legitimately get: a create can meet a user already at the character limit.
EXPECTED_NON_2XX = {"character_create", "mix"}


def _require(condition, reason):
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_smoke_run_writes_a_report_with_every_scenario(tmp_path):
    _require(shutil.which("wrk"), "wrk is not installed (scripts/services.sh installs it)")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--smoke", "--output", str(tmp_path)),
            *("--database", os.environ.get("BENCH_SMOKE_DATABASE", "questdb_bench_smoke")),
            *("--redis-db", os.environ.get("BENCH_REDIS_DB", "14")),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    for name in ("latest.md", "latest.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(list(tmp_path.glob("2*.json"))) == 1, "a timestamped copy is written too"
    data = json.loads((tmp_path / "latest.json").read_text())
    assert "questdb benchmark" in (tmp_path / "latest.md").read_text()

    runs = {(row["app"], row["scenario"], row["state"]): row for row in data["results"]}
    expected = {(app, s.name, state) for app in ("questdb", "naive") for s in SCENARIOS for state in s.states}
    expected -= {("naive", s.name, state) for s in SCENARIOS if not s.on_naive for state in s.states}
    expected |= {("ceiling", "ceiling", "start"), ("ceiling", "ceiling", "end")}
    expected |= {("grpc", s.name, state) for s in SCENARIOS if s.rpc for state in s.states}
    assert set(runs) == expected
    for key, row in runs.items():
        assert row["rps"] > 0, key
        assert row["socket_errors"] == 0, key
        if row["scenario"] not in EXPECTED_NON_2XX:
            assert row["non_2xx"] == 0, key

    questdb_warm = runs[("questdb", "user_id", "warm")]
    assert questdb_warm["cache_hit_rate"] >= 0.99
    assert questdb_warm["sql_per_request"] < 0.1
    assert runs[("naive", "user_id", "warm")]["sql_per_request"] >= 1
    assert {target["key"] for target in data["targets"]} >= {
        "point_vs_naive",
        "mix_vs_naive",
        "batch_vs_single",
        "point_p99_vs_ceiling",
        "grpc_point_vs_rest",
        "grpc_batch_vs_single",
        "invalidation_p99_ms",
        "capture_ratio",
        "capture_cpu_ratio",
    }

    batch = runs[("questdb", "character_batch", "warm")]
    assert batch["lookups_per_s"] == pytest.approx(batch["rps"] * BATCH_SIZE, rel=0.01)
    assert batch["vs_single"] == pytest.approx(
        batch["lookups_per_s"] / runs[("questdb", "character_id", "warm")]["rps"], rel=0.01
    )
    assert batch["cache_hit_rate"] >= 0.99
    assert batch["sql_per_request"] < 0.1
    assert runs[("questdb", "character_batch", "cold")]["sql_per_request"] <= 1.5  # one query for a batch's misses
    ceiling_p99 = data["ceiling_p99_ms"]
    assert questdb_warm["p99_vs_ceiling"] == pytest.approx(questdb_warm["latency_ms"]["p99"] / ceiling_p99, rel=0.01)
    assert "p99 vs ceiling p99" in (tmp_path / "latest.md").read_text()

    # Invalidation: lag measured under the mix with an external writer, and writes with and without capture.
    figures = data["invalidation"]
    assert figures["external_writes"]["rows"] > 0
    assert figures["lag_ms"]["changes"] >= figures["external_writes"]["rows"]  # every external change reached Redis
    assert figures["lag_ms"]["p50"] is not None
    assert figures["lag_ms"]["p99"] is not None
    topologies = ["shared", "split"] if cores.halves() else ["shared"]
    assert [(run["topology"], run["capture"]) for run in figures["capture_runs"]] == [
        (topology, phase) for topology in topologies for phase in ("on", "off")
    ]
    assert all(run["external_rows_per_second"] > 0 and run["patch"]["rps"] > 0 for run in figures["capture_runs"])
    for ratios in (figures["write_ratio"], figures["cpu_ratio"]):
        assert {topology: set(ratio) for topology, ratio in ratios.items()} == {
            topology: {"questdb_patch", "external"} for topology in topologies
        }
    # CPU per write, by process: the writer's backends (ended by then) count on the primary, and the consumer worked.
    for run in figures["capture_runs"]:
        for field in ("external_cpu_us", "patch_cpu_us"):
            assert run[field]["primary"] > 0
            assert run[field]["total"] == pytest.approx(
                sum(value for name, value in run[field].items() if name != "total"), abs=1
            )
        assert run["external_cpu_us"]["clients"] > 0
        assert run["patch_cpu_us"]["questdb"] > 0
    assert any(run["external_cpu_us"]["consumer"] > 0 for run in figures["capture_runs"] if run["capture"] == "on")
    assert "commit to Redis" in (tmp_path / "latest.md").read_text()
    assert data["machine"]["cores"] >= 1

    # gRPC: the same scenarios from separate load processes, each against its REST run of the same state.
    grpc_runs = {key: row for key, row in runs.items() if key[0] == "grpc"}
    assert {key[1] for key in grpc_runs} == {
        "user_id",
        "character_id",
        "session_lookup",
        "character_batch",
        "session_refresh",
        "character_patch",
    }
    for (_app, scenario, state), row in grpc_runs.items():
        assert row["error_codes"] == {}, (scenario, state)
        rest = runs[("questdb", scenario, state)]
        assert row["vs_rest"] == pytest.approx(row["rps"] / rest["rps"], rel=0.01), (scenario, state)
        assert row["client_cpu_ms"] > 0, (scenario, state)
    grpc_warm = grpc_runs[("grpc", "user_id", "warm")]
    assert grpc_warm["cache_hit_rate"] >= 0.99
    assert grpc_warm["sql_per_request"] < 0.1
    assert grpc_runs[("grpc", "session_refresh", "-")]["sql_per_request"] >= 1  # a write reaches the database
    grpc_batch = grpc_runs[("grpc", "character_batch", "warm")]
    assert grpc_batch["lookups_per_s"] == pytest.approx(grpc_batch["rps"] * BATCH_SIZE, rel=0.01)
    assert grpc_batch["vs_single"] == pytest.approx(
        grpc_batch["lookups_per_s"] / grpc_runs[("grpc", "character_id", "warm")]["rps"], rel=0.01
    )
    assert grpc_batch["cache_hit_rate"] >= 0.99
    targets = {target["key"]: target for target in data["targets"]}
    assert targets["grpc_point_vs_rest"]["value"] == pytest.approx(
        min(grpc_runs[("grpc", name, "warm")]["vs_rest"] for name in ("user_id", "character_id", "session_lookup")),
        rel=0.01,
    )
    assert targets["grpc_batch_vs_single"]["holds"] is (grpc_batch["vs_single"] >= 20)
    text = (tmp_path / "latest.md").read_text()
    assert "questdb over gRPC" in text
    assert "GetCharacters(50 ids)" in text
    assert "GRPC_MAX_WORKERS=" in text
