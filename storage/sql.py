"""Small SQL helpers shared by the repositories (dialect-specific INSERT, row counts)."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession


def _insert(s: AsyncSession) -> Any:
    """The dialect's INSERT that supports ON CONFLICT."""
    return postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert


async def rowcount(s: AsyncSession, stmt: Any, params: dict[str, Any] | None = None) -> int:
    """Execute a write (a prepared one with `params`) and return how many rows it touched (what conditional
    writes decide on)."""
    res = cast(CursorResult[Any], await s.execute(stmt, params))
    return int(res.rowcount)
