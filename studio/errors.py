"""Errors meant for people: `UserError` carries one plain sentence the UI and CLI show as is.

    raise UserError("data.not_found", key="data.path", source=path)   # a code from studio/i18n

The sentence is a translation-table code with parameters (`exc.msg`, a `Msg`), so the page shows
it in the reader's language and status.json stores the code. `str(exc)` is the English text.
`key` names the setting the sentence is about ('train.learning_rate'), so the form can put it
next to that field.

`explain(exc)` turns any other exception into one `Msg` a non-programmer can act on, so no
traceback ever reaches the page or the terminal (the full traceback still goes to logs.txt).
"""

from __future__ import annotations

import errno

from studio.i18n import Msg


class UserError(Exception):
    """Bad input or a refused action, described in one sentence; optionally tied to a setting."""

    def __init__(self, code: str | Msg, key: str | None = None, **params):
        self.msg = code if isinstance(code, Msg) else Msg(code, **params)
        super().__init__(str(self.msg))
        self.key = key

    def render(self, lang: str | None = None) -> str:
        return self.msg.render(lang)


class UserErrors(UserError):
    """Several bad settings at once ({field key: Msg}), so a form can flag them all together."""

    def __init__(self, problems: dict[str, Msg]):
        first_key, first = next(iter(problems.items()))
        super().__init__(first, key=first_key)
        self.problems = problems


def explain(exc: BaseException) -> Msg:
    """One sentence for any exception: user errors as written, known failures in plain words."""
    if isinstance(exc, UserError):
        return exc.msg
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "no space left" in lowered:
        return Msg("error.disk_full")
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "out of memory" in lowered \
            or "can't allocate memory" in lowered:  # CUDA, torch's CPU allocator, Python
        return Msg("diag.out_of_memory_failure")
    if "trust_remote_code" in lowered:
        return Msg("error.remote_code")
    if "divisible by block_n" in lowered:
        return Msg("error.quant_kernel_shape")
    return Msg("error.unexpected", kind=type(exc).__name__, detail=text[:300])
