"""The API's one JSON parser: DRF's, with questdb's text rules and depth limit (questdb/text.py)."""

from django.conf import settings
from rest_framework import parsers

from questdb.errors import InvalidInput
from questdb.text import MALFORMED, parse_json


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise InvalidInput(f"The body is not valid {encoding} text.", code=MALFORMED) from None
        return parse_json(text)
