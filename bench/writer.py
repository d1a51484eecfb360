"""`python -m bench.writer`: another program writing straight into PostgreSQL, as the identity app or psql would.

Each write is one autocommit UPDATE of a random seeded row: a user's name, a character's money or a
session's user agent, in turn. With `--rate R` it paces itself to R rows per second (for the
invalidation-lag run); with `--rate 0` it writes as fast as `--connections` connections can (for the
write-throughput runs with and without the change-capture triggers). Prints one JSON line: rows, seconds.
"""

import argparse
import json
import random
import threading
import time
from pathlib import Path

import psycopg

from bench.dataset import dsn
from bench.scenarios import read_samples

STATEMENTS = (
    ("user_ids", "UPDATE users SET name = %s WHERE id = %s"),
    ("character_ids", "UPDATE characters SET money = length(%s) WHERE id = %s"),
    ("session_ids", "UPDATE sessions SET user_agent = %s WHERE id = %s"),
)


def write(*, database: str, samples: Path, rate: float, seconds: float, connections: int) -> dict:
    keys = {name: read_samples(samples, name) for name, _ in STATEMENTS}
    deadline = time.monotonic() + seconds
    per_connection = rate / connections if rate else 0.0
    counts = [0] * connections

    def run(index: int) -> None:
        rng = random.Random(index)
        started = time.monotonic()
        with psycopg.connect(dsn(database), autocommit=True, application_name="bench-writer") as conn:
            while time.monotonic() < deadline:
                name, statement = STATEMENTS[counts[index] % len(STATEMENTS)]
                conn.execute(statement, [f"w{index}-{counts[index]}", rng.choice(keys[name])])
                counts[index] += 1
                if per_connection:
                    ahead = started + counts[index] / per_connection - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)

    began = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return {"rows": sum(counts), "seconds": round(elapsed, 3), "rows_per_second": round(sum(counts) / elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writer", description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--samples", type=Path, required=True, help="the benchmark's sample directory")
    parser.add_argument("--rate", type=float, default=300, help="rows per second in all; 0: as fast as possible")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=2)
    args = parser.parse_args(argv)
    result = write(
        database=args.database,
        samples=args.samples,
        rate=args.rate,
        seconds=args.seconds,
        connections=args.connections,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
