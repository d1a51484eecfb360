"""gunicorn settings for the benchmark: the project's gunicorn.conf.py, unchanged, plus a statement counter.

Every server of the benchmark (questdb, bench.naive, bench.ceiling) runs with these settings,
so they share workers, threads, keep-alive and timeouts. The only addition: the post_worker_init
hook also installs bench.sqlcount in Django apps (it is skipped for the bare ceiling app).
"""

import os
from pathlib import Path

_PROJECT_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_PROJECT_CONF.read_text(), str(_PROJECT_CONF), "exec"))


_project_post_worker_init = post_worker_init  # noqa: F821 (defined by the project's file above)


def post_worker_init(worker) -> None:
    _project_post_worker_init(worker)
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from bench import sqlcount

        sqlcount.install()
