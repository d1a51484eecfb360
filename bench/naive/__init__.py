"""Comparison code for the questdb benchmark, not part of questdb: the naive implementation.

A plain Django REST framework app over questdb's tables, as one would first write it: a
ModelViewSet per model, Django's default settings and middleware, persistent connections
(CONN_MAX_AGE=60), no cache, no read replica, DRF's default renderers and parsers, and the API key
checked by djangorestframework-api-key's permission against questdb's api_keys table on every
request. It serves the same paths as questdb so the same wrk scripts drive both.
"""
