"""Comparison code for the questdb benchmark: the naive app's WSGI entry point."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.naive.settings"
application = get_wsgi_application()
