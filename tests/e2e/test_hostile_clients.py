"""Hostile clients against a real gunicorn, alone and behind the real nginx of the production topology."""

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from characters.models import Character
from tests.e2e.conftest import ROOT, free_port, gunicorn, wait_until_healthy

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SLOW_CLIENTS = 40


@contextlib.contextmanager
def nginx(upstream: str, workdir: Path):
    """The project's docker/nginx template in front of `upstream`, on a free port; yields the base URL."""
    port = free_port()
    template = (ROOT / "docker" / "nginx" / "questdb.conf.template").read_text()
    server = template.replace("${QUESTDB_UPSTREAM}", upstream).replace("${QUESTDB_LISTEN}", f"127.0.0.1:{port}")
    workdir.mkdir(mode=0o777, exist_ok=True)
    (workdir / "questdb.conf").write_text(server)
    temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(mode=0o777, exist_ok=True)
        path.chmod(0o777)  # nginx's workers may run as nobody
    (workdir / "nginx.conf").write_text(
        f"daemon off; worker_processes 1; pid {workdir}/nginx.pid; error_log {workdir}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {temp['body']}; proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']}; uwsgi_temp_path {temp['uwsgi']}; scgi_temp_path {temp['scgi']};\n"
        f"  include {workdir}/questdb.conf; }}\n"
    )
    process = subprocess.Popen([NGINX, "-p", str(workdir), "-c", str(workdir / "nginx.conf")], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, name="nginx", timeout=10)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory):
    """One gunicorn (production settings, one process), the real nginx in front of it, and the work dir."""
    workdir = tmp_path_factory.mktemp("hostile")
    with (
        gunicorn(
            DB_READ_HOST="",
            GUNICORN_THREADS="8",
            HOME=str(workdir),
            XDG_RUNTIME_DIR="",
            GUNICORN_CONTROL_SOCKET=str(workdir / "first.ctl"),
        ) as direct,
        nginx(direct.removeprefix("http://"), workdir / "nginx") as proxied,
    ):
        yield direct, proxied, workdir


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _chunked(base: str, method: str, path: str, body: bytes, key: str, content_type="application/json"):
    connection = http.client.HTTPConnection(*_host_port(base), timeout=10)
    pieces = (body[i : i + 7] for i in range(0, len(body), 7))
    connection.request(
        method,
        path,
        body=pieces,
        headers={"Authorization": f"Api-Key {key}", "Content-Type": content_type},
        encode_chunked=True,
    )
    response = connection.getresponse()
    answer = response.status, response.read()
    connection.close()
    return answer


@pytest.mark.parametrize("through", ["gunicorn", "nginx"])
def test_a_chunked_patch_is_applied_not_dropped(servers, make_user, write_key, through):
    base = servers[0] if through == "gunicorn" else servers[1]
    hero = Character.objects.create(user=make_user(), name="Hero")
    body = json.dumps({"money": 777, "stats": {"level": 3}}).encode()
    status, answer = _chunked(base, "PATCH", f"/api/v1/characters/{hero.id}/", body, write_key)
    assert status == 200, answer
    assert json.loads(answer)["money"] == 777
    hero = Character.objects.using("default").get(pk=hero.pk)
    assert (hero.money, hero.stats["level"]) == (777, 3)


def test_a_chunked_lookup_is_answered_on_a_miss_and_on_a_hit(servers, make_user, read_key):
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import Session

    Session.objects.create(user=make_user(), token="chunked-token", expires_at=timezone.now() + timedelta(hours=1))
    body = json.dumps({"token": "chunked-token"}).encode()
    answers = [_chunked(servers[0], "POST", "/api/v1/sessions/lookup/", body, read_key) for _ in range(2)]
    assert [status for status, _ in answers] == [200, 200], answers
    assert answers[0][1] == answers[1][1]


def test_a_chunked_body_over_the_limit_is_a_413(servers, make_user, write_key):
    hero = Character.objects.create(user=make_user(), name="Hero")
    body = b'{"money": 1, "pad": "' + b"x" * 300_000 + b'"}'
    status, answer = _chunked(servers[0], "PATCH", f"/api/v1/characters/{hero.id}/", body, write_key)
    assert status == 413
    assert json.loads(answer)["code"] == "body_too_large"
    assert Character.objects.using("default").get(pk=hero.pk).money == 0


def _slow_clients(base: str, count: int, stop: threading.Event) -> threading.Thread:
    """`count` sockets that send a request line, then one header line a second, and never finish."""

    def trickle():
        sockets = []
        for _ in range(count):
            with contextlib.suppress(OSError):
                sock = socket.create_connection(_host_port(base), timeout=2)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sockets.append(sock)
        while not stop.wait(1.0):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
        for sock in sockets:
            sock.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    return thread


def _healthz_answers(base: str, *, tries: int = 4, timeout: float = 2.0) -> int:
    answered = 0
    for _ in range(tries):
        with contextlib.suppress(requests.RequestException):
            answered += requests.get(f"{base}/healthz", timeout=timeout).status_code == 200
        time.sleep(0.3)
    return answered


@pytest.mark.parametrize(("through", "expected"), [("gunicorn", "starved"), ("nginx", "answered")])
def test_slow_clients_starve_gunicorn_alone_but_not_behind_nginx(servers, through, expected):
    base = servers[0] if through == "gunicorn" else servers[1]
    stop = threading.Event()
    thread = _slow_clients(base, SLOW_CLIENTS, stop)
    try:
        time.sleep(1.5)  # every slow socket is connected and trickling
        answered = _healthz_answers(base)
    finally:
        stop.set()
        thread.join(timeout=10)
    if expected == "answered":
        assert answered == 4
    else:
        assert answered < 4  # why the topology puts nginx in front


def test_two_instances_on_one_host_keep_their_own_control_socket(servers):
    _, _, workdir = servers
    first = workdir / "first.ctl"
    assert first.is_socket()
    with gunicorn(DB_READ_HOST="", HOME=str(workdir), XDG_RUNTIME_DIR=""):  # the default: no control socket
        assert not (workdir / ".gunicorn" / "gunicorn.ctl").exists()
        assert first.is_socket()
    second = workdir / "second.ctl"
    with gunicorn(DB_READ_HOST="", HOME=str(workdir), XDG_RUNTIME_DIR="", GUNICORN_CONTROL_SOCKET=str(second)):
        assert second.is_socket()
    assert first.is_socket()  # stopping the other instance left this one's alone
    with socket.socket(socket.AF_UNIX) as control:
        control.connect(str(first))


def test_nginx_answers_malformed_http_in_json(servers):
    _, proxied, _ = servers
    response = requests.get(f"{proxied}/api/v1/users/{'x' * 9000}/", timeout=5)
    assert response.status_code == 414
    assert response.json()["code"] == "uri_too_long"
    with socket.create_connection(_host_port(proxied), timeout=5) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
    assert b'"code": "bad_request"' in reply
