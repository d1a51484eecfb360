"""Comparison code for the questdb benchmark, not part of questdb: the ceiling.

A bare WSGI callable that answers every request with one fixed JSON body of the size of a user
payload (BENCH_CEILING_BYTES). Served by the same gunicorn settings, it measures what the server,
the loopback and wrk cost without any Django, database or cache work: no questdb endpoint can be
faster on this machine.
"""

import json
import os

_SIZE = int(os.environ.get("BENCH_CEILING_BYTES", "300"))


def _body(size: int) -> bytes:
    body = json.dumps({"id": "00000000-0000-4000-8000-000000000000", "padding": ""}, separators=(",", ":"))
    return body.replace('"padding":""', '"padding":"' + "x" * max(0, size - len(body)) + '"').encode()


BODY = _body(_SIZE)
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    wsgi_input = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH")
    if wsgi_input is not None and length:
        wsgi_input.read(int(length))  # like a real endpoint, consume the request body
    start_response("200 OK", HEADERS)
    return [BODY]
