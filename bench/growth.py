"""`python -m bench.growth SMALL.json LARGE.json`: how lookup latency grows with the data.

Reads two reports of `python -m bench` run at different sizes (`--users`) and prints, per
lookup scenario and state, p50 at the larger size over p50 at the smaller one, their median and
their worst; the target (1.2) holds when every one of them is within it. Both runs should use the
same scenarios and settings.
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


def growth(small: dict, large: dict) -> dict[tuple[str, str], float]:
    before, after = p50s(small), p50s(large)
    return {run: after[run] / before[run] for run in sorted(before.keys() & after.keys()) if before[run] > 0}


def main(argv: list[str] | None = None) -> int:
    paths = (argv if argv is not None else sys.argv[1:])[:2]
    if len(paths) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    small, large = (json.loads(Path(path).read_text()) for path in paths)
    sizes = small["dataset"]["users"], large["dataset"]["users"]
    ratios = growth(small, large)
    if not ratios:
        print("the two reports share no lookup runs", file=sys.stderr)
        return 1
    print(f"p50 at {sizes[1]:,} users / p50 at {sizes[0]:,} users")
    for (scenario, state), ratio in ratios.items():
        print(f"  {scenario:<16} {state:<5} {ratio:5.2f}")
    median, worst = statistics.median(ratios.values()), max(ratios.values())
    verdict = "holds" if worst <= TARGET else "MISSED"
    print(f"median {median:.2f}, worst {worst:.2f} (target: every lookup <= {TARGET}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
