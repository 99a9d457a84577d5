"""The HTTP plumbing of the served engine, apart from what it asks: a 429's wait, a server's
error text and model list, and running one request per prompt row, a limited number at a time,
stopping when the run is cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

RETRY_AFTER_MAX_S = 30.0  # a server asking for longer is treated as failing that prompt after the retries


def retry_after(answer: Any, default: float) -> float:
    """Seconds to wait before retrying a 429: its ``Retry-After`` in seconds (an HTTP date or
    nonsense: ``default``), never more than RETRY_AFTER_MAX_S."""
    try:
        wait = float(answer.headers.get("Retry-After", ""))
    except ValueError:
        wait = default
    return min(max(wait, 0.0), RETRY_AFTER_MAX_S) if wait == wait else default


def served_models(answer: Any) -> list[str] | None:
    """The model ids of a GET /v1/models answer; None when the server doesn't say (no check then)."""
    try:
        data = answer.json() if answer.status_code == 200 else None
        return [str(m["id"]) for m in data["data"]] if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def error_text(answer: Any) -> str:
    try:
        data = answer.json()
        message = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(message, dict):
            message = message.get("message", message)
        return " ".join(str(message).split())[:300]
    except ValueError:
        return " ".join(answer.text.split())[:300]


async def each_row(rows: Any, work: Callable[[int], Any], limit: int, cancel: threading.Event | None) -> None:
    """Run ``work(row)`` for every row, ``limit`` at a time; once ``cancel`` is set, rows not yet
    started are skipped and those in flight are abandoned. An exception in one is raised here."""
    gate = asyncio.Semaphore(limit)

    async def one(row: int) -> None:
        async with gate:
            if cancel is None or not cancel.is_set():
                await work(row)

    pending = {asyncio.ensure_future(one(row)) for row in rows}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.2, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a GendiffError (wrong tokenizer, string-keyed logprobs) stops the run
            if cancel is not None and cancel.is_set():
                break
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
