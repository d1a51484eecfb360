"""gRPC load for the benchmark: h2load for lookups (`run_h2load`), and a closed-loop Python generator in separate
processes for any scenario: `python -m bench.grpc_load`.

Each of `--processes` processes keeps `--concurrency` calls in flight (one thread each, each thread with its
own channel and so its own connection, as each of wrk's connections is one: a server's worker processes share
the port and the kernel spreads connections, not calls, over them) for `--duration` seconds, drawing keys
from a sample file; the parent adds up calls, errors and latencies. The processes stay up between runs
(`LoadPool`), so a run's figures exclude their start-up: every process gets the run, says it is ready, and
all start at the same instant and stop `duration` later.
Scenarios (named as the REST scenarios of bench.scenarios they match): `user_id` (GetUser), `character_id`
(GetCharacter), `session_lookup` (GetSessionByToken), `character_batch` (GetCharacters with `--batch` ids),
`session_refresh` (RefreshSession, a write), `character_patch` (UpdateCharacter of `money`, a write).
"""

import argparse
import json
import multiprocessing
import os
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

SCENARIOS = ("user_id", "character_id", "session_lookup", "character_batch", "session_refresh", "character_patch")
# Seconds between the last process saying it is ready and the common start.
START_MARGIN = 0.05
# The scenarios h2load drives (see `run_h2load`): one request body per run, so one key per run.
H2LOAD_SCENARIOS = ("user_id", "character_id", "session_lookup", "character_batch")
METHOD_PATHS = {
    "user_id": "/questdb.v1.UserService/GetUser",
    "character_id": "/questdb.v1.CharacterDbService/GetCharacter",
    "character_batch": "/questdb.v1.CharacterDbService/GetCharacters",
    "session_lookup": "/questdb.v1.SessionService/GetSessionByToken",
    "session_refresh": "/questdb.v1.SessionService/RefreshSession",
    "character_patch": "/questdb.v1.CharacterDbService/UpdateCharacter",
}


def _request(scenario: str, keys: list[str], batch: int):
    """One request message of `scenario` with random keys."""
    from google.protobuf import field_mask_pb2

    from questdb.v1 import characters_pb2, sessions_pb2, users_pb2

    if scenario == "user_id":
        return users_pb2.GetUserRequest(id=random.choice(keys))
    if scenario == "character_id":
        return characters_pb2.GetCharacterRequest(id=random.choice(keys))
    if scenario == "character_batch":
        return characters_pb2.GetCharactersRequest(ids=random.sample(keys, min(batch, len(keys))))
    if scenario == "session_lookup":
        return sessions_pb2.GetSessionByTokenRequest(token=random.choice(keys))
    if scenario == "session_refresh":
        return sessions_pb2.RefreshSessionRequest(id=random.choice(keys))
    if scenario == "character_patch":
        return characters_pb2.UpdateCharacterRequest(
            character=characters_pb2.Character(id=random.choice(keys), money=random.randint(0, 10**6)),
            update_mask=field_mask_pb2.FieldMask(paths=["money"]),
        )
    raise ValueError(f"unknown scenario {scenario}")


def _call_for(scenario: str, channel, batch: int):
    """A function (keys, metadata) -> response making one call of `scenario` with random keys."""
    from questdb.v1 import characters_pb2_grpc, sessions_pb2_grpc, users_pb2_grpc

    stubs = {
        "user_id": users_pb2_grpc.UserServiceStub(channel).GetUser,
        "character_id": characters_pb2_grpc.CharacterDbServiceStub(channel).GetCharacter,
        "character_batch": characters_pb2_grpc.CharacterDbServiceStub(channel).GetCharacters,
        "session_lookup": sessions_pb2_grpc.SessionServiceStub(channel).GetSessionByToken,
        "session_refresh": sessions_pb2_grpc.SessionServiceStub(channel).RefreshSession,
        "character_patch": characters_pb2_grpc.CharacterDbServiceStub(channel).UpdateCharacter,
    }
    if scenario not in stubs:
        raise ValueError(f"unknown scenario {scenario}")
    stub = stubs[scenario]
    return lambda keys, md: stub(_request(scenario, keys, batch), metadata=md)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _drive(calls: list, keys: list[str], metadata, *, start: float, duration: float):
    """One thread per call function, calling in a closed loop from `start` (wall clock) for `duration` seconds."""
    import grpc

    deadline = start + duration
    latencies, errors, lock = [], Counter(), threading.Lock()

    def loop(call) -> None:
        mine, failed = [], Counter()
        time.sleep(max(0.0, start - time.time()))
        while time.time() < deadline:
            started = time.perf_counter()
            try:
                call(keys, metadata)
                mine.append(time.perf_counter() - started)
            except grpc.RpcError as error:
                failed[error.code().name] += 1
        with lock:
            latencies.extend(mine)
            errors.update(failed)

    threads = [threading.Thread(target=loop, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def _serve_runs(address: str, api_key: str, concurrency: int, jobs, ready, results) -> None:
    """One load process: takes runs from `jobs` until None, answering each in `results`."""
    import grpc

    # A local subchannel pool: each channel its own connection (channels to one address share one otherwise).
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=options) for _ in range(concurrency)]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)
    metadata = (("authorization", f"Api-Key {api_key}"),)
    ready.put("up")
    while (job := jobs.get()) is not None:
        calls = [_call_for(job["scenario"], channel, job["batch"]) for channel in channels]
        ready.put("ready")
        start = jobs.get()  # the common start, on the wall clock every process shares
        cpu = _cpu_seconds()
        latencies, errors = _drive(calls, job["keys"], metadata, start=start, duration=job["duration"])
        results.put({"latencies": latencies, "errors": dict(errors), "cpu_seconds": _cpu_seconds() - cpu})
    for channel in channels:
        channel.close()


class LoadPool:
    """`processes` load processes against one gRPC server, kept up between runs."""

    def __init__(self, *, address: str, api_key: str, processes: int = 2, concurrency: int = 8) -> None:
        self.processes, self.concurrency = processes, concurrency
        context = multiprocessing.get_context("spawn")
        self.ready, self.results = context.Queue(), context.Queue()
        self.jobs = [context.Queue() for _ in range(processes)]
        self.workers = [
            context.Process(
                target=_serve_runs,
                args=(address, api_key, concurrency, jobs, self.ready, self.results),
                daemon=True,
            )
            for jobs in self.jobs
        ]
        for worker in self.workers:
            worker.start()
        self._collect(self.ready, "start", timeout=60)

    def _collect(self, answers_from, what: str, timeout: float) -> list:
        answers = []
        deadline = time.monotonic() + timeout
        while len(answers) < self.processes:
            try:
                answers.append(answers_from.get(timeout=max(0.1, min(1.0, deadline - time.monotonic()))))
            except queue.Empty:  # check that the processes are still alive
                dead = [w.exitcode for w in self.workers if not w.is_alive()]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"gRPC load processes did not {what} (exit codes {dead})") from None
        return answers

    def run(self, scenario: str, keys: list[str], *, duration: float, batch: int = 50) -> dict:
        """Drive one scenario; calls per second, errors by status code, latency percentiles (ms), client CPU."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario}")
        for jobs in self.jobs:
            jobs.put({"scenario": scenario, "keys": keys, "duration": duration, "batch": batch})
        self._collect(self.ready, "get the run", timeout=60)
        start = time.time() + START_MARGIN
        for jobs in self.jobs:
            jobs.put(start)
        answers = self._collect(self.results, "finish the run", timeout=duration + 60)
        latencies = sorted(latency for answer in answers for latency in answer["latencies"])
        errors = Counter()
        for answer in answers:
            errors.update(answer["errors"])
        calls = len(latencies)

        def percentile(p: float) -> float:
            return round(latencies[min(calls - 1, int(calls * p))] * 1000, 3) if calls else 0.0

        per_call = batch if scenario == "character_batch" else 1
        cpu = sum(answer["cpu_seconds"] for answer in answers)
        return {
            "scenario": scenario,
            "calls": calls,
            "seconds": duration,
            "errors": sum(errors.values()),
            "error_codes": dict(errors),
            "rps": round(calls / duration, 1),
            "items_per_second": round(calls * per_call / duration, 1),
            "p50_ms": percentile(0.5),
            "p90_ms": percentile(0.9),
            "p99_ms": percentile(0.99),
            "max_ms": round(latencies[-1] * 1000, 3) if calls else 0.0,
            "mean_ms": round(sum(latencies) / calls * 1000, 3) if calls else 0.0,
            "client_cpu_ms": round(cpu * 1000 / calls, 3) if calls else None,
            "processes": self.processes,
            "concurrency": self.concurrency,
        }

    def close(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for worker in self.workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)

    def __enter__(self) -> "LoadPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def call_once(*, address: str, api_key: str, scenario: str, keys: list[str], batch: int = 50):
    """One call of `scenario` from this process (the benchmark's pre-flight check); raises grpc.RpcError."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        return _call_for(scenario, channel, batch)(keys, (("authorization", f"Api-Key {api_key}"),))


# -- h2load: a C load generator for the lookups -------------------------------------------------------


def ensure_h2load() -> str:
    """The h2load executable (Debian's nghttp2-client), installed when missing and this process is root."""
    path = shutil.which("h2load")
    if not path and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing h2load (apt-get install -y nghttp2-client) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "nghttp2-client"]
        if subprocess.run(install, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
            subprocess.run(install, env=env, check=True, stdout=subprocess.DEVNULL)
        path = shutil.which("h2load")
    if not path:
        raise RuntimeError("h2load is not installed: apt-get install -y nghttp2-client (scripts/services.sh does)")
    return path


def h2load_version(h2load: str) -> str:
    out = subprocess.run([h2load, "--version"], capture_output=True, text=True, check=False).stdout.split()
    return out[-1] if out else "unknown"


def grpc_frame(message) -> bytes:
    """A unary gRPC request body: the length-prefixed message (no compression)."""
    data = message.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


def call_raw(*, address: str, api_key: str, path: str, data: bytes, timeout: float = 10.0) -> bytes:
    """One call of method `path` with the encoded request `data`; the encoded answer, or grpc.RpcError."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        method = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        return method(data, metadata=(("authorization", f"Api-Key {api_key}"),), timeout=timeout)


def run_h2load(
    h2load: str,
    *,
    address: str,
    api_key: str,
    scenario: str,
    keys: list[str],
    duration: float,
    connections: int,
    threads: int,
    batch: int = 50,
) -> dict:
    """Drive `scenario` with h2load over h2c: `connections` connections, one call in flight on each (as wrk).

    h2load sends one body for every request, so a run repeats one request drawn from `keys` (a batch: one
    draw of `batch` ids); and it reads no trailers, where gRPC puts the call's status: before the run the
    same body is sent once through grpcio and must answer OK, and `verify_h2load` checks afterwards that the
    server's own request metrics counted as many OK calls as h2load completed."""
    if scenario not in H2LOAD_SCENARIOS:
        raise ValueError(f"h2load drives only {', '.join(H2LOAD_SCENARIOS)}")
    path = METHOD_PATHS[scenario]
    request = _request(scenario, keys, batch)
    call_raw(address=address, api_key=api_key, path=path, data=request.SerializeToString())
    with tempfile.TemporaryDirectory(prefix="questdb-h2load-") as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log"
        body.write_bytes(grpc_frame(request))
        command = [
            h2load,
            f"--clients={connections}",
            f"--threads={min(threads, connections)}",
            "--max-concurrent-streams=1",
            f"--duration={max(1, round(duration))}",
            f"--data={body}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--header=authorization: Api-Key {api_key}",
            f"--log-file={log}",
            f"http://{address}{path}",
        ]
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL)
        if out.returncode:
            raise RuntimeError(f"h2load exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
        entries = [line.split("\t") for line in log.read_text().splitlines() if line]
    statuses = Counter(fields[1] for fields in entries)
    latencies = sorted(int(fields[2]) / 1e6 for fields in entries if fields[1] == "200")
    calls = len(latencies)
    seconds = max(1, round(duration))

    def percentile(p: float) -> float:
        return round(latencies[min(calls - 1, int(calls * p))] * 1000, 3) if calls else 0.0

    per_call = batch if scenario == "character_batch" else 1
    http_errors = sum(count for status, count in statuses.items() if status != "200")
    return {
        "scenario": scenario,
        "path": path,
        "calls": calls,
        "seconds": seconds,
        "errors": http_errors,
        "error_codes": {f"HTTP {status}": count for status, count in statuses.items() if status != "200"},
        "rps": round(calls / seconds, 1),
        "items_per_second": round(calls * per_call / seconds, 1),
        "p50_ms": percentile(0.5),
        "p90_ms": percentile(0.9),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if calls else 0.0,
        "mean_ms": round(sum(latencies) / calls * 1000, 3) if calls else 0.0,
        "connections": connections,
        "command": " ".join(
            "--header=authorization: Api-Key KEY" if arg.startswith("--header=authorization") else arg
            for arg in command
            if not arg.startswith(("--data=", "--log-file="))
        ),
        "summary": next((line.strip() for line in out.stdout.splitlines() if line.startswith("requests:")), ""),
    }


def served_calls(metrics_dir: Path, path: str) -> Counter:
    """The server's own count of calls of method `path` by gRPC status (its request metric), from its
    Prometheus multiprocess files."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    counts: Counter = Counter()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    for metric in registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "questdb_http_request_duration_seconds_count"
                and sample.labels.get("method") == "GRPC"
                and sample.labels.get("route") == path
            ):
                counts[sample.labels["status"]] += int(sample.value)
    return counts


def verify_h2load(result: dict, before: Counter, after: Counter) -> dict:
    """`result` with the server's view: its errors by gRPC status, and its OK calls beyond those h2load completed
    (`unmatched`: the checked call before the run, and those the end of the run cut off, at most one per
    connection). Outside that range the difference counts as errors ("unverified")."""
    served = {status: after[status] - before.get(status, 0) for status in after}
    failed = {status: count for status, count in served.items() if status != "OK" and count}
    result["server_ok"] = served.get("OK", 0)
    result["unmatched"] = result["server_ok"] - result["calls"]
    result["errors"] += sum(failed.values())
    result["error_codes"] = {**result["error_codes"], **failed}
    extra = result["unmatched"] - 1
    if not 0 <= extra <= result["connections"]:
        result["errors"] += abs(extra)
        result["error_codes"]["unverified"] = extra
    return result


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
    """Drive one scenario with a pool of its own."""
    with LoadPool(address=address, api_key=api_key, processes=processes, concurrency=concurrency) as pool:
        return pool.run(scenario, keys, duration=duration, batch=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--keys", type=Path, required=True, help="a file of keys, one a line")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2, help="load processes (with --h2load: its threads)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (with --h2load: connections)")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--h2load", action="store_true", help=f"drive with h2load ({', '.join(H2LOAD_SCENARIOS)})")
    args = parser.parse_args()
    keys = [line for line in args.keys.read_text().splitlines() if line]
    if args.h2load:
        result = run_h2load(
            ensure_h2load(),
            address=args.address,
            api_key=args.api_key,
            scenario=args.scenario,
            keys=keys,
            duration=args.duration,
            connections=args.concurrency,
            threads=args.processes,
            batch=args.batch,
        )
    else:
        result = run(
            address=args.address,
            api_key=args.api_key,
            scenario=args.scenario,
            keys=keys,
            duration=args.duration,
            processes=args.processes,
            concurrency=args.concurrency,
            batch=args.batch,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
