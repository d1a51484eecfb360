"""The API's URL root, written once: the root URLconf mounts the viewsets under it and the hit path matches it."""

API_ROOT = "api/v1/"
