"""The project's gunicorn settings: what each worker does once the app is loaded."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FREEZE_PROBE = """
import gc, runpy
config = runpy.run_path("gunicorn.conf.py")
before = gc.get_freeze_count()
config["post_worker_init"](worker=None)
print(before, gc.get_freeze_count())
"""


def test_workers_take_the_loaded_app_out_of_the_collectors_reach():
    probe = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    before, after = map(int, probe.stdout.split())
    assert before == 0
    assert after > 1000  # every object alive at that point, so full collections skip them
