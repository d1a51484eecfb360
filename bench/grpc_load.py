"""A closed-loop gRPC load generator in separate processes (no ghz here): `python -m bench.grpc_load`.

Each of `--processes` processes opens its own channel and keeps `--concurrency` calls in flight (one thread
each) for `--duration` seconds, drawing keys from a sample file; the parent adds up calls, errors and
latencies. Scenarios: `user_id` (GetUser), `character_id` (GetCharacter), `character_batch` (GetCharacters
with `--batch` ids), `session_refresh` (RefreshSession, a write).
"""

import argparse
import json
import multiprocessing
import random
import threading
import time
from pathlib import Path


def _call_for(scenario: str, channel, batch: int):
    from questdb.v1 import (
        characters_pb2,
        characters_pb2_grpc,
        sessions_pb2,
        sessions_pb2_grpc,
        users_pb2,
        users_pb2_grpc,
    )

    if scenario == "user_id":
        stub = users_pb2_grpc.UserServiceStub(channel)
        return lambda keys, md: stub.GetUser(users_pb2.GetUserRequest(id=random.choice(keys)), metadata=md)
    if scenario == "character_id":
        stub = characters_pb2_grpc.CharacterDbServiceStub(channel)
        return lambda keys, md: stub.GetCharacter(
            characters_pb2.GetCharacterRequest(id=random.choice(keys)), metadata=md
        )
    if scenario == "character_batch":
        stub = characters_pb2_grpc.CharacterDbServiceStub(channel)
        return lambda keys, md: stub.GetCharacters(
            characters_pb2.GetCharactersRequest(ids=random.sample(keys, min(batch, len(keys)))), metadata=md
        )
    if scenario == "session_refresh":
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        return lambda keys, md: stub.RefreshSession(
            sessions_pb2.RefreshSessionRequest(id=random.choice(keys)), metadata=md
        )
    raise ValueError(f"unknown scenario {scenario}")


def _worker(args: dict, keys: list[str], results) -> None:
    import grpc

    channel = grpc.insecure_channel(args["address"])
    call = _call_for(args["scenario"], channel, args["batch"])
    metadata = (("authorization", f"Api-Key {args['api_key']}"),)
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + args["duration"]

    def loop() -> None:
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                call(keys, metadata)
                mine.append(time.perf_counter() - started)
            except grpc.RpcError:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(args["concurrency"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    results.put({"latencies": latencies, "errors": errors[0]})


def run(
    *,
    address: str,
    api_key: str,
    scenario: str,
    keys: list[str],
    duration: float = 10.0,
    processes: int = 2,
    concurrency: int = 8,
    batch: int = 50,
) -> dict:
    """Drive one scenario; calls per second, errors and latency percentiles (ms)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    args = {
        "address": address,
        "api_key": api_key,
        "scenario": scenario,
        "duration": duration,
        "concurrency": concurrency,
        "batch": batch,
    }
    workers = [context.Process(target=_worker, args=(args, keys, results)) for _ in range(processes)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=duration + 60) for _ in workers]
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started
    latencies = sorted(latency for answer in answers for latency in answer["latencies"])
    calls = len(latencies)

    def percentile(p: float) -> float:
        return round(latencies[min(calls - 1, int(calls * p))] * 1000, 2) if calls else 0.0

    return {
        "scenario": scenario,
        "calls": calls,
        "errors": sum(answer["errors"] for answer in answers),
        "rps": round(calls / seconds, 1),
        "items_per_second": round(calls * (batch if scenario == "character_batch" else 1) / seconds, 1),
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--keys", type=Path, required=True, help="a file of keys, one a line")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    keys = [line for line in args.keys.read_text().splitlines() if line]
    print(
        json.dumps(
            run(
                address=args.address,
                api_key=args.api_key,
                scenario=args.scenario,
                keys=keys,
                duration=args.duration,
                processes=args.processes,
                concurrency=args.concurrency,
                batch=args.batch,
            )
        )
    )


if __name__ == "__main__":
    main()
