"""What text questdb accepts from outside: one rule for paths, queries and JSON bodies, and whole-string patterns.

PostgreSQL cannot store a NUL character in text (psycopg raises DataError) and UTF-8 cannot
encode a lone surrogate (UnicodeEncodeError), so both are refused at the edge with a 400
instead of failing deep inside a query. JSON bodies are also limited in nesting depth: no
questdb document nests deeper than a few levels, and deep nesting costs recursion everywhere
it is walked (parse, validation, rendering, psycopg's adaptation).

Patterns are whole-string rules. Python's `re.match(r"^x$", "x\\n")` succeeds (`$` matches
before a final newline) where PostgreSQL's `~` does not; `full_match` gives Python the
database's reading of the same pattern.
"""

import json
import re
from typing import Any

from questdb.errors import InvalidInput

FORBIDDEN_TEXT = re.compile("[\x00\ud800-\udfff]")
MAX_JSON_DEPTH = 32
UNSAFE_TEXT = "unsafe_text"
TOO_DEEP = "json_too_deep"
MALFORMED = "malformed_request"


def is_unsafe(text: str) -> bool:
    """A NUL character or a lone surrogate: text that cannot reach the database."""
    return FORBIDDEN_TEXT.search(text) is not None


def refuse_unsafe(text: str, *, field: str | None = None) -> str:
    if is_unsafe(text):
        raise InvalidInput("Text must not contain NUL characters or lone surrogates.", code=UNSAFE_TEXT, field=field)
    return text


def check_document(document: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Refuse a parsed JSON document nested deeper than `max_depth` or holding unsafe text (keys too)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            refuse_unsafe(value)
        elif isinstance(value, (dict, list)):
            if depth > max_depth:
                raise InvalidInput(f"JSON nests deeper than {max_depth} levels.", code=TOO_DEEP)
            if isinstance(value, dict):
                for key, item in value.items():
                    refuse_unsafe(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
    return document


def parse_json(text: str) -> Any:
    """`json.loads` plus questdb's limits; every malformed or refused document is InvalidInput."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise InvalidInput(f"JSON nests deeper than {MAX_JSON_DEPTH} levels.", code=TOO_DEEP) from None
    except ValueError as error:
        raise InvalidInput(f"Malformed JSON: {error}", code=MALFORMED) from None
    if "\\" not in text and not is_unsafe(text) and text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        # No escapes and no forbidden character anywhere, and too few brackets to nest past the limit:
        # nothing the walk could find (the common case, and much cheaper than the walk).
        return document
    return check_document(document)


def full_match(pattern: str) -> re.Pattern:
    """`pattern` anchored to the whole string, as PostgreSQL's `~` reads `^...$`."""
    return re.compile(rf"\A(?:{pattern})\Z")
