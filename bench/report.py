"""Ratios, targets and the written report (bench/results/latest.md and latest.json, plus a timestamped copy)."""

import json
import os
import platform
import statistics
import subprocess
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

from bench.load import wrk_version
from bench.scenarios import COLD, WARM

ROOT = Path(__file__).resolve().parent.parent

# Targets: reported, never asserted.
TARGETS = (
    ("warm point lookups vs naive (median)", "point_vs_naive", ">=", 8.0),
    ("warm point lookups vs ceiling (median)", "point_vs_ceiling", ">=", 0.70),
    ("warm point lookups p99 (worst, ms)", "point_p99_ms", "<", 20.0),
    ("warm point lookups p99 vs the ceiling's p99 (worst)", "point_p99_vs_ceiling", "<=", 1.3),
    ("batch of 50: lookups/s vs single lookups/s (warm)", "batch_vs_single", ">=", 20.0),
    ("list vs naive (warm)", "list_vs_naive", ">=", 2.0),
    ("cold lookups vs naive (median)", "cold_vs_naive", ">=", 1.0),
    ("writes vs naive (worst)", "writes_vs_naive", ">=", 1.0),
    ("mix vs naive", "mix_vs_naive", ">=", 2.0),
    ("warm gRPC point lookups vs the same REST lookups, req/s (worst)", "grpc_point_vs_rest", ">=", 1.0),
    ("gRPC GetCharacters(50): lookups/s vs single GetCharacter calls/s (warm)", "grpc_batch_vs_single", ">=", 20.0),
    ("invalidation lag p99, commit to Redis (ms, mix + external writes)", "invalidation_p99_ms", "<", 100.0),
    ("write throughput with change capture vs without (worst of questdb's and external)", "capture_ratio", ">=", 0.9),
    (
        "writes per CPU-second with change capture vs without, every process counted (worst of questdb's and external)",
        "capture_cpu_ratio",
        ">=",
        0.9,
    ),
)
REST_APPS = ("questdb", "naive")


# -- the machine ------------------------------------------------------------------------
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "os": _os_name(),
        "note": "wrk and the servers share these cores over loopback",
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def versions(wrk: str) -> dict:
    found = {"python": platform.python_version(), "wrk": wrk_version(wrk)}
    for package in ("Django", "djangorestframework", "gunicorn", "psycopg", "django-redis"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    try:
        found["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        if changed:
            found["commit"] += " (with uncommitted changes)"
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (e.g. an export of one commit): the caller may name the commit.
        found["commit"] = os.environ.get("BENCH_COMMIT")
    return found


# -- ratios and targets ---------------------------------------------------------------------
def _find(results: list[dict], app: str, scenario: str, state: str) -> dict | None:
    for row in results:
        if row["app"] == app and row["scenario"] == scenario and row["state"] == state:
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def finish(data: dict, *, smoke: bool = False) -> dict:
    results = data["results"]
    # The ceiling runs before and after the others; their mean is the reference.
    ceilings = [row for row in results if row["app"] == "ceiling"]
    ceiling = round(statistics.mean(row["rps"] for row in ceilings), 1) if ceilings else None
    ceiling_p99 = round(statistics.mean(row["latency_ms"]["p99"] for row in ceilings), 3) if ceilings else None
    data["ceiling_rps"], data["ceiling_p99_ms"] = ceiling, ceiling_p99
    for row in results:
        naive = _find(results, "naive", row["scenario"], row["state"]) if row["app"] == "questdb" else None
        row["lookups_per_s"] = round(row["rps"] * row.get("lookups_per_request", 1), 1)
        row["vs_naive"] = _ratio(row["rps"], naive["rps"]) if naive else None
        row["vs_ceiling"] = _ratio(row["rps"], ceiling) if row["app"] in REST_APPS else None
        # Latency against the bare callable's own p99 in the same run: what is left above the server's floor.
        row["p99_vs_ceiling"] = _ratio(row["latency_ms"]["p99"], ceiling_p99) if row["app"] in REST_APPS else None
        single = _find(results, row["app"], "character_id", row["state"]) if row["group"] == "batch" else None
        row["vs_single"] = _ratio(row["lookups_per_s"], single["rps"]) if single else None
        if row["app"] == "grpc":  # the same scenario over REST, from the same run
            rest = _find(results, "questdb", row["scenario"], row["state"])
            row["vs_rest"] = _ratio(row["rps"], rest["rps"]) if rest else None
            row["p50_vs_rest"] = _ratio(row["latency_ms"]["p50"], rest["latency_ms"]["p50"]) if rest else None
            row["p99_vs_rest"] = _ratio(row["latency_ms"]["p99"], rest["latency_ms"]["p99"]) if rest else None
            # Server CPU per call over REST's per request: steadier than req/s when other work loads the machine.
            cpu, rest_cpu = row.get("server_cpu_ms"), rest.get("server_cpu_ms") if rest else None
            row["cpu_vs_rest"] = _ratio(cpu, rest_cpu) if cpu and rest_cpu else None
    ours = [row for row in results if row["app"] == "questdb"]
    points = [row for row in ours if row["group"] == "point" and row["state"] == WARM]
    writes = [row["vs_naive"] for row in ours if row["group"] == "write" and row["vs_naive"] is not None]
    grpc = [row for row in results if row["app"] == "grpc"]
    grpc_points = [row["vs_rest"] for row in grpc if row["group"] == "point" and row["state"] == WARM]
    grpc_points = [value for value in grpc_points if value is not None]
    values = {
        "point_vs_naive": _median([row["vs_naive"] for row in points]),
        "point_vs_ceiling": _median([row["vs_ceiling"] for row in points]),
        "point_p99_ms": max((row["latency_ms"]["p99"] for row in points), default=None),
        "point_p99_vs_ceiling": max((row["p99_vs_ceiling"] or 0 for row in points), default=None) or None,
        "batch_vs_single": _median(
            [row["vs_single"] for row in ours if row["group"] == "batch" and row["state"] == WARM]
        ),
        "list_vs_naive": _median([row["vs_naive"] for row in ours if row["group"] == "list" and row["state"] == WARM]),
        "cold_vs_naive": _median([row["vs_naive"] for row in ours if row["state"] == COLD]),
        "writes_vs_naive": min(writes) if writes else None,
        "mix_vs_naive": _median([row["vs_naive"] for row in ours if row["group"] == "mix"]),
        "grpc_point_vs_rest": min(grpc_points) if grpc_points else None,
        "grpc_batch_vs_single": _median(
            [row["vs_single"] for row in grpc if row["group"] == "batch" and row["state"] == WARM]
        ),
        **_invalidation_values(data.get("invalidation")),
    }
    targets = []
    for title, key, op, threshold in TARGETS:
        value = values[key]
        holds = (
            None if value is None else {">=": value >= threshold, "<=": value <= threshold}.get(op, value < threshold)
        )
        targets.append({"target": title, "key": key, "value": value, "op": op, "threshold": threshold, "holds": holds})
    data["targets"] = targets
    note = load_note(results)
    if note:
        data["notes"].append(note)
    data["smoke"] = smoke
    data["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return data


def _invalidation_values(figures: dict | None) -> dict:
    if not figures:
        return {"invalidation_p99_ms": None, "capture_ratio": None, "capture_cpu_ratio": None}

    def worst(by_topology: dict) -> float | None:
        # The machine as a whole; the split (bench/cores.py) only tells where the cost went.
        ratios = [value for value in by_topology["shared"].values() if value is not None]
        return min(ratios) if ratios else None

    return {
        "invalidation_p99_ms": figures["lag_ms"]["p99"],
        "capture_ratio": worst(figures["write_ratio"]),
        "capture_cpu_ratio": worst(figures["cpu_ratio"]),
    }


def invalidation_markdown(figures: dict | None) -> list[str]:
    if not figures:
        return []
    lag, mix, external = figures["lag_ms"], figures["mix"], figures["external_writes"]
    out = [
        "",
        "## Invalidation: commit to Redis, and what change capture costs writers",
        "",
        f"questdb's read mix ran with wrk ({mix['rps']:,.0f} req/s, p99 {_ms(mix['latency_ms']['p99'])} ms) while "
        f"bench.writer wrote {external['rows_per_second']:,.0f} rows/s (target {figures['external_rate_target']:g}) "
        "straight into PostgreSQL (autocommit UPDATEs of users, characters and sessions). Lag is the consumer's own "
        "histogram (questdb_cache_invalidation_lag_seconds: from the change's trigger, before its commit, to Redis "
        "confirming the invalidation), interpolated within its buckets, over every change in that run (the "
        "external writer's and the mix's own writes).",
        "",
    ]
    out += _table(
        ["changes", "p50 ms", "p90 ms", "p99 ms", "share over 100 ms"],
        [
            [
                f"{lag['changes']:,}",
                _ms(lag["p50"]),
                _ms(lag["p90"]),
                _ms(lag["p99"]),
                _pct(lag["share_over_100ms"]),
            ]
        ],
    )
    out += [
        "",
        "Write throughput with the change-capture triggers enabled and disabled, alternately in the same run "
        "(bench.writer as fast as 4 connections go; questdb's character PATCH under wrk; each ratio is the median of "
        "the ratios of the phases run back to back), twice: with every process "
        "on every core (shared), then with the writers' side (the primary and its backends, the consumer's "
        "included, the writing processes, the load generator) on half of the cores and the consumer, Redis and the "
        "standby on the other half (split, as separate hosts run them; bench/cores.py). The target is the shared "
        "ratio, the machine as a whole; the split tells what the writers' side pays by itself.",
        "",
    ]
    rows = [
        [run["topology"], run["capture"], f"{run['external_rows_per_second']:,.0f}", f"{run['patch']['rps']:,.0f}"]
        for run in figures["capture_runs"]
    ]
    for topology, ratio in figures["write_ratio"].items():
        rows.append([topology, "with / without", _x(ratio["external"]), _x(ratio["questdb_patch"])])
    out += _table(["cores", "capture", "external rows/s", "questdb PATCH req/s"], rows)
    out += [
        "",
        "CPU per write (µs, mean of the phases, shared cores), by process: a throughput ratio moves with whatever else "
        "the machine runs, CPU per write much less. `clients` is bench.writer or wrk; `primary` counts its ended "
        "backends too; the consumer's and Redis's time includes polling while capture is off.",
        "",
    ]
    shared = [run for run in figures["capture_runs"] if run["topology"] == "shared"]
    for field, label in (("external_cpu_us", "external row"), ("patch_cpu_us", "questdb PATCH")):
        names = list(shared[0][field])
        cpu_rows = []
        for phase in ("on", "off"):
            runs = [run[field] for run in shared if run["capture"] == phase]
            cpu_rows.append([label, phase] + [_us(sum(run[name] or 0 for run in runs) / len(runs)) for name in names])
        out += _table(["write", "capture", *names], cpu_rows)
        out.append("")
    ratio = figures["cpu_ratio"]["shared"]
    out.append(
        f"Writes per CPU-second with capture over without: external {_x(ratio['external'])}, questdb PATCH "
        f"{_x(ratio['questdb_patch'])}."
    )
    return out


def _us(value: float) -> str:
    return f"{value:,.0f}"


def load_note(results: list[dict]) -> str | None:
    """A note on CPU that other processes took during the runs, when there was enough to matter."""
    loaded = [row for row in results if row.get("other_cpu_cores") is not None]
    if not loaded:
        return None
    typical = _median([row["other_cpu_cores"] for row in loaded])
    busiest = max(loaded, key=lambda row: row["other_cpu_cores"])
    if typical >= 0.1:
        return (
            f"Other processes on the machine used {typical:.2f} cores (median; up to "
            f"{busiest['other_cpu_cores']:.2f}) during the runs, beside the servers, wrk, PostgreSQL and Redis: the "
            "figures are lower than on an idle machine, and comparisons between runs taken under different load "
            "are unreliable."
        )
    heavy = [row for row in loaded if row["other_cpu_cores"] >= 0.3]
    if heavy:
        runs = ", ".join(
            f"{row['app']} {row['scenario']} {row['state']} ({row['other_cpu_cores']:.2f})" for row in heavy
        )
        return (
            f"The machine was otherwise quiet (median {typical:.2f} cores of other load) except during: {runs}; "
            "those runs are understated."
        )
    return None


# -- text ------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def progress_line(row: dict) -> str:
    extra = ""
    if row["app"] != "ceiling":
        extra = (
            f"  sql/req {row['sql_per_request']:.2f}  hit {_pct(row['cache_hit_rate'])}"
            f"  replica {_pct(row['replica_read_share'])}"
        )
    if row.get("lookups_per_request", 1) > 1:
        extra += f"  {row['rps'] * row['lookups_per_request']:,.0f} lookups/s"
    if row.get("server_cpu_ms") is not None:
        extra += f"  server cpu {row['server_cpu_ms']:.2f} ms/req"
    if row.get("client_cpu_ms") is not None:
        extra += f"  load cpu {row['client_cpu_ms']:.2f} ms/req"
    if row.get("other_cpu_cores"):
        extra += f"  other load {row['other_cpu_cores']:.2f} cores"
    failed = "errors" if row["app"] == "grpc" else "non-2xx"
    errors = f"  {failed} {row['non_2xx']} {row.get('error_codes') or ''}" if row["non_2xx"] else ""
    errors += f"  socket errors {row['socket_errors']}" if row["socket_errors"] else ""
    return (
        f"  {row['app']:<8} {row['scenario']:<17} {row['state']:<4} {row['rps']:>9,.0f} req/s"
        f"  p50 {_ms(row['latency_ms']['p50'])} ms  p99 {_ms(row['latency_ms']['p99'])} ms{extra}{errors}"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(data: dict) -> str:
    m, s, d = data["machine"], data["settings"], data["dataset"]
    title = "questdb benchmark (smoke run: tiny data, no meaning)" if data.get("smoke") else "questdb benchmark"
    out = [
        f"# {title}",
        "",
        f"Generated {data['generated_at']} by `python -m bench` at commit {data['versions'].get('commit')}, "
        f"in {data['wall_seconds']:.0f}s.",
        "",
        "## Machine and setup",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB memory; {m['os']}, kernel {m['kernel']}.",
        f"- {m['note']}.",
        f"- Servers: gunicorn ({s['gunicorn']['worker_class']}, {s['gunicorn']['workers']} workers x "
        f"{s['gunicorn']['threads']} threads) with the project's gunicorn.conf.py; questdb with "
        + ", ".join(f"{k}={v}" for k, v in s["server_env"].items())
        + ".",
        *(
            [
                f"- gRPC: `manage.py grpcserver` (GRPC_PROCESSES={s['grpc'].get('processes', 1)} x "
                f"GRPC_MAX_WORKERS={s['grpc']['max_workers']}: gunicorn's workers x threads) beside gunicorn, on the "
                "same database, Redis and cache. Load: "
                + (
                    f"h2load {s['grpc']['h2load']} (C, as wrk) for the warm lookups and the warm batch, "
                    f"{s['wrk']['connections']} connections with one call in flight each, one request per run, "
                    "every call checked against the server's own count of OK calls; "
                    if s["grpc"].get("h2load")
                    else ""
                )
                + "bench.grpc_load (grpcio's Python client) for "
                + ("the cold runs and the writes" if s["grpc"].get("h2load") else "every run")
                + f", {s['grpc']['load_processes']} processes x "
                f"{s['grpc']['calls_in_flight_per_process']} blocking calls "
                "in flight, each on its own connection (as many as wrk's connections), a new key per call."
            ]
            if s.get("grpc")
            else []
        ),
        f"- Extra server environment (--server-env): {s.get('extra_server_env') or 'none'}.",
        f"- Load: wrk {s['wrk']['threads']} threads, {s['wrk']['connections']} connections, "
        f"{s['wrk']['duration_s']}s per run, random keys per request.",
        f"- Data: {d['users']:,} users, {d['characters']:,} characters ({d['list_users']:,} users with "
        f"{d['characters_per_list_user']} each for the list), {d['sessions']:,} live sessions; seeded in "
        f"{d['seed_seconds']}s. Warm runs draw from a hot set, the first {d['hot_keys']:,} keys of each family "
        "(all of them when there are fewer), requested once by a warm-up pass just before; cold runs empty Redis "
        "first and draw from every key.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items() if k != "commit" and v) + ".",
        "",
        "## Targets (reported, not asserted)",
        "",
    ]
    for t in data["targets"]:
        mark = "n/a" if t["holds"] is None else ("holds" if t["holds"] else "MISSED")
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        out.append(f"- {t['target']}: {value} (target {t['op']} {t['threshold']}): **{mark}**")
    out += ["", "## questdb", ""]
    header = ["scenario", "state", "req/s", "lookups/s", "p50 ms", "p99 ms", "p99 vs ceiling p99", "non-2xx", "SQL/req"]
    header += ["reads on replica", "cache hits", "Redis cmds/req", "server CPU ms/req", "PG+Redis CPU ms/req"]
    header += ["vs naive", "vs ceiling", "batch vs single", "other load"]
    rows = []
    for row in (r for r in data["results"] if r["app"] == "questdb"):
        rows.append(
            [
                row["label"],
                row["state"],
                f"{row['rps']:,.0f}",
                f"{row['lookups_per_s']:,.0f}",
                _ms(row["latency_ms"]["p50"]),
                _ms(row["latency_ms"]["p99"]),
                _x(row["p99_vs_ceiling"]),
                str(row["non_2xx"]),
                f"{row['sql_per_request']:.2f}",
                _pct(row["replica_read_share"]),
                _pct(row["cache_hit_rate"]),
                f"{row['redis_commands_per_request']:.1f}",
                _ms(row.get("server_cpu_ms")),
                _ms(row.get("services_cpu_ms")),
                _x(row["vs_naive"]),
                _x(row["vs_ceiling"]),
                _x(row["vs_single"]),
                _cores(row.get("other_cpu_cores")),
            ]
        )
    out += _table(header, rows)
    grpc_rows = [r for r in data["results"] if r["app"] == "grpc"]
    if grpc_rows:
        out += ["", "## questdb over gRPC (`manage.py grpcserver`), against the same scenario over REST", ""]
        header = ["RPC", "REST scenario", "state", "calls/s", "lookups/s", "p50 ms", "p99 ms", "errors", "SQL/call"]
        header += ["reads on replica", "cache hits", "server CPU ms/call", "load generator CPU ms/call"]
        header += ["req/s vs REST", "p50 vs REST", "p99 vs REST", "server CPU/call vs REST", "batch vs single"]
        rows = []
        for row in grpc_rows:
            rows.append(
                [
                    row["label"],
                    row["rest_label"],
                    row["state"],
                    f"{row['rps']:,.0f}",
                    f"{row['lookups_per_s']:,.0f}",
                    _ms(row["latency_ms"]["p50"]),
                    _ms(row["latency_ms"]["p99"]),
                    str(row["non_2xx"]) + (f" {row['error_codes']}" if row.get("error_codes") else ""),
                    f"{row['sql_per_request']:.2f}",
                    _pct(row["replica_read_share"]),
                    _pct(row["cache_hit_rate"]),
                    _ms(row.get("server_cpu_ms")),
                    _ms(row.get("client_cpu_ms")),
                    _x(row.get("vs_rest")),
                    _x(row.get("p50_vs_rest")),
                    _x(row.get("p99_vs_rest")),
                    _x(row.get("cpu_vs_rest")),
                    _x(row["vs_single"]),
                ]
            )
        out += _table(header, rows)
    out += ["", "## Comparison servers (comparison code, not questdb)", ""]
    header = ["server", "scenario", "state", "req/s", "p50 ms", "p99 ms", "non-2xx", "SQL/req"]
    header += ["server CPU ms/req", "PG+Redis CPU ms/req", "vs ceiling", "other load"]
    rows = []
    for row in (r for r in data["results"] if r["app"] not in ("questdb", "grpc")):
        rows.append(
            [
                row["app"],
                row["label"],
                row["state"],
                f"{row['rps']:,.0f}",
                _ms(row["latency_ms"]["p50"]),
                _ms(row["latency_ms"]["p99"]),
                str(row["non_2xx"]),
                "-" if row["app"] == "ceiling" else f"{row['sql_per_request']:.2f}",
                _ms(row.get("server_cpu_ms")),
                _ms(row.get("services_cpu_ms")),
                _x(row["vs_ceiling"]),
                _cores(row.get("other_cpu_cores")),
            ]
        )
    out += _table(header, rows)
    out += [
        "",
        "## How to read it",
        "",
        "- naive: bench/naive, plain DRF ModelViewSets over the same tables (API key checked in the database on "
        "every request, no cache, no replica, CONN_MAX_AGE=60). ceiling: bench/ceiling.py, a bare WSGI callable "
        f"returning a fixed {s['user_payload_bytes'] or 'user-sized'}-byte JSON body. All three run at once with the "
        "same gunicorn settings on the same data; each scenario runs on questdb and right after on naive, so both "
        "meet the same background load; the ceiling runs first and last, and the mean of the two is the reference "
        f"({data.get('ceiling_rps') or 0:,.0f} req/s).",
        "- naive finds users by username and email with Django's `iexact` (`UPPER(col) = UPPER(%s)`), as a first "
        "DRF version would; PostgreSQL cannot answer that from the `lower()` unique indexes, so those naive runs scan "
        "the users table, and that dominates their ratios (see PG+Redis CPU ms/req).",
        "- SQL/req: statements sent through Django's cursor (ORM, savepoints, the WAL-position query), counted in "
        "each worker by bench/sqlcount.py, divided by wrk's completed requests. The replica monitor's own "
        "connections are not counted.",
        "- reads on replica: share of the data reads among them (SELECT without FOR UPDATE; not questdb's query "
        "of the primary's WAL position after a write) that went to the standby.",
        "- cache hits: questdb_cache_events_total (questdb's /metrics counters): (hit + hit_after_wait) / "
        "(hit + miss). A cold run of 10 s starts empty and fills as it goes, so it is 'mostly misses at first'.",
        "- server CPU ms/req: CPU time of the gunicorn master and workers per request; PG+Redis CPU ms/req: the "
        "same for every PostgreSQL process (primary, standby, and any other database's) and Redis (from /proc).",
        "- other load: cores' worth of CPU that processes other than the servers, wrk, PostgreSQL and Redis used "
        "during the run (from /proc); anything above ~0.1 means the run competed with other work.",
        "- Redis cmds/req: total_commands_processed of the whole Redis server, so other clients add to it, and "
        "commands that questdb's Lua scripts run count one by one.",
        "- Latency is wrk's (no coordinated-omission correction): p50/p99 of request round trips at the given "
        "connection count, with wrk and the servers sharing the cores.",
        f"- p99 vs ceiling p99: the run's p99 over the bare callable's own p99 in the same run (mean of its two "
        f"runs, {_ms(data.get('ceiling_p99_ms'))} ms): at 16 connections on shared cores p99 is mostly queueing, "
        "and this is how far a scenario sits above the server's own floor.",
        "- batch: POST /api/v1/characters/batch/ with 50 random ids of the hot set (warm) or of every character "
        "(cold); lookups/s is req/s x 50, and 'batch vs single' compares it with questdb's single character "
        "lookups (req/s) in the same state. The naive app has no batch endpoint.",
        "- warm: questdb's cache filled by a warm-up pass over the hot set (the naive app, having no cache, just "
        "draws from the same hot set); cold: Redis flushed, random keys over the whole dataset; '-': writes and the "
        "mix, measured once (the mix after a warm-up of its read families).",
        "- gRPC: each scenario runs over gRPC right after its REST runs, with the same keys, the same state (cold: "
        "Redis flushed first; warm: questdb's REST warm-up fills the cache both read) and as many calls in flight as "
        "wrk has connections. req/s vs REST is its calls/s over questdb's REST req/s for the same scenario and state;"
        " p50/p99 vs REST compare latencies the same way, and server CPU/call vs REST the server's CPU per call over "
        "REST's per request (lower is cheaper; steadier than req/s when other work loads the machine). Warm lookups "
        "and the warm batch are driven by h2load (C, like wrk; HTTP/2 cleartext with a pre-framed request, one "
        "request repeated per run, since h2load sends one body: the answer comes from the cache whichever hot key is "
        "asked), the rest by bench.grpc_load, Python (grpcio's blocking stubs), which costs more CPU per call than "
        "wrk per request on the cores the servers share (see its column); the gRPC server runs as many processes and "
        "threads as gunicorn.",
    ]
    out += invalidation_markdown(data.get("invalidation"))
    for profile in data.get("profiles") or ():
        out += ["", f"## Profile of one worker during an extra '{profile['scenario']}' run (py-spy)", "", "```"]
        out += profile["text"].rstrip().splitlines()
        out += ["```"]
    if data["notes"]:
        out += ["", "## Notes", ""] + [f"- {note}" for note in data["notes"]]
    return "\n".join(out) + "\n"


def summary_text(data: dict) -> str:
    lines = []
    for row in data["results"]:
        lines.append(
            f"{row['app']:<8} {row['scenario']:<17} {row['state']:<4} {row['rps']:>9,.0f} req/s  "
            f"p50 {_ms(row['latency_ms']['p50']):>6}  p99 {_ms(row['latency_ms']['p99']):>6} ms  "
            f"non-2xx {row['non_2xx']:<4} vs naive {_x(row['vs_naive']):>6}  vs ceiling {_x(row['vs_ceiling']):>6}"
            + (f"  vs REST {_x(row.get('vs_rest')):>6}" if row["app"] == "grpc" else "")
        )
    figures = data.get("invalidation")
    if figures:
        lag = figures["lag_ms"]
        lines.append(
            f"invalidation lag p50 {_ms(lag['p50'])} p90 {_ms(lag['p90'])} p99 {_ms(lag['p99'])} ms over "
            f"{lag['changes']:,} changes; write ratio with/without capture: {figures['write_ratio']}; "
            f"writes per CPU-second: {figures['cpu_ratio']}"
        )
    lines.append("")
    for t in data["targets"]:
        mark = "n/a" if t["holds"] is None else ("holds" if t["holds"] else "MISSED")
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"target {t['target']}: {value} ({t['op']} {t['threshold']}): {mark}")
    return "\n".join(lines)


def write(data: dict, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text, body = markdown(data), json.dumps(data, indent=2, sort_keys=False) + "\n"
    paths = []
    for name, content in (("latest.md", text), ("latest.json", body), (f"{stamp}.md", text), (f"{stamp}.json", body)):
        path = directory / name
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(content)
        temporary.replace(path)
        paths.append(path)
    return paths


# -- py-spy --------------------------------------------------------------------------------------
def summarize_profile(path: Path, scenario: str, top: int = 40, mode: str = "wall") -> dict:
    """Where request threads spend their time, from py-spy's raw (collapsed) output.

    Only stacks inside ThreadWorker.handle_request count: in wall mode they include waiting on
    Redis, PostgreSQL and the GIL; in gil mode py-spy samples the thread that last held the GIL, so
    an idle worker's samples land on whichever thread held it last (often gunicorn's event loop).
    Each function gets its inclusive and self share of the request-handling samples.
    """
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = in_requests = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(frame) for frame in stack.split(";")]
        if not any(frame.startswith("ThreadWorker.handle_request ") for frame in frames):
            continue
        in_requests += samples
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    share = lambda n: 100 * n / max(in_requests, 1)  # noqa: E731
    how = "py-spy record --gil" if mode == "gil" else "py-spy record, wall time of non-idle threads"
    lines = [
        f"{total} samples ({how}, 200 Hz, one worker); {in_requests} inside request handling,",
        "the base of the percentages below (the rest: gunicorn's event loop and threads waiting for work).",
        "",
        "inclusive  self   function",
    ]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{share(samples):7.1f}% {share(own[frame]):6.1f}%  {frame}")
    lines += ["", "top self time:"]
    for frame, samples in own.most_common(15):
        lines.append(f"{share(samples):7.1f}%  {frame}")
    return {"scenario": scenario, "samples": total, "text": "\n".join(lines) + "\n", "raw": path.name}


def _frame(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module path)`, without the line number."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", str(ROOT) + "/", "lib/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name
