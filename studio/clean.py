"""Cleaning prepared records, one optional step at a time, with counts before and after each.

    options = CleanOptions(dedupe="near", near_threshold=0.85, conflicts="drop_all",
                           max_tokens=512, placeholders={"name": "Alice"})
    records, steps = clean(records, options, tokenizer)   # tokenizer: None counts characters
    for step in steps: print(step["step"], step["before"], step["after"], step["message"])
    CleanOptions.from_dict(recipe["clean"]).to_dict()       # recipes store the options as a dict

Records are studio.formats' internal form; only the texts people wrote are edited
(studio.formats.map_record_text), never tool calls or metadata. The steps run in this order, each
skipped when turned off:
  trim          spaces and line breaks around every text (rows kept; `changed` counts edits)
  placeholders  `{{name}}` and `{name}` replaced by the user's values, in prompts and answers
  drop_empty    rows with a blank prompt, answer, turn or rejected answer (studio.quality's
                "empty" finding; a tool call is not blank)
  dedupe        exact duplicates (same prompt and answer), or "near": also those whose texts
                are at least `near_threshold` similar (MinHash, studio.quality); the first row
                of each group is kept
  conflicts     the same prompt with different answers: keep the first row, or drop them all
  length        rows shorter than `min_tokens` or longer than `max_tokens` (0: no limit) are
                dropped; tokens of the model's tokenizer with the chat template applied, as the
                trainer counts them, or characters of prompt + answer without a tokenizer (the
                step's message says which)
Filling placeholders comes before deduplication because filled rows may become duplicates.

Splitting lives in studio.split (`split_records`, re-exported here).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from studio.errors import UserError
from studio.formats import map_record_text, record_texts
from studio.i18n import Msg
from studio.split import split_records  # noqa: F401  (the data pipeline imports it from here)

__all__ = ["CleanOptions", "clean", "empty_rows", "fill_placeholders", "record_lengths", "split_records"]

DEDUPE = ("exact", "near", "off")
CONFLICTS = ("keep_first", "drop_all", "off")


UNKNOWN_OPTION = {"clean": "clean.unknown_option", "augment": "augment.unknown_option"}


def options_from_dict(cls, data: dict | None, area: str):
    """Options (a dataclass) from a recipe's dict; unknown names are refused with the known ones
    listed. Shared by CleanOptions and AugmentOptions ('clean' / 'augment')."""
    data = dict(data or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise UserError(UNKNOWN_OPTION[area], key=area, names=", ".join(unknown), known=", ".join(known))
    return cls(**data)


@dataclass
class CleanOptions:
    """Which cleaning steps run, and their settings; invalid values raise UserError."""

    trim: bool = True
    drop_empty: bool = True
    dedupe: str = "exact"            # "exact" | "near" | "off"
    near_threshold: float = 0.8      # similarity (0–1] from which rows count as near duplicates
    conflicts: str = "keep_first"    # "keep_first" | "drop_all" | "off"
    min_tokens: int = 0              # 0: no lower limit
    max_tokens: int = 0              # 0: no upper limit
    placeholders: dict = field(default_factory=dict)  # {"name": "Alice"} fills {{name}} and {name}

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        for name in ("trim", "drop_empty"):
            if not isinstance(getattr(self, name), bool):
                raise UserError("clean.bad_flag", key=f"clean.{name}", name=name, value=str(getattr(self, name))[:40])
        if self.dedupe not in DEDUPE:
            raise UserError("clean.bad_choice", key="clean.dedupe", name="dedupe", value=str(self.dedupe)[:40],
                            choices=", ".join(DEDUPE))
        if self.conflicts not in CONFLICTS:
            raise UserError("clean.bad_choice", key="clean.conflicts", name="conflicts",
                            value=str(self.conflicts)[:40], choices=", ".join(CONFLICTS))
        threshold = self.near_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise UserError("clean.bad_threshold", key="clean.near_threshold", value=str(threshold)[:40])
        self.near_threshold = float(threshold)
        for name in ("min_tokens", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError("clean.bad_length", key=f"clean.{name}", name=name, value=str(value)[:40])
        if self.min_tokens and self.max_tokens and self.min_tokens > self.max_tokens:
            raise UserError("clean.length_order", key="clean.min_tokens", min=self.min_tokens, max=self.max_tokens)
        if self.placeholders is None:  # a recipe may write `placeholders:` with nothing after it
            self.placeholders = {}
        if not isinstance(self.placeholders, dict):
            raise UserError("clean.bad_placeholders", key="clean.placeholders", value=str(self.placeholders)[:80])
        values = {}
        for name, value in self.placeholders.items():
            if not isinstance(name, str) or not re.fullmatch(r"[^{}\s]{1,100}", name.strip()):
                raise UserError("clean.bad_placeholder_name", key="clean.placeholders", name=str(name)[:100])
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise UserError("clean.bad_placeholder_value", key="clean.placeholders", name=name,
                                value=str(value)[:80])
            values[name.strip()] = str(value)
        self.placeholders = values

    @classmethod
    def from_dict(cls, data: dict | None) -> "CleanOptions":
        return options_from_dict(cls, data, "clean")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- the steps ----------------------------------------------------------------------------------

def _step(name: str, before: int, after: int, message: Msg, **extra) -> dict:
    return {"step": name, "before": before, "after": after, "message": message, **extra}


def _edit_all(records: list[dict], fn) -> tuple[list[dict], int]:
    """fn applied to every written text; (new records, how many changed)."""
    out, changed = [], 0
    for record in records:
        new = map_record_text(record, fn, part="all")
        changed += new != record
        out.append(new)
    return out, changed


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """`{{ name }}` and `{name}` replaced by values[name]; other braces left alone."""
    if not values or "{" not in text:
        return text
    names = "|".join(re.escape(n) for n in sorted(values, key=len, reverse=True))
    pattern = re.compile(r"\{\{\s*(" + names + r")\s*\}\}|\{(" + names + r")\}")
    return pattern.sub(lambda m: values[m.group(1) or m.group(2)], text)


def empty_rows(records: list[dict]) -> list[int]:
    """Indices of rows the quality report counts as empty: a blank answer, a blank prompt (plain
    text records have none), or a blank user/assistant turn anywhere, rejected answers included (a
    tool call is not blank). studio.quality's own function is used when it offers one."""
    from studio import quality

    if hasattr(quality, "empty_rows"):
        return quality.empty_rows(records)
    out = []
    for i, record in enumerate(records):
        prompt, answer = record_texts(record)
        plain = "text" in record and "prompt" not in record
        blank_turn = any(m.get("role") in ("user", "assistant") and not str(m.get("content") or "").strip()
                         and not m.get("tool_calls")
                         for key in ("prompt", "completion", "chosen", "rejected") for m in record.get(key) or ())
        if not answer.strip() or (not plain and not prompt.strip()) or blank_turn:
            out.append(i)
    return out


def _drop(records: list[dict], drop: set[int]) -> list[dict]:
    return [r for i, r in enumerate(records) if i not in drop]


def _dedupe(records: list[dict], options: CleanOptions) -> tuple[list[dict], dict]:
    from studio.quality import duplicate_groups, near_duplicate_groups

    groups = list(duplicate_groups(records))
    if options.dedupe == "near":
        groups += near_duplicate_groups(records, options.near_threshold)
    drop = {i for group in groups for i in sorted(group)[1:]}
    kept = _drop(records, drop)
    counts = dict(dropped=len(drop), before=len(records), after=len(kept))
    message = (Msg("clean.step_near", threshold=options.near_threshold, **counts) if options.dedupe == "near"
               else Msg("clean.step_exact", **counts))
    return kept, _step("dedupe", len(records), len(kept), message)


def _conflicts(records: list[dict], options: CleanOptions) -> tuple[list[dict], dict]:
    from studio.quality import conflict_groups

    groups = [sorted(g) for g in conflict_groups(records)]
    if options.conflicts == "drop_all":
        drop = {i for group in groups for i in group}
    else:
        drop = {i for group in groups for i in group[1:]}
    kept = _drop(records, drop)
    counts = dict(groups=len(groups), dropped=len(drop), before=len(records), after=len(kept))
    message = (Msg("clean.step_conflicts_drop", **counts) if options.conflicts == "drop_all"
               else Msg("clean.step_conflicts_first", **counts))
    return kept, _step("conflicts", len(records), len(kept), message)


def record_lengths(records: list[dict], tokenizer=None) -> list[int | None]:
    """Tokens per record as training counts them (studio.quality.token_counts: the chat template
    over prompt + answer, tools included, or text + EOS; None where the template refuses a row)
    with a tokenizer; characters of prompt + answer without one."""
    if tokenizer is None:
        return [len(p) + len(a) for p, a in (record_texts(r) for r in records)]
    from studio import data
    from studio.quality import token_counts

    with data._tokenizer_lock:  # a fast tokenizer must not be used by two threads at once
        return token_counts(records, tokenizer)


def _length(records: list[dict], options: CleanOptions, tokenizer) -> tuple[list[dict], dict]:
    lengths = record_lengths(records, tokenizer)
    low, high = options.min_tokens, options.max_tokens
    # A row the chat template refuses (None) cannot be measured: it stays, and the quality report
    # and the training check name it.
    short = sum(1 for n in lengths if low and n is not None and n < low)
    long = sum(1 for n in lengths if high and n is not None and n > high)
    kept = [r for r, n in zip(records, lengths) if n is None or not (low and n < low or high and n > high)]
    unit = Msg("clean.unit_tokens") if tokenizer is not None else Msg("clean.unit_chars")
    if low and high:
        limits = Msg("clean.range_both", min=low, max=high, unit=unit)
    elif low:
        limits = Msg("clean.range_min", min=low, unit=unit)
    else:
        limits = Msg("clean.range_max", max=high, unit=unit)
    return kept, _step("length", len(records), len(kept),
                       Msg("clean.step_length", limits=limits, short=short, long=long, before=len(records),
                           after=len(kept)), unit="tokens" if tokenizer is not None else "characters")


def clean(records: list[dict], options: CleanOptions | dict | None = None,
          tokenizer=None) -> tuple[list[dict], list[dict]]:
    """(cleaned records, steps): each step {"step", "before", "after", "message": Msg, ...}."""
    if options is None or isinstance(options, dict):
        options = CleanOptions.from_dict(options)
    options.check()
    steps: list[dict] = []
    records = list(records)
    if options.trim:
        records, changed = _edit_all(records, str.strip)
        steps.append(_step("trim", len(records), len(records), Msg("clean.step_trim", changed=changed,
                                                                   rows=len(records)), changed=changed))
    if options.placeholders:
        values = options.placeholders
        records, changed = _edit_all(records, lambda text: fill_placeholders(text, values))
        names = ", ".join("{{" + n + "}}" for n in values)
        steps.append(_step("placeholders", len(records), len(records),
                           Msg("clean.step_placeholders", names=names, changed=changed), changed=changed))
    if options.drop_empty:
        empty = set(empty_rows(records))
        kept = [r for i, r in enumerate(records) if i not in empty]
        message = Msg("clean.step_empty", dropped=len(records) - len(kept), before=len(records), after=len(kept))
        steps.append(_step("drop_empty", len(records), len(kept), message))
        records = kept
    if options.dedupe != "off" and records:
        records, step = _dedupe(records, options)
        steps.append(step)
    if options.conflicts != "off" and records:
        records, step = _conflicts(records, options)
        steps.append(step)
    if (options.min_tokens or options.max_tokens) and records:
        records, step = _length(records, options, tokenizer)
        steps.append(step)
    return records, steps
