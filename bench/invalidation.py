"""The benchmark's invalidation figures: commit-to-Redis lag under load, and what change capture costs writers.

- Lag: questdb's read mix runs with wrk while another process (bench.writer) writes a few hundred rows
  per second straight into PostgreSQL; the lag is the consumer's own histogram
  (questdb_cache_invalidation_lag_seconds, kept in Redis), read before and after the run. Percentiles are
  interpolated within its buckets.
- Cost: the same writes with the change-capture triggers enabled and disabled, alternately, in the same
  run: questdb's character PATCH under wrk, and bench.writer as fast as it can. The ratio is with / without.
"""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis

from bench import cores
from bench.dataset import dsn
from bench.metrics import TICKS, proc_ticks

ROOT = Path(__file__).resolve().parent.parent
# The consumer's buckets (questdb.cache.invalidation.LAG_BUCKETS), in seconds.
LAG_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CAPTURE_TRIGGERS_SQL = """
    SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal AND t.tgname LIKE '%\\_capture\\_%' ORDER BY 1, 2
"""


class ConsumerProcess:
    """`manage.py invalidate_cache` beside the benchmarked questdb, with the same environment."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "invalidate_cache"],
                cwd=ROOT,
                env={**self.env, "LOG_LEVEL": "INFO"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def lag_key(prefix: str) -> str:
    return f"{prefix}:invalidation:lag"


def heartbeat_key(prefix: str) -> str:
    return f"{prefix}:invalidation"


def lag_counts(client: redis.Redis, prefix: str) -> list[float]:
    """Per-bucket (not cumulative) counts of the consumer's lag histogram; the last one is +Inf."""
    raw = client.hgetall(lag_key(prefix))
    fields = [f"le_{bound:g}" for bound in LAG_BUCKETS] + ["le_inf"]
    return [float(raw.get(field.encode(), 0)) for field in fields]


def percentiles(before: list[float], after: list[float], quantiles=(0.5, 0.9, 0.99)) -> dict:
    """Lag percentiles (ms) of the changes invalidated between two snapshots, interpolated within buckets."""
    counts = [max(0.0, a - b) for a, b in zip(after, before, strict=True)]
    total = sum(counts)
    result = {"changes": int(total)}
    bounds = (*LAG_BUCKETS, math.inf)
    for q in quantiles:
        name = f"p{q * 100:g}"
        if not total:
            result[name] = None
            continue
        rank, running, lower = q * total, 0.0, 0.0
        for count, upper in zip(counts, bounds, strict=True):
            if count and running + count >= rank:
                if upper == math.inf:
                    result[name] = None  # beyond the last bucket
                else:
                    result[name] = round((lower + (upper - lower) * (rank - running) / count) * 1000, 1)
                break
            running += count
            lower = upper
    over = sum(count for count, upper in zip(counts, bounds, strict=True) if upper > 0.1)
    result["share_over_100ms"] = round(over / total, 4) if total else None
    return result


def wait_for_heartbeat(client: redis.Redis, prefix: str, timeout: float = 30.0) -> bool:
    """Until the consumer's heartbeat covers every change committed before now; False on timeout."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    deadline = time.monotonic() + timeout
    while int(client.hget(heartbeat_key(prefix), "seen_ms") or 0) <= now_ms:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def set_capture(database: str, *, enabled: bool) -> int:
    """Enable or disable the change-capture triggers; how many there are."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        triggers = conn.execute(CAPTURE_TRIGGERS_SQL).fetchall()
        for table, name in triggers:
            action = "ENABLE" if enabled else "DISABLE"
            conn.execute(f'ALTER TABLE "{table}" {action} TRIGGER "{name}"')
    return len(triggers)


def postmaster_pid(database: str, *, port: int) -> int:
    """The pid of the postmaster serving `port`: the parent of a backend of ours."""
    with psycopg.connect(dsn(database, port=port), autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return cores.parent(backend)


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds each group has used so far: its root process, every process below it and the children it has
    reaped (a postmaster's ended backends); `clients`: this process and its reaped children (bench.writer, wrk)."""
    used = {
        name: (proc_ticks(root, children=True) + sum(proc_ticks(pid) for pid in cores.descendants(root)[1:])) / TICKS
        for name, root in groups.items()
    }
    used["clients"] = proc_ticks("self", children=True) / TICKS
    return used


def cpu_per(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """Microseconds of CPU per write (row or request) by group, and their total."""
    per = {name: round((after[name] - before[name]) / count * 1e6, 1) if count else None for name in before}
    per["total"] = round(sum(value for value in per.values() if value), 1) if count else None
    return per


def start_writer(*, database: str, samples: Path, rate: float, seconds: float, connections: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.writer",
            "--database",
            database,
            "--samples",
            str(samples),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--connections",
            str(connections),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def writer_result(process: subprocess.Popen, timeout: float) -> dict:
    out, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"bench.writer exited with {process.returncode}")
    return json.loads(out.strip().splitlines()[-1])
