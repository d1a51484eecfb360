"""Counters the benchmark reads around each run: the servers' Prometheus files and Redis's command count.

The Prometheus multiprocess directory is the same data questdb's /metrics endpoint serves
(questdb_cache_events_total), plus the benchmark's own SQL statement counter (bench.sqlcount),
read directly so the comparison servers need no metrics endpoint.
"""

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from bench import cores

HITS = ("hit", "hit_after_wait")


@dataclass
class Snapshot:
    sql: dict = field(default_factory=dict)  # (alias, kind) -> count
    cache: dict = field(default_factory=dict)  # (family, event) -> count
    redis_commands: int = 0

    def minus(self, earlier: "Snapshot") -> "Snapshot":
        return Snapshot(
            sql=_delta(self.sql, earlier.sql),
            cache=_delta(self.cache, earlier.cache),
            redis_commands=self.redis_commands - earlier.redis_commands,
        )


def _delta(now: dict, before: dict) -> dict:
    return {key: value - before.get(key, 0) for key, value in now.items() if value - before.get(key, 0)}


def snapshot(metrics_dir: Path, redis_client: redis.Redis) -> Snapshot:
    result = Snapshot()
    if metrics_dir.is_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(metrics_dir))
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name == "questdb_bench_sql_statements_total":
                    key = (sample.labels["alias"], sample.labels["kind"])
                    result.sql[key] = result.sql.get(key, 0) + sample.value
                elif sample.name == "questdb_cache_events_total":
                    key = (sample.labels["family"], sample.labels["event"])
                    result.cache[key] = result.cache.get(key, 0) + sample.value
    result.redis_commands = int(redis_client.info("stats")["total_commands_processed"])
    return result


def summarize(delta: Snapshot, requests: int) -> dict:
    """Per-request figures of one run from its counter deltas."""
    per_request = (lambda n: n / requests) if requests else (lambda n: 0.0)
    by_alias: dict = defaultdict(float)
    for (alias, _kind), count in delta.sql.items():
        by_alias[alias] += count
    reads = {alias: count for (alias, kind), count in delta.sql.items() if kind == "read"}
    all_reads = sum(reads.values())
    replica_reads = sum(count for alias, count in reads.items() if alias != "default")
    # Each lookup records "hit" or "miss"; a miss that then got another filler's value adds "hit_after_wait".
    lookups = sum(count for (_family, event), count in delta.cache.items() if event in ("hit", "miss"))
    served = sum(count for (_family, event), count in delta.cache.items() if event in HITS)
    return {
        "sql_per_request": round(per_request(sum(delta.sql.values())), 3),
        "sql_per_request_by_alias": {alias: round(per_request(count), 3) for alias, count in sorted(by_alias.items())},
        "sql_per_request_by_kind": {
            kind: round(per_request(sum(c for (_a, k), c in delta.sql.items() if k == kind)), 3)
            for kind in sorted({kind for _alias, kind in delta.sql})
        },
        "replica_read_share": round(replica_reads / all_reads, 4) if all_reads else None,
        "cache_hit_rate": round(served / lookups, 4) if lookups else None,
        "cache_events": {f"{family}.{event}": int(count) for (family, event), count in sorted(delta.cache.items())},
        "redis_commands_per_request": round(per_request(delta.redis_commands), 2),
    }


# -- CPU used by other work on the machine ---------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")
_SERVICES = ("postgres", "redis-server")


@dataclass
class Cpu:
    busy: int  # ticks, all cores: user + nice + system + irq + softirq
    steal: int
    server: dict  # pid -> ticks: the gunicorn master and workers
    services: dict  # pid -> ticks: PostgreSQL processes (primary and standby) and Redis
    own: int  # this process and its reaped children (wrk)
    clients: dict = field(default_factory=dict)  # pid -> ticks: load processes still running (bench.grpc_load)


def proc_ticks(pid: int | str, *, children: bool = False) -> int:
    try:
        fields = cores.stat_fields(pid)
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])
    return ticks + int(fields[13]) + int(fields[14]) if children else ticks


def cpu(server_pids: list[int], client_pids: list[int] = ()) -> Cpu:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6]
    services = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if name in _SERVICES:
                services[entry.name] = proc_ticks(entry.name)
    return Cpu(
        busy=busy,
        steal=values[7] if len(values) > 7 else 0,
        server={pid: proc_ticks(pid) for pid in server_pids},
        services=services,
        own=proc_ticks("self", children=True),
        clients={pid: proc_ticks(pid) for pid in client_pids},
    )


def _grown(before: dict, after: dict) -> int:
    """Ticks the processes alive at the end used since the start (all of theirs if they started meanwhile)."""
    return sum(max(0, ticks - before.get(pid, 0)) for pid, ticks in after.items())


def cpu_summary(before: Cpu, after: Cpu, seconds: float, requests: int) -> dict:
    """CPU per request of the server, of PostgreSQL + Redis and of the load generator (ms: wrk, or the gRPC load
    processes, with this process's own share), and the cores other processes took."""
    if seconds <= 0 or not requests:
        return {
            "server_cpu_ms": None,
            "services_cpu_ms": None,
            "client_cpu_ms": None,
            "other_cpu_cores": None,
            "steal_cores": None,
        }
    server = _grown(before.server, after.server)
    services = _grown(before.services, after.services)
    client = (after.own - before.own) + _grown(before.clients, after.clients)
    other = max(0, (after.busy - before.busy) - server - services - client)
    return {
        "server_cpu_ms": round(server / TICKS * 1000 / requests, 3),
        "services_cpu_ms": round(services / TICKS * 1000 / requests, 3),
        "client_cpu_ms": round(client / TICKS * 1000 / requests, 3),
        "other_cpu_cores": round(other / TICKS / seconds, 2),
        "steal_cores": round((after.steal - before.steal) / TICKS / seconds, 2),
    }
