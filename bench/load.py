"""Drive load with wrk (a separate process) and bench/lua/bench.lua; parse the JSON line its done() prints."""

import json
import os
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua" / "bench.lua"
MARKER = "BENCH_RESULT "


def ensure_wrk() -> str:
    """The wrk executable, installed from Debian's packages when missing and this process is root."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, stdout=subprocess.DEVNULL)
        path = shutil.which("wrk")
        if not path:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True, stdout=subprocess.DEVNULL)
            path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (scripts/services.sh installs it)")
    return path


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    words = (out.stdout + out.stderr).split()
    return words[1] if len(words) > 1 and words[0] == "wrk" else "unknown"


def run_wrk(
    wrk: str,
    *,
    port: int,
    scenario: str,
    samples: Path,
    limit: int,
    tag: str,
    api_key: str,
    duration: float,
    connections: int,
    threads: int,
) -> dict:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        scenario,
        str(samples),
        str(limit),
        tag,
    ]
    env = {**os.environ, "BENCH_API_KEY": api_key}
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL
    )
    for line in out.stdout.splitlines():
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER) :])
            result["command"] = " ".join([*command[:-5], "--", scenario, "SAMPLES", str(limit), tag])
            return result
    raise RuntimeError(f"wrk gave no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
