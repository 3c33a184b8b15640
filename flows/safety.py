"""Spot words that mean urgent danger, so the bot answers with hotlines before any form."""
from __future__ import annotations

import re

SELF_HARM = re.compile(
    r"(自杀|自殺|轻生|不想活|活不下去|活着没意思|想死|寻死|去死|结束(自己的)?生命|跳楼|割腕|上吊|喝农药|吃安眠药"
    r"|suicide|kill myself|end my life)",
    re.IGNORECASE,
)
MEDICAL = re.compile(
    r"(晕倒|昏倒|昏迷|不省人事|心脏病(犯|发)|呼吸困难|喘不上气|大出血|中风(?!后|以后|之后|的|过)|抽搐|摔倒.{0,4}起不来"
    r"|heart attack|unconscious)",
    re.IGNORECASE,
)


def detect(text: str | None) -> str | None:
    """'self_harm', 'medical' or None."""
    if not text:
        return None
    if SELF_HARM.search(text):
        return "self_harm"
    if MEDICAL.search(text):
        return "medical"
    return None
