"""Static files are served by the app itself under gunicorn: the console's editors and the offline API docs."""

import pytest
import requests

from tests.e2e.conftest import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases="__all__")]


def test_gunicorn_serves_the_admin_editor_and_api_docs_assets_without_collectstatic(tmp_path):
    with gunicorn(STATIC_ROOT=str(tmp_path / "never-collected")) as base:
        docs = requests.get(f"{base}/api/docs/", timeout=10)
        assert docs.status_code == 200
        for path in ("/static/admin/css/base.css", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"):
            response = requests.get(f"{base}{path}", timeout=10)
            assert response.status_code == 200, path
            assert response.headers["Content-Type"].startswith("text/css")
        assert requests.get(f"{base}/static/no-such-file.css", timeout=10).status_code == 404
