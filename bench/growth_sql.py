"""`python -m bench.growth_sql SMALL_DB LARGE_DB`: the database's part of each lookup at two data sizes.

A warm lookup never reaches the database, and a cold one spends most of its time in the server, so the
HTTP runs that `bench.growth` compares move with the machine's noise more than with the data. This measures
the part that can grow: the statement each lookup's fill runs (compiled from the selectors' own querysets),
on the hot standby that serves reads, against both databases in one loop. Rounds alternate the databases and
a control arm (the small database again, with other keys), so that noise falls on all three alike: the
control's ratio says how much of a difference is noise. It also prints each statement's buffer reads
(`EXPLAIN (ANALYZE, BUFFERS)`), which is where a deeper index would show.

Both databases must have been seeded by `python -m bench` (their key samples are under var/bench/<db>/).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg

from bench.dataset import dsn
from bench.scenarios import SAMPLE_OF, read_samples

SAMPLES = Path(__file__).resolve().parent.parent / "var" / "bench"  # <db>/samples/, as python -m bench writes them
LOOKUPS = ("user_id", "user_username", "user_email", "character_id", "session_lookup")
TARGET = 1.2


def _statements() -> dict[str, object]:
    """lookup -> key -> (sql, params): the fills' querysets, as the selectors build them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdb.config.settings")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    import django

    django.setup()
    from accounts.models import User
    from characters.models import Character
    from sessions_app.models import Session

    def compiled(queryset):
        return queryset.order_by("pk")[:1].query.sql_with_params()

    return {
        "user_id": lambda key: compiled(User.objects.filter(id=key)),
        "user_username": lambda key: compiled(User.objects.with_username(key)),
        "user_email": lambda key: compiled(User.objects.with_email(key)),
        "character_id": lambda key: compiled(Character.objects.existing().filter(id=key)),
        "session_lookup": lambda key: compiled(Session.objects.select_related("user").filter(token=key)),
    }


def _time(conn, statement, keys: list[str]) -> list[float]:
    timings = []
    for key in keys:
        sql, params = statement(key)
        started = time.perf_counter()
        rows = conn.execute(sql, params).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
        if not rows:
            raise RuntimeError(f"no row for {key!r}: {sql}")
    return timings


def _buffers(conn, statement, key: str) -> int:
    sql, params = statement(key)
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()[0][0]["Plan"]
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


def measure(small: str, large: str, *, rounds: int, per_round: int, port: int, samples_root: Path = SAMPLES) -> dict:
    statements = _statements()
    arms = {"small": small, "large": large, "control": small}
    samples = {
        database: {lookup: read_samples(samples_root / database / "samples", SAMPLE_OF[lookup]) for lookup in LOOKUPS}
        for database in {small, large}
    }
    timings = {(lookup, arm): [] for lookup in LOOKUPS for arm in arms}
    connections = {arm: psycopg.connect(dsn(database, port), autocommit=True) for arm, database in arms.items()}
    rng = random.Random(7)
    try:
        for _ in range(rounds):
            for lookup in LOOKUPS:
                order = list(arms)
                rng.shuffle(order)
                for arm in order:
                    keys = rng.sample(samples[arms[arm]][lookup], per_round)
                    timings[(lookup, arm)] += _time(connections[arm], statements[lookup], keys)
        buffers = {
            (lookup, arm): _buffers(connections[arm], statements[lookup], samples[arms[arm]][lookup][0])
            for lookup in LOOKUPS
            for arm in ("small", "large")
        }
    finally:
        for conn in connections.values():
            conn.close()
    rows = []
    for lookup in LOOKUPS:
        p50 = {arm: statistics.median(timings[(lookup, arm)]) for arm in arms}
        rows.append(
            {
                "lookup": lookup,
                "p50_ms": {arm: round(value, 4) for arm, value in p50.items()},
                "growth": round(p50["large"] / p50["small"], 3),
                "control": round(p50["control"] / p50["small"], 3),
                "buffers": {arm: buffers[(lookup, arm)] for arm in ("small", "large")},
            }
        )
    return {"small": small, "large": large, "rounds": rounds, "per_round": per_round, "lookups": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth_sql", description=__doc__.splitlines()[0])
    parser.add_argument("small")
    parser.add_argument("large")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=100, help="statements per lookup, arm and round")
    parser.add_argument("--port", type=int, default=5433, help="the server to read from (default: the standby)")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    result = measure(args.small, args.large, rounds=args.rounds, per_round=args.per_round, port=args.port)
    print(f"statement p50 (ms), {args.large} over {args.small}; control: {args.small} over itself, other keys")
    for row in result["lookups"]:
        p50, buffers = row["p50_ms"], row["buffers"]
        print(
            f"  {row['lookup']:<15} {p50['small']:.3f} -> {p50['large']:.3f}  growth {row['growth']:.2f}"
            f"  control {row['control']:.2f}  buffers {buffers['small']} -> {buffers['large']}"
        )
    worst = max(row["growth"] for row in result["lookups"])
    print(f"worst growth {worst:.2f} (target <= {TARGET}): {'holds' if worst <= TARGET else 'MISSED'}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
