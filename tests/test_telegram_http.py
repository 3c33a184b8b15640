"""PTB's transport on aiohttp: calls, files, and the errors PTB expects (TimedOut, NetworkError)."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot, InputFile
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram.http import AiohttpRequest

TOKEN = "123456:TEST-token_for_the_transport_test_0000"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    seen: list[dict[str, object]] = []

    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        if name == "slow":
            await asyncio.sleep(1.5)
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            doc = form["document"]
            seen.append({"method": name, "chat_id": form["chat_id"], "file": doc.filename,  # type: ignore[union-attr]
                         "content": doc.file.read()})  # type: ignore[union-attr]
        else:
            seen.append({"method": name, **(await request.post())})
        sent = {"message_id": 7, "date": 0, "chat": {"id": 1, "type": "private"}}
        return web.json_response({"ok": True, "result": sent})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_calls_and_files_reach_the_api(server: tuple[str, list[dict[str, object]]]) -> None:
    base, seen = server
    bot = Bot(TOKEN, base_url=f"{base}/bot", request=AiohttpRequest(), get_updates_request=AiohttpRequest())
    await bot._request[1].initialize()
    try:
        msg = await bot.send_message(chat_id=42, text="你好 & =")
        assert msg.message_id == 7
        await bot.send_document(chat_id=42, document=InputFile(b"{\"a\": 1}", filename="data.json"))
    finally:
        await bot._request[1].shutdown()
    assert seen[0] == {"method": "sendMessage", "chat_id": "42", "text": "你好 & ="}
    assert seen[1] == {"method": "sendDocument", "chat_id": "42", "file": "data.json", "content": b"{\"a\": 1}"}


async def test_a_slow_answer_is_timed_out(server: tuple[str, list[dict[str, object]]]) -> None:
    base, _ = server
    request = AiohttpRequest(read_timeout=0.3)
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{base}/bot{TOKEN}/slow")
    finally:
        await request.shutdown()


async def test_a_refused_connection_is_a_network_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as info:
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
        assert not isinstance(info.value, TimedOut)
    finally:
        await request.shutdown()


async def test_the_proxy_in_the_environment_is_used(server: tuple[str, list[dict[str, object]]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Where api.telegram.org is only reachable through a proxy, HTTP(S)_PROXY is honoured (as by PTB's own
    transport): the API here is a port nobody listens on, reachable only through the proxy."""
    proxy, seen = server  # the fake API answers proxied requests too (an absolute URL in the request line)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    request = AiohttpRequest()
    await request.initialize()
    try:
        await request.post(f"http://127.0.0.1:{dead}/bot{TOKEN}/getMe")
    finally:
        await request.shutdown()
    assert seen == [{"method": "getMe"}]
