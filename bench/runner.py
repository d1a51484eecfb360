"""`python -m bench`: seed, serve, load, measure, report. See bench/README.md."""

import argparse
import contextlib
import os
import runpy
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

import grpc
import redis

from bench import cores, dataset, grpc_load, load, metrics, report
from bench import invalidation as inv
from bench.scenarios import (
    BATCH_SIZE,
    BY_NAME,
    COLD,
    CREATED_PREFIX,
    MIX,
    SAMPLE_OF,
    SCENARIOS,
    WARM,
    build_request,
    read_samples,
)
from bench.server import GrpcServer, Server, clean_environment, free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_DB = 14
API_KEY_NAME = "questdb-bench"
CACHE_KEY_PREFIX = "questdb-bench"
# Capture on, then off, this many times per core layout: the ratios are the median of the pairs', since one slow
# phase on these noisy machines moves a mean of two by up to 30%.
CAPTURE_PAIRS = 3
# DRF keeps a per-key list of request times for the window; a one-second window keeps it short.
THROTTLE_RATE = "1000000/s"
APPS = ("questdb", "naive", "ceiling", "grpc")
WSGI = {
    "questdb": "questdb.config.wsgi:application",
    "naive": "bench.naive.wsgi:application",
    "ceiling": "bench.ceiling:application",
}
SETTINGS = {"questdb": "questdb.config.settings", "naive": "bench.naive.settings"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--users", type=int, help="dataset size: users (sessions 1x); default 100000")
    parser.add_argument(
        "--characters-per-user",
        type=int,
        default=3,
        choices=range(1, 10),
        metavar="K",
        help="characters per user on average, 1-9 (default 3; the list scenario's users own 10 whatever it is)",
    )
    parser.add_argument("--duration", type=int, help="seconds of load per scenario run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--grpc-processes",
        type=int,
        default=2,
        help="gRPC load processes (bench.grpc_load); the wrk connections are split among them (default 2)",
    )
    parser.add_argument(
        "--python-grpc-load",
        action="store_true",
        help="drive the warm gRPC lookups with bench.grpc_load too, instead of h2load",
    )
    parser.add_argument("--hot-keys", type=int, default=2000, help="keys per family in the warm hot set")
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the benchmark database")
    parser.add_argument(
        "--keep-data", action="store_true", help="skip seeding when the database already holds a dataset of this size"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny data, 1 s runs: checks that everything works")
    parser.add_argument("--database", help="database name (default questdb_bench, or questdb_bench_smoke)")
    parser.add_argument(
        "--redis-db",
        type=int,
        default=REDIS_DB,
        help=f"Redis database number, flushed by cold runs (default {REDIS_DB})",
    )
    parser.add_argument("--output", type=Path, help="directory for latest.md/latest.json (default bench/results)")
    parser.add_argument("--apps", default=",".join(APPS), help="servers to run, comma-separated: " + ", ".join(APPS))
    parser.add_argument("--scenarios", help="only these scenarios, comma-separated (default: all)")
    parser.add_argument(
        "--no-invalidation",
        action="store_true",
        help="skip the invalidation runs (lag under load, write cost of change capture); skipped with --scenarios",
    )
    parser.add_argument(
        "--only-invalidation",
        action="store_true",
        help="questdb's invalidation runs alone (no scenario table, no comparison servers)",
    )
    parser.add_argument(
        "--external-rate", type=float, default=300, help="rows/s the external writer adds during the lag run"
    )
    parser.add_argument(
        "--profile-mode",
        choices=("wall", "gil"),
        default="wall",
        help="py-spy samples request threads' wall time (default) or only the thread holding the GIL",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every server, e.g. WEB_CONCURRENCY=4 (repeatable; shown in the report)",
    )
    parser.add_argument(
        "--profile",
        metavar="SCENARIO[:cold],...",
        help="after questdb's warm (or cold) run of SCENARIO, profile a worker with py-spy in an extra run",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.users = args.users or 200
        args.duration = args.duration or 1
        args.database = args.database or "questdb_bench_smoke"
    args.users = args.users or 100_000
    args.duration = args.duration or 10
    args.database = args.database or "questdb_bench"
    args.output = args.output or ROOT / "bench" / "results"
    args.apps = [app.strip() for app in args.apps.split(",") if app.strip()]
    unknown = set(args.apps) - set(APPS)
    if unknown:
        parser.error(f"unknown apps: {', '.join(sorted(unknown))}")
    if "grpc" in args.apps and "questdb" not in args.apps:
        parser.error("--apps grpc needs questdb too: the gRPC runs share its warm-ups and are compared with it")
    if args.grpc_processes < 1 or args.grpc_processes > args.connections:
        parser.error("--grpc-processes must be between 1 and --connections")
    names = [name.strip() for name in args.scenarios.split(",")] if args.scenarios else [s.name for s in SCENARIOS]
    unknown = set(names) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.scenario_list = [BY_NAME[name] for name in names]
    args.invalidation = not args.no_invalidation and not args.scenarios and "questdb" in args.apps
    if args.only_invalidation:
        args.invalidation, args.apps, args.scenario_list = True, ["questdb"], []
    args.extra_env = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--server-env wants NAME=VALUE, not {item!r}")
        args.extra_env[name] = value
    args.profile_runs = set()
    for spec in (args.profile or "").split(","):
        name, _, state = spec.strip().partition(":")
        if not name:
            continue
        states = BY_NAME[name].states if name in BY_NAME else ()
        state = state or (WARM if WARM in states else states[0] if states else "")
        if state not in states:
            parser.error(f"--profile: no run {spec!r}")
        args.profile_runs.add((name, state))
    if args.users < 100:
        parser.error("--users must be at least 100")
    return args


def capture_ratio(runs: list[dict], topology: str, value) -> float | None:
    """The median over the pairs of back-to-back phases (capture on, then off; see Bench._capture_runs) of
    value(on) / value(off): one phase slowed by something else moves one pair, not the figure."""
    phases = [run for run in runs if run["topology"] == topology]
    ratios = []
    for on, off in zip(phases[0::2], phases[1::2], strict=True):
        assert (on["capture"], off["capture"]) == ("on", "off")
        try:
            ratios.append(value(on) / value(off))
        except (ZeroDivisionError, TypeError):  # a phase that wrote nothing, or whose CPU was not counted
            continue
    return round(statistics.median(ratios), 3) if ratios else None


def _split_sides(groups: dict[str, int]) -> tuple[list[int], list[int]]:
    """(the writers' side, the rest) for cores.split, from Bench._cpu_groups: see bench/cores.py."""
    return [groups["primary"], groups["questdb"]], [groups["standby"], groups["redis"], groups["consumer"]]


def _tag() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(3))


def _runs_on(app: str, scenario) -> bool:
    return app == "questdb" or (app == "naive" and scenario.on_naive) or (app == "grpc" and bool(scenario.rpc))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.shape = dataset.Shape(args.users, args.characters_per_user)
        self.work = ROOT / "var" / "bench" / args.database
        self.samples = self.work / "samples"
        self.secret = secrets.token_urlsafe(64)
        self.redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
        self.redis = redis.Redis.from_url(self.redis_url)
        self.wrk = load.ensure_wrk()
        self.results: list[dict] = []
        self.api_key = ""
        self.user_payload_bytes = 0
        self.profiles: list[dict] = []
        self.notes: list[str] = []
        self.servers: dict = {}
        self.grpc_pool: grpc_load.LoadPool | None = None
        use_h2load = "grpc" in args.apps and not args.python_grpc_load
        self.h2load: str | None = grpc_load.ensure_h2load() if use_h2load else None
        self._gunicorn: dict | None = None
        self.consumer: inv.ConsumerProcess | None = None
        self.invalidation: dict | None = None

    # -- environment -----------------------------------------------------------------
    def env(self, app: str | None = None, *, port: int = 0) -> dict:
        env = clean_environment()
        env.update(
            QUESTDB_ENV="production",
            SECRET_KEY=self.secret,
            SECURE_SSL_REDIRECT="false",
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.args.database}",
            DB_READ_HOST="127.0.0.1:5433",
            REDIS_URL=self.redis_url,
            CACHE_KEY_PREFIX=CACHE_KEY_PREFIX,
            LOG_LEVEL="WARNING",
            API_THROTTLE_RATE=THROTTLE_RATE,
            MAX_CHARACTERS_PER_USER="10",
            BENCH_DATABASE=self.args.database,
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE=SETTINGS.get(app or "questdb", ""),
        )
        if app == "grpc":
            # As many worker processes and threads per process as gunicorn has.
            conf = self.gunicorn_conf()
            env.update(
                DJANGO_SETTINGS_MODULE=SETTINGS["questdb"],
                GRPC_LISTEN_ADDR="127.0.0.1",
                GRPC_PORT=str(port),
                GRPC_PROCESSES=str(conf["workers"]),
                GRPC_MAX_WORKERS=str(conf["threads"]),
                GRPC_METRICS_PORT="0",
                GRPC_HEALTH_CHECK_INTERVAL="3600",  # checked once at start: its query stays out of the counts
                PROMETHEUS_MULTIPROC_DIR=str(self.work / "metrics" / app),
            )
        env.update(self.args.extra_env)
        if not env["DJANGO_SETTINGS_MODULE"]:
            del env["DJANGO_SETTINGS_MODULE"]
        if port and app != "grpc":
            env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.work / "metrics" / app)
        if app == "ceiling":
            env["BENCH_CEILING_BYTES"] = str(self.user_payload_bytes or 300)
        return env

    # -- data --------------------------------------------------------------------------
    def prepare_data(self) -> dict:
        args, shape = self.args, self.shape
        print(
            f"database {args.database}: {shape.users:,} users, {shape.characters:,} characters, "
            f"{shape.sessions:,} sessions",
            flush=True,
        )
        created = dataset.ensure_database(args.database, fresh=args.fresh)
        print(f"  {'created' if created else 'reusing'} database; migrating ...", flush=True)
        dataset.migrate(self.env())
        self.api_key = dataset.create_api_key(self.env(), API_KEY_NAME)
        if args.keep_data and not args.fresh and dataset.matches(args.database, shape):
            print("  keeping the seeded dataset (--keep-data)", flush=True)
            dataset.delete_created_characters(args.database, CREATED_PREFIX)
            seconds = 0.0
        else:
            seconds = dataset.seed(args.database, shape)
            self.redis.delete(inv.heartbeat_key(CACHE_KEY_PREFIX))  # a reset, as after a restore
        counts = dataset.write_samples(args.database, self.samples)
        print(f"  seeded in {seconds:.1f}s; samples in {self.samples}", flush=True)
        started = time.monotonic()
        replayed = dataset.wait_for_replay()
        if replayed:
            print(f"  standby replayed the seed in {time.monotonic() - started:.1f}s", flush=True)
        else:
            self.notes.append("The standby did not confirm replay of the seed: replica figures may be off.")
        return {
            "users": shape.users,
            "characters": shape.characters,
            "sessions": shape.sessions,
            "list_users": shape.list_users,
            "characters_per_list_user": dataset.LIST_CHARACTERS,
            "seed_seconds": round(seconds, 1),
            "samples": counts,
            "hot_keys": self.args.hot_keys,
        }

    # -- servers ---------------------------------------------------------------------------
    def start(self, app: str) -> Server:
        port = free_port()
        metrics_dir = self.work / "metrics" / app
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        server = Server(app, WSGI[app], self.env(app, port=port), self.work / "logs" / f"{app}.log")
        if app == "questdb":
            # The cache is trusted only while the invalidation consumer runs, as in production.
            self.consumer = inv.ConsumerProcess(self.env("questdb"), self.work / "logs" / "invalidate_cache.log")
            self.consumer.start()
        server.start("/healthz" if app == "questdb" else "/")
        if app == "questdb":
            self._wait_for_replica(server)
            self._wait_for_trust(server)
        return server

    def start_grpc(self) -> GrpcServer:
        metrics_dir = self.work / "metrics" / "grpc"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        server = GrpcServer(self.env("grpc", port=free_port()), self.work / "logs" / "grpc.log")
        server.start()
        processes = self.args.grpc_processes
        self.grpc_pool = grpc_load.LoadPool(
            address=server.address,
            api_key=self.api_key,
            processes=processes,
            concurrency=max(1, self.args.connections // processes),
        )
        return server

    def preflight_grpc(self, server: GrpcServer) -> None:
        """One call per gRPC scenario, checked, so a broken setup fails here with the status it got."""
        for scenario in (s for s in self.args.scenario_list if s.rpc):
            keys = read_samples(self.samples, SAMPLE_OF[scenario.name], BATCH_SIZE if scenario.lookups > 1 else 1)
            try:
                answer = grpc_load.call_once(
                    address=server.address, api_key=self.api_key, scenario=scenario.name, keys=keys, batch=BATCH_SIZE
                )
            except grpc.RpcError as error:
                raise RuntimeError(
                    f"grpc {scenario.rpc} answered {error.code().name}: {error.details()} (server log: "
                    f"{server.log_path})"
                ) from None
            if scenario.lookups > 1 and len(answer.characters) != len(keys):
                raise RuntimeError(f"grpc {scenario.rpc} found {len(answer.characters)} of {len(keys)} characters")

    def _wait_for_trust(self, server: Server, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.json("/readyz").get("cache", {}).get("trusted"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"questdb's cache never became trusted; see {self.consumer.log_path}")

    def flush_cache(self) -> None:
        """Empty Redis for a cold run, then wait for the consumer's new epoch: a cold run measures misses on a
        trusted cache, not the untrusted moments after a flush (every lookup read from the database)."""
        self.redis.flushdb()
        self._wait_for_trust(self.servers["questdb"])

    def _wait_for_replica(self, server: Server, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replicas = server.json("/readyz").get("databases", {})
            if any(d.get("role") == "replica" and d.get("taking_reads") for d in replicas.values()):
                return
            time.sleep(0.25)
        self.notes.append("questdb's replica was not taking reads when the runs began.")
        print("  warning: questdb reports no replica taking reads", flush=True)

    def preflight(self, server: Server, app: str) -> None:
        """One request per scenario, checked, so a broken setup fails here with the server's answer."""
        for scenario in self.args.scenario_list:
            names = list(MIX) if scenario.name == "mix" else [scenario.name]
            for name in (n for n in names if app == "questdb" or BY_NAME[n].on_naive):
                key = read_samples(self.samples, SAMPLE_OF[name], 1)[0]
                # Each app's own tag: both create a character for the same user, and names are unique.
                req = build_request(name, key, tag=f"pre{app[0]}")
                status, body = server.request(req, api_key=self.api_key)
                expected = BY_NAME[name].ok_status
                if status != expected:
                    raise RuntimeError(
                        f"{app} {req.method} {req.path} answered {status}, expected {expected}: {body[:300]!r}"
                        f" (server log: {server.log_path})"
                    )
                if app == "questdb" and name == "user_id":
                    self.user_payload_bytes = len(body)

    def warm_up(self, server: Server, names: list[str], limit: int = 0) -> None:
        """Request every hot key of these scenarios once (or the first `limit`), so the cache holds them."""
        requests = []
        for name in names:
            keys = read_samples(self.samples, SAMPLE_OF[name], limit or self.args.hot_keys)
            requests += [build_request(name, key) for key in keys]
        statuses = server.run_requests(requests, api_key=self.api_key, concurrency=self.args.connections)
        bad = {status: count for status, count in statuses.items() if status != 200}
        if bad:
            raise RuntimeError(f"warm-up of {server.name} ({', '.join(names)}) saw {bad}")

    # -- runs --------------------------------------------------------------------------------
    def measure(self, server: Server, app: str, scenario_name: str, state: str, *, limit: int, label: str) -> dict:
        metrics_dir = self.work / "metrics" / app
        server_pids = [server.process.pid, *server.worker_pids()]
        before = metrics.snapshot(metrics_dir, self.redis)
        cpu_before = metrics.cpu(server_pids)
        result = load.run_wrk(
            self.wrk,
            port=server.port,
            scenario=scenario_name,
            samples=self.samples,
            limit=limit,
            tag=_tag(),
            api_key=self.api_key,
            duration=self.args.duration,
            connections=self.args.connections,
            threads=self.args.threads,
        )
        cpu_after = metrics.cpu(server_pids)
        delta = metrics.snapshot(metrics_dir, self.redis).minus(before)
        seconds = result["duration_us"] / 1e6
        errors = result["errors"]
        latency = {key: round(value / 1000, 3) for key, value in result["latency_us"].items()}
        row = {
            "app": app,
            "scenario": scenario_name if app != "ceiling" else "ceiling",
            "label": label,
            "group": BY_NAME[scenario_name].group if app != "ceiling" else "ceiling",
            "lookups_per_request": BY_NAME[scenario_name].lookups if app != "ceiling" else 1,
            "state": state,
            "requests": result["requests"],
            "seconds": round(seconds, 2),
            "rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
            "latency_ms": latency,
            "non_2xx": errors["status"],
            "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            **metrics.summarize(delta, result["requests"]),
            **metrics.cpu_summary(cpu_before, cpu_after, seconds, result["requests"]),
            "wrk": result["command"],
        }
        self.results.append(row)
        print(report.progress_line(row), flush=True)
        return row

    def measure_grpc(self, server: GrpcServer, scenario_name: str, state: str, *, limit: int) -> dict:
        scenario = BY_NAME[scenario_name]
        metrics_dir = self.work / "metrics" / "grpc"
        keys = read_samples(self.samples, SAMPLE_OF[scenario_name], limit)
        # h2load (C, as wrk) where one repeated request stands for the run: warm lookups, whose answer
        # comes from the cache whichever hot key is asked. Cold runs and writes need a new key per call.
        use_h2load = self.h2load is not None and state == WARM and scenario_name in grpc_load.H2LOAD_SCENARIOS
        clients = [] if use_h2load else [worker.pid for worker in self.grpc_pool.workers]
        before = metrics.snapshot(metrics_dir, self.redis)
        served_before = grpc_load.served_calls(metrics_dir, grpc_load.METHOD_PATHS[scenario_name])
        cpu_before = metrics.cpu(server.pids(), clients)
        if use_h2load:
            result = grpc_load.run_h2load(
                self.h2load,
                address=server.address,
                api_key=self.api_key,
                scenario=scenario_name,
                keys=keys,
                duration=self.args.duration,
                connections=self.args.connections,
                threads=self.args.threads,
                batch=BATCH_SIZE,
            )
        else:
            result = self.grpc_pool.run(scenario_name, keys, duration=self.args.duration, batch=BATCH_SIZE)
        cpu_after = metrics.cpu(server.pids(), clients)
        delta = metrics.snapshot(metrics_dir, self.redis).minus(before)
        if use_h2load:
            served_after = grpc_load.served_calls(metrics_dir, grpc_load.METHOD_PATHS[scenario_name])
            result = grpc_load.verify_h2load(result, served_before, served_after)
            load_text = f"h2load: {result['connections']} connections x 1 call in flight, one request per run"
        else:
            load_text = f"bench.grpc_load: {result['processes']} processes x {result['concurrency']} calls in flight"
        row = {
            "app": "grpc",
            "scenario": scenario_name,
            "label": f"{scenario.rpc}" + (f"({BATCH_SIZE} ids)" if scenario.lookups > 1 else ""),
            "rest_label": scenario.label,
            "rpc": scenario.rpc,
            "group": scenario.group,
            "lookups_per_request": scenario.lookups,
            "state": state,
            "requests": result["calls"],
            "seconds": result["seconds"],
            "rps": result["rps"],
            "latency_ms": {key: result[f"{key}_ms"] for key in ("mean", "max", "p50", "p90", "p99")},
            "non_2xx": result["errors"],
            "error_codes": result["error_codes"],
            "socket_errors": 0,
            **metrics.summarize(delta, result["calls"]),
            **metrics.cpu_summary(cpu_before, cpu_after, result["seconds"], result["calls"]),
            "load": load_text,
            "generator": "h2load" if use_h2load else "bench.grpc_load",
        }
        if use_h2load:
            row.update(h2load=result["command"], server_ok=result["server_ok"], unmatched=result["unmatched"])
        self.results.append(row)
        print(report.progress_line(row), flush=True)
        return row

    def run_servers(self) -> None:
        """All servers run at once; each scenario runs on questdb, then at once on naive, so both meet the same
        background load. The ceiling runs first and last."""
        apps = self.args.apps
        servers = self.servers
        try:
            for app in (a for a in apps if a not in ("ceiling", "grpc")):
                print(f"starting {app} ...", flush=True)
                servers[app] = self.start(app)
                self.preflight(servers[app], app)
                self.warm_up(servers[app], ["user_id", "character_id"], limit=100)  # opens pools and connections
            if "grpc" in apps:
                print("starting grpc (manage.py grpcserver) ...", flush=True)
                servers["grpc"] = self.start_grpc()
                self.preflight_grpc(servers["grpc"])
            dataset.delete_created_characters(self.args.database, CREATED_PREFIX)  # the pre-flight creates
            if "ceiling" in apps:
                servers["ceiling"] = self.start("ceiling")
                self.measure_ceiling(servers["ceiling"], "start")
            for scenario in self.args.scenario_list:
                for state in scenario.states:
                    for app in (a for a in ("questdb", "naive", "grpc") if a in servers):
                        if _runs_on(app, scenario):
                            self.run_one(servers[app], app, scenario, state)
                if scenario.group in ("write", "mix"):
                    dataset.delete_created_characters(self.args.database, CREATED_PREFIX)
            if self.args.invalidation:
                self.measure_invalidation(servers["questdb"])
                dataset.delete_created_characters(self.args.database, CREATED_PREFIX)
            if "ceiling" in servers:
                self.measure_ceiling(servers["ceiling"], "end")
        finally:
            if self.grpc_pool is not None:
                self.grpc_pool.close()
            for server in servers.values():
                server.stop()
            if self.consumer is not None:
                self.consumer.stop()
            dataset.delete_created_characters(self.args.database, CREATED_PREFIX)

    def measure_ceiling(self, server: Server, state: str) -> None:
        self.measure(server, "ceiling", "user_id", state, limit=self.args.hot_keys, label="bare WSGI, fixed body")

    def _wrk(self, server: Server, scenario_name: str) -> dict:
        result = load.run_wrk(
            self.wrk,
            port=server.port,
            scenario=scenario_name,
            samples=self.samples,
            limit=self.args.hot_keys,
            tag=_tag(),
            api_key=self.api_key,
            duration=self.args.duration,
            connections=self.args.connections,
            threads=self.args.threads,
        )
        seconds = result["duration_us"] / 1e6
        return {
            "requests": result["requests"],
            "rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
            "latency_ms": {key: round(value / 1000, 3) for key, value in result["latency_us"].items()},
            "non_2xx": result["errors"]["status"],
        }

    def measure_invalidation(self, server: Server) -> None:
        """Commit-to-Redis lag while the read mix runs and another process writes into PostgreSQL; then the write
        throughput with the change-capture triggers enabled and disabled, alternately."""
        database, duration = self.args.database, self.args.duration
        print("invalidation: lag under the mix with external writes ...", flush=True)
        self.warm_up(server, [name for name in MIX if BY_NAME[name].warms_up])
        before = inv.lag_counts(self.redis, CACHE_KEY_PREFIX)
        writer = inv.start_writer(
            database=database, samples=self.samples, rate=self.args.external_rate, seconds=duration, connections=2
        )
        mix = self._wrk(server, "mix")
        external = inv.writer_result(writer, timeout=duration + 60)
        inv.wait_for_heartbeat(self.redis, CACHE_KEY_PREFIX)  # every change so far has reached Redis
        lag = inv.percentiles(before, inv.lag_counts(self.redis, CACHE_KEY_PREFIX))
        print(
            f"  {external['rows_per_second']:,.0f} external rows/s beside the mix ({mix['rps']:,.0f} req/s): "
            f"lag p50 {lag['p50']} ms, p99 {lag['p99']} ms over {lag['changes']:,} changes",
            flush=True,
        )
        groups = self._cpu_groups(server)
        topologies = {"shared": None}
        if cores.halves() is not None:
            topologies["split"] = sides = _split_sides(groups)
            # Every core for every process first: a benchmark killed inside its split leaves the database and Redis
            # pinned.
            cores.pin([*sides[0], *sides[1]], set(cores.available()))
        runs = []
        try:
            for topology, sides in topologies.items():
                with cores.split(*sides) if sides else contextlib.nullcontext():
                    runs += self._capture_runs(server, topology, groups)
        finally:
            inv.set_capture(database, enabled=True)
            # Writes made while capture was off are in no outbox: drop every cached value (a new epoch).
            self.redis.delete(inv.heartbeat_key(CACHE_KEY_PREFIX))

        self.invalidation = {
            "lag_ms": lag,
            "mix": mix,
            "external_writes": external,
            "external_rate_target": self.args.external_rate,
            "capture_runs": runs,
            "write_ratio": {
                topology: {
                    "questdb_patch": capture_ratio(runs, topology, lambda run: run["patch"]["rps"]),
                    "external": capture_ratio(runs, topology, lambda run: run["external_rows_per_second"]),
                }
                for topology in topologies
            },
            "cpu_ratio": {
                topology: {
                    # Writes per CPU-second with capture over without: what a machine bound by CPU keeps.
                    "questdb_patch": capture_ratio(runs, topology, lambda run: 1 / run["patch_cpu_us"]["total"]),
                    "external": capture_ratio(runs, topology, lambda run: 1 / run["external_cpu_us"]["total"]),
                }
                for topology in topologies
            },
        }
        print(f"  write throughput with / without capture: {self.invalidation['write_ratio']}", flush=True)

    def _capture_runs(self, server: Server, topology: str, groups: dict[str, int]) -> list[dict]:
        """bench.writer at full speed, then questdb's PATCH, with the capture triggers on and off in turn; each with
        the CPU it cost per write, by process (`groups`, see bench.invalidation.cpu_seconds)."""
        phases = ("on", "off") * (1 if self.args.smoke else CAPTURE_PAIRS)
        runs = []
        for phase in phases:
            inv.set_capture(self.args.database, enabled=phase == "on")
            before = inv.cpu_seconds(groups)
            writer = inv.start_writer(
                database=self.args.database, samples=self.samples, rate=0, seconds=self.args.duration, connections=4
            )
            written = inv.writer_result(writer, timeout=self.args.duration + 60)
            # Until the consumer has invalidated every change so far: its work is part of the write's cost.
            inv.wait_for_heartbeat(self.redis, CACHE_KEY_PREFIX)
            between = inv.cpu_seconds(groups)
            patch = self._wrk(server, "character_patch")
            inv.wait_for_heartbeat(self.redis, CACHE_KEY_PREFIX)
            after = inv.cpu_seconds(groups)
            runs.append(
                {
                    "topology": topology,
                    "capture": phase,
                    "external_rows_per_second": written["rows_per_second"],
                    "external_cpu_us": inv.cpu_per(before, between, written["rows"]),
                    "patch": patch,
                    "patch_cpu_us": inv.cpu_per(between, after, patch["requests"]),
                }
            )
            print(
                f"  {topology} cores, capture {phase:<3}: external {written['rows_per_second']:,.0f} rows/s "
                f"({runs[-1]['external_cpu_us']['total']:,.0f} µs of CPU each), questdb PATCH {patch['rps']:,.0f} "
                f"req/s ({runs[-1]['patch_cpu_us']['total']:,.0f} µs each)",
                flush=True,
            )
        return runs

    def _cpu_groups(self, server: Server) -> dict[str, int]:
        """The processes a write costs CPU in, by name: the root of each (see bench.invalidation.cpu_seconds)."""
        return {
            "primary": inv.postmaster_pid(self.args.database, port=5432),
            "standby": inv.postmaster_pid("postgres", port=5433),
            "redis": int(self.redis.info("server")["process_id"]),
            "consumer": self.consumer.process.pid,
            "questdb": server.process.pid,
        }

    def run_one(self, server: Server | GrpcServer, app: str, scenario, state: str) -> None:
        if app in ("questdb", "grpc"):
            # gRPC reads the same cache: questdb's REST warm-up fills it for both.
            if state == COLD:
                self.flush_cache()
            elif scenario.warms_up:
                self.warm_up(self.servers["questdb"], [scenario.warm_with or scenario.name])
            elif scenario.name == "mix":
                self.warm_up(server, [name for name in MIX if BY_NAME[name].warms_up])
        # The naive app has no cache: its warm runs just draw from the same hot set.
        limit = 0 if state == COLD or scenario.name == "character_create" else self.args.hot_keys
        if app == "grpc":
            self.measure_grpc(server, scenario.name, state, limit=limit)
            return
        self.measure(server, app, scenario.name, state, limit=limit, label=scenario.label)
        if app == "questdb" and (scenario.name, state) in self.args.profile_runs:
            self.run_profile(server, scenario.name, state)

    def run_profile(self, server: Server, scenario_name: str, state: str) -> None:
        """Profile one worker with py-spy during an extra, unmeasured run of this scenario and state."""
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if not py_spy:
            self.notes.append("--profile was given but py-spy is not installed (pip install py-spy).")
            return
        if state == COLD:
            self.flush_cache()
        workers = server.worker_pids()
        name = f"{scenario_name}-{state}"
        raw = self.work / f"profile-{name}.raw.txt"
        duration = max(2, self.args.duration)
        print(f"  profiling worker {workers[0]} with py-spy for {duration}s ({name}) ...", flush=True)
        command = [py_spy, "record", "--pid", str(workers[0]), "--duration", str(duration), "--rate", "200"]
        command += ["--format", "raw", "--output", str(raw)] + (["--gil"] if self.args.profile_mode == "gil" else [])
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load.run_wrk(
            self.wrk,
            port=server.port,
            scenario=scenario_name,
            samples=self.samples,
            limit=0 if state == COLD else self.args.hot_keys,
            tag=_tag(),
            api_key=self.api_key,
            duration=duration + 1,
            connections=self.args.connections,
            threads=self.args.threads,
        )
        spy.wait(timeout=60)
        if raw.exists():
            profile = report.summarize_profile(raw, name, mode=self.args.profile_mode)
            self.profiles.append(profile)
            self.args.output.mkdir(parents=True, exist_ok=True)
            (self.args.output / f"profile-{name}.txt").write_text(profile["text"])

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> dict:
        started = time.monotonic()
        # The commit the servers run, taken before they start (others may commit while the benchmark runs).
        versions = {**report.versions(self.wrk), **dataset.server_versions(), "redis": self._redis_version()}
        data = self.prepare_data()
        self.run_servers()
        return {
            "machine": report.machine(),
            "versions": versions,
            "settings": self.settings(),
            "dataset": data,
            "results": self.results,
            "profiles": self.profiles,
            "invalidation": self.invalidation,
            "notes": self.notes,
            "wall_seconds": round(time.monotonic() - started, 1),
        }

    def _redis_version(self) -> str:
        return str(self.redis.info("server").get("redis_version"))

    def gunicorn_conf(self) -> dict:
        """The worker class, workers and threads gunicorn.conf.py gives questdb's environment."""
        if self._gunicorn is None:
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update(self.env("questdb"))
            try:
                conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
            finally:
                os.environ.clear()
                os.environ.update(saved)
            self._gunicorn = {key: conf[key] for key in ("worker_class", "workers", "threads")}
        return self._gunicorn

    def settings(self) -> dict:
        grpc_env = self.env("grpc", port=1) if "grpc" in self.args.apps else {}
        processes = self.args.grpc_processes
        return {
            "gunicorn": self.gunicorn_conf(),
            "grpc": {
                "command": "manage.py grpcserver",
                "processes": int(grpc_env["GRPC_PROCESSES"]),
                "max_workers": int(grpc_env["GRPC_MAX_WORKERS"]),
                "load_processes": processes,
                "calls_in_flight_per_process": max(1, self.args.connections // processes),
                "h2load": grpc_load.h2load_version(self.h2load) if self.h2load else None,
            }
            if grpc_env
            else None,
            "wrk": {
                "threads": self.args.threads,
                "connections": self.args.connections,
                "duration_s": self.args.duration,
            },
            "server_env": {
                key: value
                for key, value in self.env("questdb").items()
                if key
                in (
                    "QUESTDB_ENV",
                    "SECURE_SSL_REDIRECT",
                    "ALLOWED_HOSTS",
                    "DATABASE_URL",
                    "DB_READ_HOST",
                    "REDIS_URL",
                    "CACHE_KEY_PREFIX",
                    "LOG_LEVEL",
                    "API_THROTTLE_RATE",
                    "MAX_CHARACTERS_PER_USER",
                )
            },
            "extra_server_env": self.args.extra_env,
            "smoke": self.args.smoke,
            "user_payload_bytes": self.user_payload_bytes,
        }


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # also when started in the background, where SIGINT is ignored
    args = parse_args(argv)
    bench = Bench(args)
    data = bench.run()
    data = report.finish(data, smoke=args.smoke)
    paths = report.write(data, args.output)
    print()
    print(report.summary_text(data))
    print("\nwrote " + ", ".join(str(path) for path in paths))
    return 0
