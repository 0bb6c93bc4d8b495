"""The Train tab's live diagnostics: what looks wrong with the run, in plain words, with the fix.

    html = render_diagnostics(run, lang)    # "" when there is nothing to say
"""

from __future__ import annotations


def render_diagnostics(run, lang: str | None = None) -> str:
    return ""
