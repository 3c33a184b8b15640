"""Short, versioned callback data for buttons: `v1:<action>:<id>[:<arg>]`, at most 64 bytes."""
from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1"
MAX_BYTES = 64


@dataclass(frozen=True)
class Callback:
    """A parsed button press."""

    action: str
    target: str
    arg: str = ""


def make(action: str, target: object, arg: object = "") -> str:
    """Encode a button's data; raises if it would not fit Telegram's 64-byte limit."""
    data = f"{VERSION}:{action}:{target}" + (f":{arg}" if arg != "" else "")
    if len(data.encode()) > MAX_BYTES or not action.isalnum() or str(target) == "" or ":" in f"{target}{arg}":
        raise ValueError(f"callback data too long or malformed: {data!r}")
    return data


def parse(data: str | None) -> Callback | None:
    """Decode button data; None for anything old, foreign or malformed."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    parts = data.split(":")
    if len(parts) not in (3, 4) or parts[0] != VERSION or not parts[1] or not parts[2]:
        return None
    return Callback(parts[1], parts[2], parts[3] if len(parts) == 4 else "")
