"""The Train tab's live diagnostics: what looks wrong with the run, in plain words, with the fix.

    html = render_diagnostics(run, lang)    # "" when there is nothing to say

The diagnoses are the run's diagnostic events in metrics.jsonl (studio.diagnostics), so a reload
shows them again. The tab's timer calls this every second: new bytes of the file are read once
(the diagnostic lines kept per run folder), so a poll with nothing new costs one stat(). Every
piece of text is escaped: a run folder is data, never markup.
"""

from __future__ import annotations

import html
import threading

from studio.diagnostics import diagnostic_events
from studio.i18n import render, t

# The only CSS classes a card gets, whatever the file says, and their names.
SEVERITIES = {"warning": "diag.severity_warning", "error": "diag.severity_error"}
MAX_CARDS = 6  # a short list: the newest say what matters now

# run folder -> (bytes of metrics.jsonl read, diagnostic events found in them)
_cache: dict[str, tuple[int, list[dict]]] = {}
_lock = threading.Lock()


def run_diagnostics(run) -> list[dict]:
    """The run's diagnostic events in file order, read incrementally."""
    key = str(run.path)
    try:
        size = run.metrics_path.stat().st_size
    except OSError:
        size = 0
    with _lock:
        offset, found = _cache.get(key, (0, []))
        if size < offset:  # the file was cut back (a resumed run): read it again
            offset, found = 0, []
        if size > offset:
            new, offset = run.read_metrics_from(offset)
            found = found + diagnostic_events(new)
        _cache[key] = (offset, found)
        return list(found)


def _card(event: dict, lang: str | None) -> str:
    severity = event.get("severity") if event.get("severity") in SEVERITIES else "warning"
    step = event.get("step")
    head = t(SEVERITIES[severity], lang)
    if isinstance(step, int) and not isinstance(step, bool):
        head += " · " + t("diag.at_step", lang, step=step)
    fix = render(event.get("fix"), lang)
    parts = [f'<div class="diag-card diag-{severity}">',
             f'<div class="diag-head">{html.escape(head)}</div>',
             f'<div class="diag-msg">{html.escape(render(event.get("message"), lang))}</div>']
    if fix:
        parts.append(f'<div class="diag-fix"><b>{html.escape(t("diag.fix_label", lang))}</b> '
                     f'{html.escape(fix)}</div>')
    parts.append("</div>")
    return "".join(parts)


def render_diagnostics(run, lang: str | None = None) -> str:
    if run is None:
        return ""
    events = run_diagnostics(run)
    if not events:
        return ""
    cards = "".join(_card(e, lang) for e in reversed(events[-MAX_CARDS:]))
    return (f'<div class="diag-list"><div class="diag-title">{html.escape(t("diag.title", lang))}</div>'
            f"{cards}</div>")
