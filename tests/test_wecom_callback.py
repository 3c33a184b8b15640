"""The callback endpoints: the crypto test vector, and bad input → 4xx, nothing changed, worker alive."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.channels.wecom.callback import CallbackCrypto, CallbackError, parse_xml
from storage.models import OutboxMessage, Person, ProcessedEvent, WecomKfSession
from tests.conftest import Backend
from tests.fakes.wecom_bot import WecomBot
from tests.simclient import count_rows

# PROTOCOLS.md: wechatpy's own test vector
VECTOR = {"token": "123456", "key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "corp": "wx49f0ab532d5d035a"}
VECTOR_QUERY = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
                "nonce": "437374425",
                "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="}
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                            for i in range(1, 10))
                  + ']><xml><Encrypt>&lol9;</Encrypt></xml>')


def test_crypto_vector() -> None:
    crypto = CallbackCrypto(VECTOR["token"], VECTOR["key"], VECTOR["corp"])
    assert crypto.verify_url(VECTOR_QUERY) == "5927782489442352469"
    with pytest.raises(CallbackError):
        CallbackCrypto(VECTOR["token"], VECTOR["key"], "wwsomeoneelse").verify_url(VECTOR_QUERY)
    with pytest.raises(CallbackError):
        crypto.verify_url({**VECTOR_QUERY, "msg_signature": "0" * 40})


def test_xml_refuses_entities() -> None:
    with pytest.raises(CallbackError):
        parse_xml(BILLION_LAUGHS)
    assert parse_xml("<xml><A><![CDATA[x]]></A></xml>") == {"A": "x"}


@pytest.fixture
async def vbot(backend: Backend) -> AsyncIterator[WecomBot]:
    """A bot whose app endpoint uses the test vector's token, key and corp id."""
    b = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix,
                              corp_id=VECTOR["corp"], app_token=VECTOR["token"], app_aes=VECTOR["key"])
    try:
        yield b
    finally:
        await b.close()


async def _status(bot: WecomBot, method: str, kind: str, body: bytes = b"", params: Any = None) -> int:
    async with aiohttp.ClientSession() as http:
        url = f"{bot.fake.bot_url}/wecom/callback/{kind}"
        try:
            async with http.request(method, url, data=body, params=params or {}) as r:
                return r.status
        except aiohttp.ClientError:
            return 413  # the server hung up on an oversized upload after refusing it


async def _counts(bot: WecomBot) -> list[int]:
    url = bot.app.cfg.storage.database_url
    return [await count_rows(url, m) for m in (OutboxMessage, Person, ProcessedEvent, WecomKfSession)]


async def test_url_check_with_the_vector(vbot: WecomBot) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{vbot.fake.bot_url}/wecom/callback/app", params=VECTOR_QUERY) as r:
            assert r.status == 200 and await r.text() == "5927782489442352469"
    assert await _status(vbot, "GET", "app", params={**VECTOR_QUERY, "echostr": "AAAA"}) == 403


async def test_bad_callbacks_change_nothing(vbot: WecomBot) -> None:
    fake = vbot.fake
    hello = {"ToUserName": fake.corp_id, "FromUserName": "v-liming", "CreateTime": 1, "MsgType": "text",
             "Content": "/help", "MsgId": "1001", "AgentID": fake.agent_id}
    body, params = fake.seal("app", hello)
    before = await _counts(vbot)
    other_corp = WeChatCrypto(fake.app_token, fake.app_aes, "wwanothercorp01")
    wrong_body, wrong_params = fake.seal("app", hello, crypto=other_corp)
    enc = body.decode().split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    cut = enc[: len(enc) // 2]
    cut_params = {**params, "msg_signature": _get_signature(fake.app_token, params["timestamp"], params["nonce"], cut)}
    cut_body = body.decode().replace(enc, cut).encode()
    laughs_body, laughs_params = fake.seal("app", BILLION_LAUGHS)  # signed and encrypted, entities inside
    cases = {
        "unsigned": (body, {}),
        "bad signature": (body, {**params, "msg_signature": "f" * 40}),
        "other corp": (wrong_body, wrong_params),
        "truncated ciphertext": (cut_body, cut_params),
        "billion laughs envelope": (BILLION_LAUGHS.encode(), params),
        "billion laughs inside": (laughs_body, laughs_params),
        "malformed": (b"<xml><Encrypt>", params),
        "10 MB": (b"<xml>" + b"A" * (10 * 1024 * 1024) + b"</xml>", params),
    }
    for name, (raw, query) in cases.items():
        status = await _status(vbot, "POST", "app", raw, query)
        assert 400 <= status < 500, (name, status)
    await vbot.settle()
    assert await _counts(vbot) == before
    assert fake.app_inbox == {}
    # the worker is alive: the genuine callback is handled
    assert await fake.post_raw("app", body, params) == 200
    await vbot.settle()
    assert "/assign" in fake.texts("v-liming")[-1] or "值班" in fake.texts("v-liming")[-1]


async def test_callback_is_answered_before_the_work_is_done(backend: Backend) -> None:
    bot = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        fake = bot.fake
        fake.gate = asyncio.Event()  # WeCom's API hangs: kf/sync_msg and the replies wait
        assert await asyncio.wait_for(fake.resident_says("wmGATE0001", "你好"), 10) == [200]
        assert await asyncio.wait_for(fake.member_says("v-liming", "/help"), 10) == [200]
        assert fake.kf_texts("wmGATE0001") == [] and fake.texts("v-liming") == []
        fake.gate.set()
        await bot.settle()
        assert len(fake.kf_texts("wmGATE0001")) == 1 and "值班" in fake.texts("v-liming")[-1]  # the notice
    finally:
        await bot.close()


async def test_a_failed_sync_is_tried_again_after_the_200(backend: Backend) -> None:
    bot = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        fake = bot.fake
        fake.fail_next["kf/sync_msg"] = -1  # WeCom is busy once; having answered 200, it will not call again
        assert await fake.resident_says("wmBUSY0001", "你好") == [200]
        await bot.settle()
        assert len(fake.kf_texts("wmBUSY0001")) == 1  # the privacy notice all the same
    finally:
        await bot.close()


async def test_the_kf_cursor_stays_before_a_message_the_core_could_not_handle(backend: Backend) -> None:
    """The core fails on a resident's kf message (its database table is away): the sync stops before it and
    the saved cursor does not move past it, so the next sync — the retry, or the resident's next message —
    handles it after all, in order, once."""
    from bot.channels.wecom.kf import NAME
    from storage import channel_repo
    from tests.test_engine import table_away

    bot = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    try:
        fake, user = bot.fake, "wmFAIL0001"
        async with table_away(backend.database_url, "conversation_states"):
            assert await fake.resident_says(user, "你好") == [200]
            await asyncio.sleep(0.5)  # the first sync meets the failure (its retry comes after 1 s)
            assert fake.kf_texts(user) == []
            async with bot.app.db.read() as s:
                cursor = await channel_repo.get_channel_state(s, NAME, f"cursor:{fake.open_kfid}")
            assert cursor is None  # never saved past the message
        assert await fake.resident_says(user, "同意") == [200]
        await bot.settle()
        texts = fake.kf_texts(user)
        first_lines = [t.split("\n")[0] for t in texts]
        assert first_lines == ["【隐私说明】", "谢谢您！我们开始吧。",  # the first message, once
                               "您好！这里是幸福县新时代文明实践中心志愿服务。", "请问需要哪方面的帮助？"]
    finally:
        await bot.close()
