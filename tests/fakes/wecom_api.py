"""The fake WeCom server's API calls (see tests/fakes/wecom.py): each takes the fake and the JSON body."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.fakes.wecom import TASK_ID, Card, Media, epoch

if TYPE_CHECKING:
    from tests.fakes.wecom import FakeWecom

TEXT_BYTES = 2048
CODE_VALID = timedelta(hours=72)
KF_WINDOW = timedelta(hours=48)
MEDIA_VALID = timedelta(days=3)
MEDIA_LIMITS = {"file": 20 * 1024 * 1024}  # bytes; image/voice/video are not used by the bot: refused here
MEDIA_MIN = 6  # "所有文件size必须大于5个字节"


async def media_upload(fake: FakeWecom, request: web.Request) -> dict[str, Any]:
    """media/upload?type=file: a multipart/form-data body with one part named "media" carrying a file name."""
    kind = request.query.get("type", "")
    if kind not in MEDIA_LIMITS:
        return fake.refuse("media/upload", 40004, "invalid media type")
    if not request.content_type.startswith("multipart/form-data"):
        return fake.refuse("media/upload", 44001, "empty media data (not multipart/form-data)")
    reader = await request.multipart()
    parts: list[tuple[str, str, str, bytes]] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            return fake.refuse("media/upload", 44001, "empty media data (nested multipart)")
        parts.append((part.name or "", part.filename or "", part.headers.get("Content-Type", ""),
                      await part.read()))
    media = [p for p in parts if p[0] == "media"]
    if len(parts) != 1 or len(media) != 1 or not media[0][1]:
        return fake.refuse("media/upload", 44001, "empty media data (one part named media with a filename)")
    _, filename, content_type, content = media[0]
    if not MEDIA_MIN <= len(content) <= MEDIA_LIMITS[kind]:
        return fake.refuse("media/upload", 40006, "invalid file size")
    media_id = fake.next_id("media")
    fake.media[media_id] = Media(filename, content, content_type, kind, fake.clock.now())
    fake.uploads += 1
    return {"errcode": 0, "errmsg": "", "type": kind, "media_id": media_id,
            "created_at": str(epoch(fake.clock.now()))}


def _file_of(fake: FakeWecom, body: dict[str, Any]) -> Media | None:
    """The uploaded file a file message names, if it is one WeCom still has (3 days)."""
    media = fake.media.get(str((body.get("file") or {}).get("media_id", "")))
    if media is None or media.kind != "file" or fake.clock.now() - media.at > MEDIA_VALID:
        return None
    return media


def _over_rate(fake: FakeWecom, user: str) -> bool:
    """Per member from one app: 30/min and 1000/h; the excess is dropped silently."""
    now = fake.clock.now()
    sent = [t for t in fake.member_sends[user] if t > now - timedelta(hours=1)]
    fake.member_sends[user] = sent
    return len([t for t in sent if t > now - timedelta(minutes=1)]) >= 30 or len(sent) >= 1000


def _check_card(fake: FakeWecom, card: dict[str, Any], new: bool) -> str | None:
    task_id = str(card.get("task_id", ""))
    if not TASK_ID.match(task_id):
        return "bad task_id"
    if new and task_id in fake.cards:
        return "task_id already used"
    if card.get("card_type") == "button_interaction":
        buttons = card.get("button_list") or []
        if not 1 <= len(buttons) <= 6 or any(len(b["text"]) > 10 or len(b["key"].encode()) > 1024
                                             for b in buttons):
            return "bad button_list"
    elif card.get("card_type") != "text_notice" or not card.get("card_action"):
        return "bad card"
    return None


def message_send(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """message/send: text or template_card to 'a|b|c'."""
    if body.get("agentid") != fake.agent_id:
        return fake.refuse("message/send", 40056, "invalid agentid")
    users = [u for u in str(body.get("touser", "")).split("|") if u]
    kind = body.get("msgtype")
    out: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": fake.next_id("m")}
    if kind == "text":
        text = str((body.get("text") or {}).get("content", ""))
        if len(text.encode()) > TEXT_BYTES:
            return fake.refuse("message/send", 45002, "content over 2048 bytes")
        entry: dict[str, Any] = {"kind": "text", "text": text}
    elif kind == "template_card":
        card = body.get("template_card") or {}
        problem = _check_card(fake, card, new=True)
        if problem:
            return fake.refuse("message/send", 40058, problem)
        fake.cards[card["task_id"]] = Card(users=users, card=card)
        code = fake.next_id("rc")
        fake.codes[code] = {"task_id": card["task_id"], "at": fake.clock.now(), "used": False}
        out["response_code"] = code
        entry = {"kind": "card", "task_id": card["task_id"]}
    elif kind == "file":
        media = _file_of(fake, body)
        if media is None:
            return fake.refuse("message/send", 40007, "invalid media_id")
        entry = {"kind": "file", "media_id": body["file"]["media_id"], "text": f"[文件] {media.filename}"}
    else:
        return fake.refuse("message/send", 40008, "unsupported msgtype")
    for user in users:
        if _over_rate(fake, user):
            fake.dropped.append((user, entry))
            continue
        fake.member_sends[user].append(fake.clock.now())
        fake.app_inbox[user].append(dict(entry))
    return out


def update_card(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any] | None:
    """message/update_template_card: spend a response code; atall=1 changes every copy."""
    code = fake.codes.get(str(body.get("response_code", "")))
    if code is None or code["used"] or fake.clock.now() - code["at"] > CODE_VALID:
        return fake.refuse("message/update_template_card", 40058, "invalid response_code")
    if body.get("atall") != 1:
        return fake.refuse("message/update_template_card", 40058, "this fake supports atall=1 only")
    card = body.get("template_card") or {}
    problem = _check_card(fake, {**card, "task_id": code["task_id"]}, new=False)
    if problem:
        return fake.refuse("message/update_template_card", 40058, problem)
    code["used"] = True
    target = fake.cards[code["task_id"]]
    target.card = {**card, "task_id": code["task_id"]}
    target.updates.append(target.card)
    return None


def sync_msg(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """kf/sync_msg: messages after the cursor, at most `limit`."""
    if body.get("token") not in fake.sync_tokens or body.get("open_kfid") != fake.open_kfid:
        return fake.refuse("kf/sync_msg", 95007, "invalid msg token")
    start = int(body.get("cursor") or 0)
    if fake.empty_page_once:
        fake.empty_page_once = False
        return {"errcode": 0, "errmsg": "ok", "next_cursor": str(start), "has_more": 1, "msg_list": []}
    limit = min(int(body.get("limit") or 1000), 1000)
    page = fake.kf_log[start:start + limit]
    end = start + len(page)
    return {"errcode": 0, "errmsg": "ok", "next_cursor": str(end), "has_more": int(end < len(fake.kf_log)),
            "msg_list": page}


def _kf_content(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any] | str:
    kind = body.get("msgtype")
    if kind == "text":
        text = str((body.get("text") or {}).get("content", ""))
        return {"text": text} if len(text.encode()) <= TEXT_BYTES else "text over 2048 bytes"
    if kind == "msgmenu":
        menu = body.get("msgmenu") or {}
        head, items = str(menu.get("head_content", "")), menu.get("list") or []
        clicks = [i["click"] for i in items if i.get("type") == "click"]
        if len(head.encode()) > 1024 or len(items) > 10 or any(
                len(c["id"].encode()) > 64 or len(c["content"].encode()) > 128 for c in clicks):
            return "msgmenu over its limits"
        return {"text": "\n".join([head, *(c["content"] for c in clicks)]), "items": clicks}
    if kind == "file":
        media = _file_of(fake, body)
        if media is None:
            return "invalid media_id"
        return {"text": f"[文件] {media.filename}", "file": body["file"]["media_id"]}
    return "unsupported msgtype"


def kf_send(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """kf/send_msg: only in state 0/1, within 48 h and 5 messages of the user's last message."""
    if body.get("open_kfid") != fake.open_kfid:
        return fake.refuse("kf/send_msg", 95000, "invalid open_kfid")
    user = str(body.get("touser", ""))
    kf = fake.kf_users[user]
    if kf.state not in (0, 1):
        return fake.refuse("kf/send_msg", 95016, "session state does not allow sending")
    if kf.last_in is None or fake.clock.now() - kf.last_in > KF_WINDOW:
        return fake.refuse("kf/send_msg", 95002, "outside the 48 h window")
    if kf.sent >= 5:
        return fake.refuse("kf/send_msg", 95001, "over the 5-message limit")
    content = _kf_content(fake, body)
    if isinstance(content, str):
        return fake.refuse("kf/send_msg", 44004, content)
    kf.sent += 1
    msgid = str(body.get("msgid") or fake.next_id("kf"))
    fake.kf_out[user].append({"msgid": msgid, **content})
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def kf_welcome(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any] | None:
    """kf/send_msg_on_event: one message per welcome code, within 20 s."""
    entry = fake.welcome_codes.pop(str(body.get("code", "")), None)
    if entry is None or fake.clock.now() > entry[1]:
        return fake.refuse("kf/send_msg_on_event", 95018, "invalid or used welcome code")
    content = _kf_content(fake, body)
    if isinstance(content, str):
        return fake.refuse("kf/send_msg_on_event", 44004, content)
    fake.kf_out[entry[0]].append({"msgid": fake.next_id("w"), "welcome": True, **content})
    return None


def state_get(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """kf/service_state/get."""
    kf = fake.kf_users[str(body.get("external_userid", ""))]
    return {"errcode": 0, "errmsg": "ok", "service_state": kf.state, "servicer_userid": kf.servicer or ""}


def state_trans(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any] | None:
    """kf/service_state/trans: state 3 needs a servicer."""
    state = int(body.get("service_state", -1))
    if state not in (1, 2, 3, 4) or (state == 3 and not body.get("servicer_userid")):
        return fake.refuse("kf/service_state/trans", 95014, "bad state change")
    kf = fake.kf_users[str(body.get("external_userid", ""))]
    kf.state, kf.servicer = state, body.get("servicer_userid") if state == 3 else None
    fake.trans_log.append(body)
    return None


def add_contact_way(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """kf/add_contact_way: a link per scene."""
    if body.get("open_kfid") != fake.open_kfid:
        return fake.refuse("kf/add_contact_way", 95000, "invalid open_kfid")
    return {"errcode": 0, "errmsg": "ok", "url": f"https://work.weixin.qq.com/kfid/{fake.open_kfid}?enc_scene={body['scene']}"}
