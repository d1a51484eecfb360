"""The WSGI application gunicorn serves: chunked bodies made whole, then cache hits for lookups
answered in front of Django."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "questdb.config.settings")

_django = get_wsgi_application()

from questdb.api.chunked import ChunkedBodies  # noqa: E402 (needs the apps loaded)
from questdb.cache.hit_path import CachedReadApp  # noqa: E402

application = ChunkedBodies(CachedReadApp(_django))
