"""Errors meant for people: `UserError` carries one plain sentence the UI and CLI show as is.

`explain(exc)` turns any other exception into one line a non-programmer can act on, so no
traceback ever reaches the page or the terminal (the full traceback still goes to logs.txt).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a refused action, described in one sentence; optionally tied to a setting."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def explain(exc: BaseException) -> str:
    """One line for any exception: user errors as written, known failures in plain words."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, MemoryError) or "out of memory" in lowered:
        return "The device ran out of memory: lower the batch size or max length, or use qlora."
    if "trust_remote_code" in lowered:
        return "This model runs its own code: turn on 'Trust remote code' only if you trust its source."
    return f"{type(exc).__name__}: {text}"[:400]
