"""Hostile clients of a directly exposed `lmforge serve`, at the transport: connections that
send nothing, headers a byte at a time, bodies ever more slowly, a huge declared body, more
connections than the server takes, stop strings by the thousand, forged X-Forwarded-For,
and /docs loading script from a third party. Each was a way to hold the server or a user."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import API_KEY, Server

pytestmark = pytest.mark.integration

HEADER_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE = 1.0, 2.0, 2
MAX_CONNECTIONS = 16
SLACK = 1.5  # seconds a closed connection may take to be seen closed on a loaded machine


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[Server]:
    running = Server(
        tiny_model,
        *("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)),
        *("--keep-alive-timeout", str(KEEP_ALIVE), "--max-connections", str(MAX_CONNECTIONS)),
    )
    yield running
    assert running.stop() == 0, running.stderr()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection. A client still sending
    when the server closes gets a reset, which may drop the answer before it is read."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole response (its head and Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head_part, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head_part, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return head_part + b"\r\n\r\n" + body


def timed_out(answer: bytes) -> bool:
    """A 408, or nothing where a reset dropped it (see read_to_close)."""
    return answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: localhost", *lines, "", ""]).encode()


def test_connections_that_send_nothing_are_closed_and_capped(server: Server) -> None:
    """Before: 200 idle connections stayed open for as long as they liked."""
    idle = [connect(server) for _ in range(2 * MAX_CONNECTIONS)]
    started = time.monotonic()
    try:
        crowded = httpx.get(f"{server.url}/healthz", timeout=10)
        assert crowded.status_code == 503  # over --max-connections: refused, not queued
        answers = [read_to_close(sock) for sock in idle]
        elapsed = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
    assert elapsed < HEADER_TIMEOUT + SLACK, elapsed
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0]
    assert b'"type":"request_timeout"' in answers[0]
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def trickle(sock: socket.socket, first: bytes, drip: bytes, every: float) -> tuple[bytes, float]:
    """Send `first`, then `drip` every `every` seconds until the server closes: (what the
    server answered, seconds until it closed)."""
    closed = threading.Event()

    def send() -> None:
        try:
            sock.sendall(first)
            while not closed.wait(every):
                sock.sendall(drip)
        except OSError:
            return

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    try:
        answer = read_to_close(sock)
        return answer, time.monotonic() - started
    finally:
        closed.set()
        sender.join()
        sock.close()


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: Server) -> None:
    """Slowloris: each header line arrives well within any idle timeout, forever."""
    answer, elapsed = trickle(connect(server), head("GET", "/healthz")[:-2], b"X", 0.1)
    assert elapsed < HEADER_TIMEOUT + SLACK, elapsed
    assert timed_out(answer), answer


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    sock = connect(server)
    try:
        sock.sendall(head("GET", "/healthz"))
        answered = read_response(sock)
        started = time.monotonic()
        rest = read_to_close(sock)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert answered.startswith(b"HTTP/1.1 200 ") and rest == b""
    assert KEEP_ALIVE - 0.5 < elapsed < KEEP_ALIVE + SLACK, elapsed


def test_a_body_sent_ever_more_slowly_is_cut_off(server: Server) -> None:
    auth = f"Authorization: Bearer {API_KEY}"
    lines = (auth, "Content-Type: application/json", "Content-Length: 1000")
    first = head("POST", "/v1/tokenize", *lines) + b'{"text": "'
    answer, elapsed = trickle(connect(server), first, b"a", 0.2)
    assert BODY_TIMEOUT - 0.5 < elapsed < BODY_TIMEOUT + SLACK, elapsed
    assert timed_out(answer), answer


@pytest.mark.parametrize("declared", [50_000_000, 10**12])
def test_a_huge_declared_body_is_refused_before_it_is_sent(server: Server, declared: int) -> None:
    """Before: the body limit read up to 64 MiB of a body before answering 413."""
    sock = connect(server)
    try:
        lines = (f"Authorization: Bearer {API_KEY}", f"Content-Length: {declared}")
        sock.sendall(head("POST", "/v1/generate", *lines))
        sock.settimeout(HEADER_TIMEOUT)  # the answer comes at once, not after a deadline
        answer = read_response(sock)
        # A client that sends its body anyway is read and dropped (until the body deadline),
        # not reset: it gets to read the 413.
        sock.settimeout(30)
        sock.sendall(b"x" * 2_000_000)
    finally:
        sock.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["type"] == "request_too_large"


def test_stop_strings_are_capped_in_number_and_length(server: Server) -> None:
    """Before: 30,000 stop strings were accepted, and matched at every token of the
    request, under the engine's lock, slowing every other request 9x."""
    many = [str(i) for i in range(30_000)]
    with server.client() as client:
        native = client.post("/v1/generate", json={"prompt": "the", "stop": many})
        openai = client.post("/v1/completions", json={"prompt": "the", "stop": ["x"] * 17})
        long = client.post("/v1/generate", json={"prompt": "the", "stop": "x" * 65})
        fine = client.post("/v1/generate", json={"prompt": "the", "stop": ["x" * 64] * 16})
    for answer, status in ((native, 422), (openai, 400), (long, 422)):
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["param"] == "stop" and "at most 16" in error["message"]
    assert fine.status_code == 200, fine.text


def test_forwarded_for_is_not_believed_from_an_unconfigured_proxy(server: Server) -> None:
    """Before: any local process could pose as any client with X-Forwarded-For."""
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "forged-forwarded-for"}
    assert httpx.get(f"{server.url}/healthz", headers=headers, timeout=10).status_code == 200

    def logged() -> list[dict]:
        lines = [json.loads(x) for x in server.stderr().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("request_id") == "forged-forwarded-for"]

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [x["client"] for x in logged()] == ["127.0.0.1"]


def test_no_answer_echoes_the_host_header(server: Server) -> None:
    """Before: `/v1/models/` redirected to http://<whatever Host said>/v1/models."""
    answer = httpx.get(
        f"{server.url}/v1/models/",
        headers={"Host": "evil.example", "Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 404 and "location" not in answer.headers
    assert "evil.example" not in answer.text


def test_docs_load_nothing_from_another_origin(server: Server) -> None:
    """Before: /docs loaded Swagger UI's script from a CDN, on the page where keys are typed."""
    page = httpx.get(f"{server.url}/docs", timeout=10)
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert '"validatorUrl": null' in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        answer = httpx.get(f"{server.url}/docs/assets/{asset}", timeout=10)
        assert answer.status_code == 200 and len(answer.content) > 10_000
