"""questdb's benchmark: `python -m bench` (or `make bench`).

It serves questdb the way production does (gunicorn with gunicorn.conf.py, QUESTDB_ENV=production,
the PostgreSQL primary, its hot standby and Redis), seeds a dataset in PostgreSQL, drives load with
wrk from a separate process and writes bench/results/latest.md and latest.json. Two comparison
servers run beside it on the same data and gunicorn settings: bench.ceiling (a bare WSGI callable)
and bench.naive (a plain DRF ModelViewSet app). See bench/README.md.
"""
