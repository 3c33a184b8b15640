"""The anchor of the webhook benchmark: a plain python-telegram-bot (v22) bot with a ConversationHandler.

    .venv/bin/python -m bench.ptb_anchor --port P --api http://127.0.0.1:S --token T --secret X [--path PATH]

Served on the same route as wuwei (POST `--path`, the X-Telegram-Bot-Api-Secret-Token header checked),
by aiohttp the way PTB's own webhook server works: the update is parsed, put on the Application's
update_queue and answered 200 at once; the Application handles updates one at a time (PTB's default,
and what its docs require for a ConversationHandler) and replies with sendMessage to the Bot API at
`--api`. Nothing is stored: no database, no deduplication, a crash loses queued updates.

The conversation has two states: any text answers with the privacy notice and its two buttons (ASK);
their next text is acknowledged and the conversation ends. A new user's 你好 gets the same one
sendMessage call as from wuwei (a new resident sees the privacy notice before the first form).

GET /stats answers {"accepted", "handled", "queued"} (updates accepted by the webhook, greetings sent,
updates still in the queue), GET /healthz answers once the bot is ready.
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import signal
import sys

from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CommandHandler, ContextTypes, ConversationHandler, MessageHandler, filters

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ASK = 1
MENU = InlineKeyboardMarkup([[InlineKeyboardButton("同意并继续", callback_data="v1:p:accept"),
                              InlineKeyboardButton("不同意", callback_data="v1:p:decline")]])
NOTICE = ("【隐私说明】\n收集什么：您填写的社区、地址、电话、需要帮助的情况，以及您和机器人的聊天记录。\n"
          "为什么：只为安排志愿者上门帮您。\n谁能看到：只有接下这单的志愿者能看到您的地址和电话；服务队群里只显示服务类别、"
          "社区和时间；专管员看到的电话是隐藏中间四位的。\n保存多久：没填完的求助保存3天；完成或取消的求助，个人信息保存180天后"
          "删除。\n怎么删除：随时发\"删除我的数据\"；发\"我的数据\"查看、\"导出我的数据\"下载、\"更正电话\"\"更正地址\"修改，"
          "发\"隐私\"再看这段说明。\n同意后我们再开始填写求助。")


class Stats:
    accepted = 0
    handled = 0


async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.message is not None
    # the same message wuwei sends a new resident: the privacy notice with its two buttons
    await update.message.reply_text(NOTICE, reply_markup=MENU)
    Stats.handled += 1
    return ASK


async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.message is not None
    await update.message.reply_text(f"收到：{update.message.text}。志愿者会尽快联系您。")
    return ConversationHandler.END


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.message is not None
    await update.message.reply_text("已取消。")
    return ConversationHandler.END


def build(token: str, api: str) -> Application:  # type: ignore[type-arg]
    """The PTB Application (no Updater: updates come from our webhook route)."""
    api = api.rstrip("/")
    app = Application.builder().token(token).base_url(f"{api}/bot").base_file_url(f"{api}/file/bot") \
        .updater(None).build()
    text = filters.TEXT & ~filters.COMMAND
    app.add_handler(ConversationHandler(entry_points=[MessageHandler(text, greet)],
                                        states={ASK: [MessageHandler(text, answer)]},
                                        fallbacks=[CommandHandler("cancel", cancel)]))
    return app


async def serve(args: argparse.Namespace) -> None:
    ptb = build(args.token, args.api)
    secret = args.secret.encode()

    async def webhook(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret):
            raise web.HTTPUnauthorized()
        if request.content_type != "application/json":
            raise web.HTTPForbidden()
        try:
            update = Update.de_json(await request.json(), ptb.bot)
        except Exception:
            raise web.HTTPBadRequest(text="not a Telegram update") from None
        await ptb.update_queue.put(update)
        Stats.accepted += 1
        return web.Response()

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"accepted": Stats.accepted, "handled": Stats.handled,
                                  "queued": ptb.update_queue.qsize()})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    await ptb.initialize()  # getMe
    await ptb.bot.set_webhook(args.webhook_url, secret_token=args.secret)
    await ptb.start()
    web_app = web.Application()
    web_app.add_routes([web.post(args.path, webhook), web.get("/stats", stats), web.get("/healthz", health)])
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"anchor listening on http://127.0.0.1:{args.port}{args.path}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await ptb.stop()
        await ptb.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ptb_anchor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", required=True, help="the Bot API base URL (the stub)")
    parser.add_argument("--token", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--path", default="/telegram/webhook")
    parser.add_argument("--webhook-url", default="https://bot.example.org/telegram/webhook",
                        help="what setWebhook registers (the stub never calls it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
