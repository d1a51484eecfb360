"""bench.cores: the split puts each side's processes, their children and their threads on its own cores."""

import os
import subprocess
import sys

import pytest

from bench import cores

pytestmark = pytest.mark.skipif(cores.halves() is None, reason="a split needs at least two cores")

# A parent with a thread and a child process: the split must reach all three.
FAMILY = """
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _family():
    process = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True)
    child = int(process.stdout.readline())
    return process, child


def _affinities(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(task.name)) for task in (cores.PROC / str(pid) / "task").iterdir()]


def test_a_split_pins_each_side_with_its_children_and_threads_and_gives_every_core_back():
    writers, child = _family()
    others, others_child = _family()
    everything = set(cores.available())
    late = None
    try:
        with cores.split([writers.pid], [others.pid]) as (writers_cores, others_cores):
            assert writers_cores.isdisjoint(others_cores)
            assert writers_cores | others_cores == everything
            assert len(_affinities(writers.pid)) >= 2  # the main thread and the sleeping one
            assert all(cores_ == writers_cores for cores_ in _affinities(writers.pid) + _affinities(child))
            assert all(cores_ == others_cores for cores_ in _affinities(others.pid))
            assert os.sched_getaffinity(0) == writers_cores  # what the benchmark starts next joins the writers
            late = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        # Restored, and so is a process started inside the split.
        for pid in (writers.pid, child, others.pid, late.pid, os.getpid()):
            assert all(cores_ == everything for cores_ in _affinities(pid)), pid
    finally:
        for process in (writers, others, late):
            if process is not None:
                process.kill()
        for pid in (child, others_child):
            os.kill(pid, 9)


def test_descendants_walks_the_whole_tree():
    parent, child = _family()
    try:
        assert cores.descendants(parent.pid)[:1] == [parent.pid]
        assert child in cores.descendants(parent.pid)
        assert parent.pid not in cores.descendants(child)
    finally:
        parent.kill()
        os.kill(child, 9)
