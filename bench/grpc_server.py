"""`python -m bench.grpc_server`: `manage.py grpcserver`, unchanged, plus the benchmark's statement counter.

The gRPC counterpart of bench/gunicorn_conf.py: Django is set up, bench.sqlcount is installed, and the
project's own `grpcserver` command runs with the environment the benchmark gives it.
"""

import django
from django.core.management import call_command


def main() -> None:
    django.setup()
    from bench import sqlcount

    sqlcount.install()
    call_command("grpcserver")


if __name__ == "__main__":
    main()
