"""Showing data to people: one example exactly as the model sees it, and readable table pages.

    shown = render_example(record, tokenizer, max_length=256)
    shown["segments"]        # [(text, "trained"|"masked"), …]; joined, the exact rendered text
    shown["tokens"], shown["trained_tokens"], shown["truncated"], shown["note"]
    fold({"role": "user", …})     # 'user: …' — one readable line, never a JSON dump
    rows, n_pages = page_rows(rows, page=2, size=20)   # folded cells of page 2 (1-based)

`render_example` tokenizes the way TRL 1.16's SFTTrainer does: a conversational record is the
chat template over prompt + completion (with its `tools`), the prompt alone is rendered with the
generation prompt, and the completion starts where the two token lists diverge
(`trl.data_utils.common_prefix_length`); with completion-only loss those completion tokens are the
trained ones. A text record is the text plus EOS, every token trained, cut at max_length. Tool
parts the template cannot express are written as text first (`formats.for_template`, the same
step `formats.to_dataset` applies for training), with a note.
"""

from __future__ import annotations

import json
import math

from studio.formats import columns_of, for_template, has_tool_parts, strip_meta, tool_notes, tool_support
from studio.i18n import Msg


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _segments(tokenizer, ids: list[int], mask: list[int]) -> list[tuple[str, str]]:
    """Runs of equal mask as decoded text. Each run is the difference between the decoded prefix
    that ends with it and the one before, so the pieces join into exactly decode(ids) even when a
    character spans two tokens."""
    out: list[tuple[str, str]] = []
    before, start = "", 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or mask[end] != mask[start]:
            upto = tokenizer.decode(ids[:end], skip_special_tokens=False)
            piece = upto[len(before):] if upto.startswith(before) else tokenizer.decode(
                ids[start:end], skip_special_tokens=False)
            kind = "trained" if mask[start] else "masked"
            if out and out[-1][1] == kind:
                out[-1] = (out[-1][0] + piece, kind)
            elif piece:
                out.append((piece, kind))
            before, start = upto, end
    return out


def render_example(record: dict, tokenizer, max_length: int | None = None, loss_on: str = "answer",
                   assistant_only: bool = False) -> dict:
    """One record as the model sees it, split into trained and masked text.

    Returns {"segments": [(text, "trained"|"masked")], "text", "tokens", "trained_tokens",
    "truncated" (longer than max_length), "note" (the first of "notes", or None), "notes"}.
    `loss_on` mirrors the run's setting: "answer" (TRL's completion-only loss) or "all";
    `assistant_only` mirrors SFTConfig.assistant_only_loss (only the template's `{% generation %}`
    spans train, so tool results inside the completion are masked too).
    """
    record = strip_meta(record)
    notes: list[Msg] = []
    # Counting a row longer than the model's context is the point here, not a mistake to warn about.
    if hasattr(tokenizer, "deprecation_warnings"):
        tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    if "text" in record and "prompt" not in record:
        text = str(record["text"])
        eos = tokenizer.eos_token or ""
        if eos and not text.endswith(eos):  # TRL appends EOS to plain text
            text += eos
        ids = list(tokenizer(text=text)["input_ids"])
        total = len(ids)
        truncated = bool(max_length and total > max_length)
        if truncated:  # continued pre-training keeps the start of a long text
            ids = ids[:max_length]
            notes.append(Msg("preview.cut", tokens=total, max_length=max_length))
        mask = [1] * len(ids)
    else:
        if "chosen" in record:
            notes.append(Msg("preview.chosen_shown"))
            record = {k: v for k, v in record.items() if k not in ("chosen", "rejected")} | {
                "completion": record["chosen"]}
        if has_tool_parts(record):
            support = tool_support(tokenizer)
            notes += tool_notes(support)
            record = for_template(record, support)
        kwargs = {"tools": record.get("tools") or None, "tokenize": True, "return_dict": True}
        prompt_ids = list(tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True,
                                                        **kwargs)["input_ids"])
        ids = list(tokenizer.apply_chat_template(record["prompt"] + record["completion"], **kwargs)["input_ids"])
        start = _common_prefix(prompt_ids, ids)
        if start < len(prompt_ids):
            notes.append(Msg("preview.prefix_mismatch"))
        mask = [0] * start + [1] * (len(ids) - start) if loss_on == "answer" else [1] * len(ids)
        if assistant_only:  # TRL applies the assistant mask on top of the completion mask
            spans = _assistant_mask(tokenizer, record, kwargs)
            mask = [a & b for a, b in zip(mask, spans)] if spans is not None else mask
        total = len(ids)
        truncated = bool(max_length and total > max_length)
        if truncated:  # such a conversation is left out of training (studio.data), never cut
            notes.insert(0, Msg("preview.left_out", tokens=total, max_length=max_length))
    segments = _segments(tokenizer, ids, mask)
    return {"segments": segments, "text": "".join(s for s, _ in segments), "tokens": total,
            "trained_tokens": sum(mask), "truncated": truncated, "note": notes[0] if notes else None,
            "notes": notes}


def _assistant_mask(tokenizer, record: dict, kwargs: dict) -> list[int] | None:
    """The template's assistant-token mask, as TRL gets it (its training template when the
    model's own has no `{% generation %}` markers); None when neither gives one."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = None
    if not has_generation_markers(tokenizer.chat_template or ""):
        try:
            template = get_training_chat_template(tokenizer)
        except Exception:  # TRL knows no training template for this model family
            return None
    out = tokenizer.apply_chat_template(record["prompt"] + record["completion"], chat_template=template,
                                        return_assistant_tokens_mask=True, **kwargs)
    return list(out["assistant_masks"]) if "assistant_masks" in out else None


# ---- readable cells -----------------------------------------------------------------------------

def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)].rstrip() + "…"


def _is_message(value) -> bool:
    return isinstance(value, dict) and ("role" in value or "from" in value) and (
        "content" in value or "value" in value or "tool_calls" in value)


def _message_line(message: dict, width: int, depth: int = 0) -> str:
    role = str(message.get("role", message.get("from", "")))
    body = message.get("content", message.get("value"))
    text = _flat(body, width, depth + 1)
    calls = message.get("tool_calls")
    for call in calls[:8] if isinstance(calls, list) else []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        function = function if isinstance(function, dict) else {}
        called = f"→ {function.get('name', '')}({_flat(function.get('arguments'), width, depth + 1)})"
        text = f"{text} {called}" if text else called
    return f"{role}: {_cut(text, width)}"


def _flat(value, width: int, depth: int = 0) -> str:
    if value is None:
        return ""
    if depth > 12:  # hostile nesting: a summary needs no more
        return "…"
    if isinstance(value, str):
        parsed = _json_inside(value)
        # Only the start of a long cell can show: don't walk a 1 MB field to fold it.
        return _one_line(value[:width * 4 + 64]) if parsed is None else _flat(parsed, width, depth + 1)
    if _is_message(value):
        return _message_line(value, width, depth)
    if isinstance(value, dict):
        if "type" in value and ("text" in value or "value" in value):  # a content part
            return _flat(value.get("text", value.get("value")), width, depth + 1)
        function = value.get("function") if isinstance(value.get("function"), dict) else value
        if "name" in function and ("parameters" in function or "arguments" in function):  # tool or call
            args = function.get("arguments")
            if args is None:
                params = function.get("parameters")
                props = params.get("properties") if isinstance(params, dict) else None
                args = ", ".join(map(str, list(props)[:20])) if isinstance(props, dict) else ""
            return f"{function['name']}({_flat(args, width, depth + 1)})"
        items = list(value.items())[:20]  # more would not fit in one line anyway
        return ", ".join(f"{k}: {_cut(_flat(v, width, depth + 1), 40)}" for k, v in items)
    if isinstance(value, (list, tuple)):
        value = value[:40]  # more would not fit in one line anyway
        if value and all(_is_message(v) for v in value):
            share = max(width // len(value), 24)
            return " | ".join(_message_line(v, share, depth + 1) for v in value)
        return "; ".join(_flat(v, width, depth + 1) for v in value)
    return _one_line(str(value))


def _json_inside(text: str):
    """The object or list a cell holds as JSON text (tools columns, function calls), else None."""
    stripped = text.strip()
    if not (stripped[:1] in "[{" and stripped[-1:] in "]}") or len(stripped) > 100_000:
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (list, dict)) else None


def fold(value, width: int = 160) -> str:
    """A cell as one readable line of at most `width` characters: long text shortened with …,
    a conversation as 'user: … | assistant: …', other lists and objects as short summaries."""
    return _cut(_flat(value, width), width)


def page_rows(rows, page: int, size: int = 20, width: int = 160) -> tuple[list[dict], int]:
    """(the rows of 1-based `page`, folded to text, and the number of pages). `rows` is a list of
    dicts or a pyarrow Table (only the page is turned into Python objects). A page past the end
    shows the last one."""
    size = max(int(size), 1)
    total = rows.num_rows if hasattr(rows, "num_rows") else len(rows)
    n_pages = max(math.ceil(total / size), 1)
    page = min(max(int(page), 1), n_pages)
    start = (page - 1) * size
    chunk = rows.slice(start, size).to_pylist() if hasattr(rows, "slice") else list(rows[start:start + size])
    names = columns_of(chunk)
    return [{name: fold(row.get(name), width) for name in names} for row in chunk], n_pages
