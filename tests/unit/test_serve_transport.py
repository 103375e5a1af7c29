"""What `lmforge serve` hands uvicorn: the head and body deadlines (our h11 protocol), the
idle keep-alive, the connection cap, and X-Forwarded-* believed only from configured proxies
(uvicorn's own default believes them from 127.0.0.1). The deadlines themselves are driven
against a real server in tests/integration/test_hostile_transport.py."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Receive, Scope, Send

from lmforge.config.serve import ServeConfig
from lmforge.serve.server import uvicorn_config
from lmforge.serve.transport import DeadlineH11Protocol


def test_the_transport_limits_reach_uvicorn() -> None:
    default = uvicorn_config(None, ServeConfig(model=["m"]))  # type: ignore[arg-type]
    default.load()
    protocol = default.http_protocol_class
    assert issubclass(protocol, DeadlineH11Protocol)
    assert (protocol.header_timeout, protocol.body_timeout) == (10.0, 30.0)
    assert (default.timeout_keep_alive, default.limit_concurrency) == (30, 512)
    assert default.proxy_headers is False
    tuned = ServeConfig(model=["m"], header_timeout=2, body_timeout=5, max_connections=0)
    config = uvicorn_config(None, tuned)  # type: ignore[arg-type]
    config.load()
    assert config.limit_concurrency is None
    assert config.http_protocol_class.header_timeout == 2  # type: ignore[attr-defined]
    assert DeadlineH11Protocol.header_timeout == 10.0  # each server gets its own class


@pytest.mark.parametrize(("allowed", "client"), [([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.9")])
def test_forwarded_for_is_believed_only_from_a_configured_proxy(
    allowed: list[str], client: str
) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["client"][0])

    config = uvicorn_config(app, ServeConfig(model=["m"], forwarded_allow_ips=allowed))
    config.load()
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")],
    }

    async def nothing() -> dict[str, object]:
        return {}

    async def ignore(message: object) -> None:
        return None

    asyncio.run(config.loaded_app(scope, nothing, ignore))
    assert seen == [client]
