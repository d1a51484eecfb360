"""Chunked request bodies, made whole before anything reads them.

A request sent with `Transfer-Encoding: chunked` has no Content-Length. gunicorn decodes
the chunks into `wsgi.input` but leaves CONTENT_LENGTH unset, and Django reads a body of
CONTENT_LENGTH bytes: 0, so such a PATCH would answer 200 and change nothing. This WSGI
layer, the outermost one, reads the decoded body (at most MAX_REQUEST_BYTES), sets
CONTENT_LENGTH and hands on a buffer, so the hit path and Django see an ordinary body.
A larger body is refused with 413 before the application runs.
"""

import io
import json
from collections.abc import Callable

from django.conf import settings

from questdb.api.errors import error_body

READ_CHUNK = 64 * 1024


def is_chunked(environ: dict) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and not environ.get("CONTENT_LENGTH")


class ChunkedBodies:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable):
        if is_chunked(environ):
            body = self._read(environ["wsgi.input"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
            if body is None:
                return self._too_large(start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.app(environ, start_response)

    @staticmethod
    def _read(stream, limit: int) -> bytes | None:
        parts, size = [], 0
        while True:
            part = stream.read(min(READ_CHUNK, limit + 1 - size))
            if not part:
                return b"".join(parts)
            parts.append(part)
            size += len(part)
            if size > limit:
                return None

    @staticmethod
    def _too_large(start_response: Callable):
        body = json.dumps(error_body("body_too_large", "The request body is too large.")).encode()
        start_response(
            "413 Request Entity Too Large",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
        )
        return [body]
