"""Which cores the benchmark's processes may run on: every one shares all of them, or two separate sides.

A deployment runs the database primary (and the writers' own code) apart from the invalidation consumer,
Redis and the standby: they are other containers, usually other hosts. On one machine `split` models that
by CPU affinity: the writers' side (the primary and each of its backends, the consumer's included, the
processes that write, the load generator) on the first half of the cores, the rest on the other half.
Each change then costs the writers' side what it would cost a primary of its own: the trigger, the outbox row,
the consumer's statements; and the consumer's Python and Redis's scripts run where they would run.
"""

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

PROC = Path("/proc")


def available() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def halves() -> tuple[set[int], set[int]] | None:
    """(the writers' cores, the others'); None on a machine with a single core."""
    cores = available()
    if len(cores) < 2:
        return None
    middle = len(cores) // 2
    return set(cores[:middle]), set(cores[middle:])


def stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command (which is in parentheses and may hold spaces): the state is
    [0], the parent's pid [1], utime, stime, cutime, cstime [11:15]. OSError once the process is gone."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def parent(pid: int) -> int:
    return int(stat_fields(pid)[1])


def _children() -> dict[int, list[int]]:
    """Every running process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(parent(int(entry.name)), []).append(int(entry.name))
            except OSError:
                continue
    return children


def children(pid: int) -> list[int]:
    return sorted(_children().get(pid, ()))


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a postmaster's backends, gunicorn's workers)."""
    by_parent = _children()
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(by_parent.get(current, ()))
    return found


def pin(pids: Iterable[int], cores: set[int]) -> int:
    """Every thread of each process in `pids` and below them onto `cores`; how many threads were moved."""
    moved = 0
    for root in pids:
        for pid in descendants(root):
            try:
                threads = [int(task.name) for task in (PROC / str(pid) / "task").iterdir()]
            except OSError:
                continue  # it ended meanwhile
            for tid in threads:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.sched_setaffinity(tid, cores)
                    moved += 1
    return moved


@contextlib.contextmanager
def split(writers: Iterable[int], others: Iterable[int]) -> Iterator[tuple[set[int], set[int]]]:
    """Pin `writers` (with this process, so that what it starts next joins them) and `others` to separate halves
    of the cores; afterwards everything gets every core back, including processes started meanwhile."""
    sides = halves()
    if sides is None:
        raise RuntimeError("a split needs at least two cores")
    writers, others = [os.getpid(), *writers], list(others)
    everything = set(available())
    pin(writers, sides[0])
    pin(others, sides[1])
    try:
        yield sides
    finally:
        pin(writers + others, everything)
