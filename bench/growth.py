"""`python -m bench.growth SMALL.json[,SMALL2.json...] LARGE.json[,LARGE2.json...]`: how lookup latency grows with
the data.

Reads reports of `python -m bench` run at two sizes (`--users`) and prints, per lookup scenario and state, p50 at
the larger size over p50 at the smaller one, their median and their worst; the target (1.2) holds when every one
of them is within it. Several reports of one size (comma-separated; run the two sizes alternately) count by their
median p50, so that one noisy run does not decide. All runs should use the same scenarios and
settings.
"""

import json
import statistics
import sys
from pathlib import Path

TARGET = 1.2
LOOKUPS = ("point",)  # the point lookups: user, character and session


def p50s(report: dict) -> dict[tuple[str, str], float]:
    return {
        (run["scenario"], run["state"]): run["latency_ms"]["p50"]
        for run in report["results"]
        if run["app"] == "questdb" and run["group"] in LOOKUPS and run["state"] in ("cold", "warm")
    }


def median_p50s(reports: list[dict]) -> dict[tuple[str, str], float]:
    """Each lookup's median p50 over the reports that measured it."""
    runs: dict[tuple[str, str], list[float]] = {}
    for report in reports:
        for run, p50 in p50s(report).items():
            runs.setdefault(run, []).append(p50)
    return {run: statistics.median(values) for run, values in runs.items()}


def growth(small: list[dict], large: list[dict]) -> dict[tuple[str, str], float]:
    before, after = median_p50s(small), median_p50s(large)
    return {run: after[run] / before[run] for run in sorted(before.keys() & after.keys()) if before[run] > 0}


def _size(reports: list[dict]) -> int | None:
    sizes = {report["dataset"]["users"] for report in reports}
    return sizes.pop() if len(sizes) == 1 else None


def main(argv: list[str] | None = None) -> int:
    args = (argv if argv is not None else sys.argv[1:])[:2]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    small, large = ([json.loads(Path(path).read_text()) for path in arg.split(",")] for arg in args)
    sizes = _size(small), _size(large)
    if None in sizes:
        print("the reports on one side are of different sizes", file=sys.stderr)
        return 2
    ratios = growth(small, large)
    if not ratios:
        print("the two reports share no lookup runs", file=sys.stderr)
        return 1
    print(f"p50 at {sizes[1]:,} users / p50 at {sizes[0]:,} users ({len(large)} over {len(small)} report(s))")
    for (scenario, state), ratio in ratios.items():
        print(f"  {scenario:<16} {state:<5} {ratio:5.2f}")
    median, worst = statistics.median(ratios.values()), max(ratios.values())
    verdict = "holds" if worst <= TARGET else "MISSED"
    print(f"median {median:.2f}, worst {worst:.2f} (target: every lookup <= {TARGET}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
