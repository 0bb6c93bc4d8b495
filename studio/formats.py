"""Dataset layouts: recognise a file's format, say why, and turn its rows into the one internal form.

    det = detect(rows)                                  # Detection: format, reason, note, mapping, …
    det = detect(rows, mapping={"instruction": "question", "output": "answer"})   # other column names
    records = to_records(rows)                          # SFT records, each with "_row" (1-based)
    records = to_records(rows, kind="dpo")              # preference records for DPO
    prompt, answer = record_texts(records[0])           # plain strings for checks and scores
    trimmed = map_record_text(records[0], str.strip, part="all")

Formats (`FORMATS`): alpaca (instruction/input/output, optional system and history), sharegpt
(`conversations` of from/value, incl. function_call/observation turns and a `tools` column),
messages (role/content, incl. tool roles and tool_calls), prompt_completion, preference
(prompt/chosen/rejected as strings or message lists, or sharegpt-preference conversations +
chosen + rejected), and plain text.

The internal form is TRL's conversational shape, so the chat template is applied by TRL:
SFT `{"prompt": [messages], "completion": [messages], "tools"?: [schemas]}`, preference
`{"prompt", "chosen", "rejected"}`, text `{"text": str}`; keys starting with "_" are metadata.
A message is `{"role": "system"|"user"|"assistant"|"tool", "content": str}`; tool calls stay tool
calls (`"tool_calls": [{"type": "function", "function": {"name", "arguments": dict}}]`) and tool
results stay `role: "tool"` turns, never relabelled as user text.

What trains in a conversation: the completion is everything after the last user turn (the final
answer, plus the tool calls and results that led to it), so a tool-calling set teaches the calls
(with SFTConfig.assistant_only_loss the tool results inside it are masked as well).

A model's chat template may not express tools: `tool_support(tokenizer)` renders a tiny tool
conversation and says which parts show; `for_template` then writes tool calls (and tool
descriptions) as JSON text instead of losing them, and `tool_notes` says so in a sentence.
`to_dataset(records, tokenizer)` is what a trainer takes: metadata stripped, that adaptation
applied, messages stored as JSON values so Arrow does not merge tool arguments across rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from studio.dataload import first_line
from studio.errors import UserError
from studio.i18n import Msg

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text")

# Roles of each format (what a column can be mapped to); the required ones first.
ROLES = {
    "alpaca": ("instruction", "output", "input", "system", "history"),
    "sharegpt": ("conversations", "system", "tools"),
    "messages": ("messages", "system", "tools"),
    "prompt_completion": ("prompt", "completion", "system", "tools"),
    "preference": ("prompt", "chosen", "rejected", "system", "tools"),
    "text": ("text",),
}
REQUIRED = {
    "alpaca": ("instruction", "output"), "sharegpt": ("conversations",), "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"), "preference": ("chosen", "rejected"), "text": ("text",),
}
# Detection order: the most specific layout first (a preference file also has a prompt column).
_ORDER = ("preference", "sharegpt", "messages", "alpaca", "prompt_completion", "text")
# Columns that play a role under another common name (sharegpt-preference keeps its prompt in
# `conversations`).
_ALIASES = {("preference", "prompt"): ("prompt", "conversations")}

ROLE_NAMES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "bot": "assistant", "system": "system", "function_call": "assistant", "observation": "tool",
    "tool": "tool", "function": "tool", "ipython": "tool", "tool_response": "tool",
}
SHAREGPT_ROLES = ROLE_NAMES  # the name data.py exported before
_SCAN = 1000  # rows looked at to list columns and spot tool turns (detection stays O(1) in file size)


@dataclass
class Detection:
    """What a dataset is, why we think so, and how it will be trained."""

    format: str
    reason: Msg
    note: Msg
    mapping: dict[str, str]  # role -> column, defaults filled in
    columns: list[str]
    warnings: list[Msg] = field(default_factory=list)
    tools: bool = False  # tool calls, tool results or tool descriptions seen

    def messages(self) -> list[Msg]:
        return [self.reason, self.note, *self.warnings]

    def to_dict(self) -> dict:
        """Plain JSON values (sentences as {"code", "params"}), e.g. for a saved recipe or the CLI."""
        return {"format": self.format, "reason": self.reason.to_dict(), "note": self.note.to_dict(),
                "mapping": dict(self.mapping), "columns": list(self.columns),
                "warnings": [w.to_dict() for w in self.warnings], "tools": self.tools}


# ---- detection ----------------------------------------------------------------------------------

def columns_of(rows: list[dict]) -> list[str]:
    """Column names in first-seen order over the first rows."""
    seen: dict[str, None] = {}
    for row in rows[:_SCAN]:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _resolve(fmt: str, columns: list[str], mapping: dict[str, str]) -> dict[str, str] | None:
    """role -> column for `fmt` (the user's mapping first, then the usual names); None when a
    required role has no column."""
    resolved = {}
    for role in ROLES[fmt]:
        if role in mapping:
            resolved[role] = mapping[role]
            continue
        for name in _ALIASES.get((fmt, role), (role,)):
            if name in columns and name not in mapping.values():
                resolved[role] = name
                break
    if any(role not in resolved for role in REQUIRED[fmt]):
        return None
    return resolved


def _nearest(candidates: list[str], columns: list[str], mapping: dict[str, str]) -> str | None:
    """The layout whose required columns are most nearly there (at least one), for the error."""
    def present(fmt):
        return sum(role in mapping or any(n in columns for n in _ALIASES.get((fmt, role), (role,)))
                   for role in REQUIRED[fmt])
    scored = [(present(f), -i, f) for i, f in enumerate(candidates) if present(f)]
    return max(scored)[2] if scored else None


def _layout(fmt: str) -> Msg:
    return {"alpaca": Msg("formats.layout_alpaca"), "sharegpt": Msg("formats.layout_sharegpt"),
            "messages": Msg("formats.layout_messages"), "prompt_completion": Msg("formats.layout_prompt_completion"),
            "preference": Msg("formats.layout_preference"), "text": Msg("formats.layout_text")}[fmt]


def _expected(fmt: str) -> str:
    names = {"preference": "prompt (or conversations), chosen, rejected"}
    return names.get(fmt, ", ".join(REQUIRED[fmt]))


def detect(rows: list[dict], mapping: dict | None = None, fmt: str = "auto") -> Detection:
    """Recognise the layout of `rows` (or check the one given by `fmt`), with a reason and a note.

    `mapping` ({role: column}) names the columns of a file with other names, e.g.
    {"instruction": "question", "output": "answer"}; a mapped column that is not in the file, or a
    format whose required columns are missing, raises UserError naming expected and found columns.
    """
    if not rows:
        raise UserError("formats.no_rows", key="data.path")
    columns = columns_of(rows)
    mapping = {str(k): str(v) for k, v in (mapping or {}).items() if v}
    found = ", ".join(columns)
    absent = [c for c in mapping.values() if c not in columns]
    if absent:
        raise UserError("formats.mapping_missing", key="data.mapping", missing=", ".join(absent), found=found)
    known_roles = {r for roles in ROLES.values() for r in roles}
    unknown = [r for r in mapping if r not in known_roles]
    if unknown:
        raise UserError("formats.mapping_role", key="data.mapping", roles=", ".join(unknown),
                        known=", ".join(sorted(known_roles)))
    if fmt not in ("auto", "", None) and fmt not in FORMATS:
        raise UserError("data.unknown_format", key="data.format", format=fmt)
    if fmt in ("auto", "", None):
        candidates = [f for f in _ORDER if set(mapping) <= set(ROLES[f])]
        for name in candidates:
            resolved = _resolve(name, columns, mapping)
            if resolved is not None:
                fmt = name
                break
        else:
            best = _nearest(candidates, columns, mapping)
            if best:  # e.g. instruction without output: name what is missing for that layout
                raise UserError("formats.missing_columns", key="data.mapping" if mapping else "data.format",
                                format=best, expected=_expected(best), found=found)
            raise UserError("data.unknown_columns", key="data.format", columns=found)
        reason = Msg("formats.reason_mapped" if mapping else "formats.reason", format=fmt,
                     columns=", ".join(dict.fromkeys(resolved.values())), layout=_layout(fmt),
                     mapping=", ".join(f"{c} → {r}" for r, c in mapping.items()))
    else:
        resolved = _resolve(fmt, columns, mapping)
        if resolved is None:
            raise UserError("formats.missing_columns", key="data.format", format=fmt, expected=_expected(fmt),
                            found=found)
        reason = Msg("formats.reason_chosen", format=fmt, columns=", ".join(dict.fromkeys(resolved.values())))
    sample = rows[:_SCAN]
    tools = fmt != "text" and _has_tools(sample, resolved)
    warnings = []
    unused = [c for c in columns if c not in resolved.values() and not c.startswith("_")]
    if unused:
        warnings.append(Msg("formats.warn_unused", columns=", ".join(unused)))
    if fmt == "sharegpt" and tools and "tools" not in resolved:
        warnings.append(Msg("formats.warn_no_tools_column"))
    if _has_loss_weights(sample, resolved):
        warnings.append(Msg("formats.warn_loss_weight"))
    if fmt == "text":
        note = Msg("formats.note_text")
    elif fmt == "preference":
        note = Msg("formats.note_preference")
    elif tools:
        note = Msg("formats.note_tools")
    else:
        note = Msg("formats.note_sft")
    return Detection(fmt, reason, note, resolved, columns, warnings, tools)


def _has_tools(rows: list[dict], mapping: dict[str, str]) -> bool:
    tools_col = mapping.get("tools")
    for row in rows:
        if tools_col and row.get(tools_col) not in (None, "", "[]", []):
            try:
                if _parse_tools(row.get(tools_col)):
                    return True
            except ValueError:  # named with its row number when the rows are converted
                return True
        for role in ("conversations", "messages", "prompt", "completion", "chosen", "rejected"):
            turns = row.get(mapping.get(role, ""))
            if isinstance(turns, dict):
                turns = [turns]
            if isinstance(turns, list) and any(
                    isinstance(t, dict) and (t.get("tool_calls") or ROLE_NAMES.get(
                        str(t.get("role", t.get("from", ""))).lower()) == "tool"
                        or str(t.get("from", t.get("role", ""))).lower() == "function_call") for t in turns):
                return True
    return False


def _has_loss_weights(rows: list[dict], mapping: dict[str, str]) -> bool:
    """LLaMA-Factory v1 `loss_weight`s that disagree with "answers train, the rest is masked"."""
    column = mapping.get("messages") or mapping.get("conversations") or ""
    for row in rows:
        for turn in row.get(column) or []:
            if isinstance(turn, dict) and isinstance(turn.get("loss_weight"), (int, float)):
                trained = turn["loss_weight"] > 0
                role = ROLE_NAMES.get(str(turn.get("role", turn.get("from"))).lower())
                if trained != (role == "assistant"):
                    return True
    return False


# ---- messages -----------------------------------------------------------------------------------

def _text(value) -> str:
    """A message content as text: strings as they are, content parts joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text"|"value": …}, …]
        return "".join(_text(part) for part in value)
    if isinstance(value, dict):
        if "text" in value or "value" in value or "content" in value:
            return _text(value.get("text", value.get("value", value.get("content"))))
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _arguments(value):
    """Tool-call arguments as a dict when they are JSON (templates expect a mapping)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value if value is not None else {}


def _tool_call(call) -> dict:
    if isinstance(call, str):
        call = json.loads(call)
    if not isinstance(call, dict):
        raise ValueError("a tool call is not an object")
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not name:
        raise ValueError("a tool call has no name")
    return {"type": "function", "function": {"name": str(name), "arguments": _arguments(function.get("arguments"))}}


def _function_call_turn(value) -> dict:
    """A sharegpt `function_call` turn (JSON {"name", "arguments"} or a list of them) -> tool calls."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise ValueError("a function_call turn is not JSON") from None
    calls = parsed if isinstance(parsed, list) else [parsed]
    return {"role": "assistant", "content": "", "tool_calls": [_tool_call(c) for c in calls]}


def turns(conversation) -> list[dict]:
    """sharegpt from/value or messages role/content (any content shape) -> internal messages."""
    if isinstance(conversation, dict):
        conversation = [conversation]
    if not isinstance(conversation, list):
        raise ValueError("expected a list of turns")
    out: list[dict] = []
    for turn in conversation:
        if not isinstance(turn, dict):
            raise ValueError("a turn is not an object")
        raw = turn.get("role", turn.get("from"))
        role = ROLE_NAMES.get(str(raw).strip().lower())
        if role is None:
            raise ValueError(f"unknown role {str(raw)[:40]!r}")
        content = turn.get("content", turn.get("value"))
        if str(raw).strip().lower() == "function_call":
            message = _function_call_turn(content)
        else:
            message = {"role": role, "content": _text(content)}
            if role == "assistant" and turn.get("tool_calls"):
                calls = turn["tool_calls"]
                message["tool_calls"] = [_tool_call(c) for c in (calls if isinstance(calls, list) else [calls])]
            if role == "tool":
                name = turn.get("name") or _last_call_name(out)
                if name:
                    message["name"] = str(name)
        out.append(message)
    return out


def _last_call_name(messages: list[dict]) -> str | None:
    """The tool a result answers: the single call of the assistant turn just before it."""
    for message in reversed(messages):
        if message["role"] == "assistant":
            calls = message.get("tool_calls") or []
            return calls[0]["function"]["name"] if len(calls) == 1 else None
    return None


def _parse_tools(value) -> list[dict]:
    """A `tools` column (a list, or the JSON string most datasets store) -> OpenAI-style schemas."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("the tools column is not JSON") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("the tools column is not a list of tool descriptions")
    out = []
    for tool in value:
        if not isinstance(tool, dict):
            raise ValueError("a tool description is not an object")
        out.append(tool if "function" in tool and tool.get("type", "function") == "function"
                   else {"type": "function", "function": tool})
    return out


def _as_messages(value, role: str) -> list[dict]:
    """A prompt/answer cell: text -> one message of `role`; messages -> internal messages."""
    if isinstance(value, (list, dict)):
        return turns(value)
    text = _text(value)
    return [{"role": role, "content": text}] if text.strip() else []


def _with_system(prompt: list[dict], system: str) -> list[dict]:
    if system and system.strip() and not (prompt and prompt[0]["role"] == "system"):
        return [{"role": "system", "content": system}] + prompt
    return prompt


def _answer_ok(messages: list[dict]) -> bool:
    if not messages or messages[-1]["role"] != "assistant":
        return False
    last = messages[-1]
    return bool(last["content"].strip() or last.get("tool_calls"))


def _split_conversation(messages: list[dict]) -> tuple[list[dict], list[dict]] | None:
    """(prompt, completion): the completion is everything after the last user/system turn,
    starting at an assistant turn (tool calls, their results and the final answer)."""
    start = len(messages)
    while start > 0 and messages[start - 1]["role"] in ("assistant", "tool"):
        start -= 1
    while start < len(messages) and messages[start]["role"] == "tool":
        start += 1
    prompt, completion = messages[:start], messages[start:]
    if not any(m["role"] != "assistant" for m in prompt) or not _answer_ok(completion):
        return None
    return prompt, completion


# ---- rows -> records ----------------------------------------------------------------------------

def _get(row: dict, mapping: dict | None, role: str, fmt: str):
    if mapping and role in mapping:  # a role mapped to None has no column in this dataset
        column = mapping[role]
        return None if column is None else row.get(column)
    for name in _ALIASES.get((fmt, role), (role,)):
        if name in row:
            return row[name]
    return None


def _finish(record: dict, row: dict, mapping: dict | None, fmt: str) -> dict:
    tools = _parse_tools(_get(row, mapping, "tools", fmt))
    if tools:
        record["tools"] = tools
    return record


def normalise(row: dict, fmt: str, system: str = "", mapping: dict | None = None) -> dict | None:
    """One row -> an SFT record (or a text record); None when it has nothing to learn from.
    Raises ValueError/TypeError for a row whose fields do not have the format's shape."""
    if fmt == "text":
        text = _text(_get(row, mapping, "text", fmt))
        return {"text": text} if text.strip() else None
    system = _text(_get(row, mapping, "system", fmt)) or system
    if fmt == "alpaca":
        parts = [_text(_get(row, mapping, "instruction", fmt)), _text(_get(row, mapping, "input", fmt))]
        question = "\n\n".join(p for p in parts if p.strip())
        answer = _text(_get(row, mapping, "output", fmt))
        if not (question.strip() and answer.strip()):
            return None
        prompt: list[dict] = []
        for pair in _get(row, mapping, "history", fmt) or []:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError("history must be a list of [question, answer] pairs")
            prompt += [{"role": "user", "content": _text(pair[0])}, {"role": "assistant", "content": _text(pair[1])}]
        prompt.append({"role": "user", "content": question})
        return {"prompt": _with_system(prompt, system), "completion": [{"role": "assistant", "content": answer}]}
    if fmt in ("sharegpt", "messages"):
        split = _split_conversation(turns(_get(row, mapping, "conversations" if fmt == "sharegpt" else "messages",
                                               fmt)))
        if split is None:
            return None
        return _finish({"prompt": _with_system(split[0], system), "completion": split[1]}, row, mapping, fmt)
    if fmt == "prompt_completion":
        prompt = _as_messages(_get(row, mapping, "prompt", fmt), "user")
        completion = _as_messages(_get(row, mapping, "completion", fmt), "assistant")
        if not prompt or not _answer_ok(completion):
            return None
        return _finish({"prompt": _with_system(prompt, system), "completion": completion}, row, mapping, fmt)
    if fmt == "preference":
        pref = normalise_preference(row, fmt, mapping, system)
        if pref is None:
            return None
        record = {"prompt": pref["prompt"], "completion": pref["chosen"]}
        if "tools" in pref:
            record["tools"] = pref["tools"]
        return record
    raise UserError("data.unknown_format", key="data.format", format=fmt)


def normalise_preference(row: dict, fmt: str = "preference", mapping: dict | None = None,
                         system: str = "") -> dict | None:
    """One preference row -> {"prompt", "chosen", "rejected"} (message lists); None when empty.

    Shapes: strings; message lists (with the prompt in its own column, or TRL's implicit prompt:
    chosen and rejected are whole conversations starting with the same turns); sharegpt-preference
    (`conversations` + single `chosen`/`rejected` messages)."""
    if fmt != "preference":
        raise UserError("formats.dpo_needs_preference", key="data.format", format=fmt)
    system = _text(_get(row, mapping, "system", fmt)) or system
    chosen = _as_messages(_get(row, mapping, "chosen", fmt), "assistant")
    rejected = _as_messages(_get(row, mapping, "rejected", fmt), "assistant")
    prompt = _as_messages(_get(row, mapping, "prompt", fmt), "user")
    if prompt and chosen[:len(prompt)] == prompt and rejected[:len(prompt)] == prompt:
        chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]  # answers that repeat the prompt
    if not prompt:  # implicit prompt: the turns chosen and rejected share
        shared = 0
        while (shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]):
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt or not _answer_ok(chosen) or not _answer_ok(rejected):
        return None
    return _finish({"prompt": _with_system(prompt, system), "chosen": chosen, "rejected": rejected}, row, mapping,
                   fmt)


def convert(rows: list[dict], fmt: str = "auto", system: str = "", mapping: dict | None = None,
            kind: str = "sft", meta: bool = True) -> tuple[Detection, list[dict]]:
    """(detection, records): every row converted; `_row` (1-based source row) added when `meta`.
    A row with the wrong shape is named in a UserError; no usable row at all is a UserError too."""
    detection = detect(rows, mapping, fmt)
    fmt = detection.format
    # Every role of the format, None where the dataset has no such column: one lookup per field.
    mapping = {role: detection.mapping.get(role) for role in ROLES[fmt]}
    if kind == "dpo" and fmt != "preference":
        raise UserError("formats.dpo_needs_preference", key="data.format", format=fmt)
    records = []
    for number, row in enumerate(rows, 1):
        try:
            record = (normalise_preference(row, fmt, mapping, system) if kind == "dpo"
                      else normalise(row, fmt, system, mapping))
        except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as exc:
            raise UserError("data.row_layout", key="data.format", row=number, format=fmt,
                            detail=first_line(exc)) from None
        if record is not None:
            if meta:
                record["_row"] = number
            records.append(record)
    if not records:
        raise UserError("data.no_usable_rows", key="data.format", format=fmt)
    return detection, records


def to_records(rows: list[dict], fmt: str = "auto", system: str = "", mapping: dict | None = None,
               kind: str = "sft") -> list[dict]:
    """Rows -> internal records (SFT or, with kind="dpo", preference), each tagged with `_row`."""
    return convert(rows, fmt, system, mapping, kind)[1]


def strip_meta(record: dict) -> dict:
    """The record without its `_…` metadata keys (what a trainer gets)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


# ---- texts inside a record ----------------------------------------------------------------------

def message_text(message: dict) -> str:
    """A message as plain text; a tool call reads `name(arguments)`."""
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        args = function.get("arguments")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, sort_keys=True)
        parts.append(f"{function.get('name', '')}({args})")
    return "\n".join(p for p in parts if p)


def _answer_messages(record: dict) -> list[dict]:
    return record.get("completion") or record.get("chosen") or []


def record_texts(record: dict) -> tuple[str, str]:
    """(prompt text, answer text) as plain strings: the whole prompt (context included, so two
    questions with different histories differ) and the assistant text of the completion (or the
    chosen answer). Text records: ("", text)."""
    if "text" in record and "prompt" not in record:
        return "", str(record.get("text") or "")
    prompt = "\n\n".join(t for t in (message_text(m) for m in record.get("prompt") or []) if t)
    answer = "\n\n".join(t for t in (message_text(m) for m in _answer_messages(record)
                                     if m.get("role") == "assistant") if t)
    return prompt, answer


def map_record_text(record: dict, fn, part: str = "prompt") -> dict:
    """A copy of `record` with `fn(str) -> str` applied to the texts people wrote in `part`:
    prompt = system and user turns; answer = the assistant text of the completion (chosen and
    rejected for preference records); all = both; text records: the text. Tool calls, tool results
    and metadata are left as they are."""
    if part not in ("prompt", "answer", "all"):
        raise ValueError(f"part must be prompt, answer or all, not {part!r}")
    out = dict(record)
    if "text" in record and "prompt" not in record:
        out["text"] = fn(record["text"])
        return out

    def apply(messages, roles):
        return [dict(m, content=fn(m["content"])) if m.get("role") in roles and m.get("content") else dict(m)
                for m in messages]

    if part in ("prompt", "all"):
        out["prompt"] = apply(record.get("prompt") or [], ("system", "user"))
    for key in ("completion", "chosen", "rejected"):
        if key in record:
            out[key] = apply(record[key], ("assistant",)) if part in ("answer", "all") else [dict(m) for m in
                                                                                            record[key]]
    return out


# ---- the model's chat template and tools ------------------------------------------------------

_PROBE_TOOL = {"type": "function", "function": {"name": "zqx_tool_desc", "description": "zqx",
                                                 "parameters": {"type": "object", "properties": {}}}}
_PROBE = [{"role": "user", "content": "zqx_question"},
          {"role": "assistant", "content": "", "tool_calls": [
              {"type": "function", "function": {"name": "zqx_tool_call", "arguments": {"zqx_arg": 1}}}]},
          {"role": "tool", "content": "zqx_tool_result", "name": "zqx_tool_call"},
          {"role": "assistant", "content": "zqx_answer"}]
_support_cache: dict[str, dict[str, bool]] = {}


def tool_support(tokenizer) -> dict[str, bool]:
    """What the tokenizer's chat template shows of a tiny tool conversation: the tools'
    descriptions ("tools"), the assistant's tool calls ("calls"), the tool results ("results")."""
    template = str(getattr(tokenizer, "chat_template", "") or "")
    if template not in _support_cache:
        try:
            text = tokenizer.apply_chat_template(_PROBE, tools=[_PROBE_TOOL], tokenize=False)
        except Exception:  # a template that refuses tool turns (e.g. strict role alternation)
            text = ""
        _support_cache[template] = {"tools": "zqx_tool_desc" in text, "calls": "zqx_tool_call" in text,
                                    "results": "zqx_tool_result" in text}
    return dict(_support_cache[template])


def template_supports_tools(tokenizer) -> bool:
    """True when the chat template expresses tool descriptions, tool calls and tool results."""
    return all(tool_support(tokenizer).values())


def has_tool_parts(record: dict) -> bool:
    return bool(record.get("tools")) or any(
        m.get("tool_calls") or m.get("role") == "tool"
        for key in ("prompt", "completion", "chosen", "rejected") for m in record.get(key) or [])


def tool_notes(support: dict[str, bool]) -> list[Msg]:
    """Sentences for what a template cannot express (and what the studio does instead)."""
    notes = []
    if not support["calls"]:
        notes.append(Msg("formats.calls_as_text"))
    if not support["tools"]:
        notes.append(Msg("formats.tools_as_text"))
    if not support["results"]:
        notes.append(Msg("formats.results_unsupported"))
    return notes


def for_template(record: dict, support: dict[str, bool]) -> dict:
    """The record as a template with `support` can train on it: tool calls it cannot show are
    written as JSON text in the assistant's turn, tool descriptions it cannot show go into the
    system turn as JSON (said in `tool_notes`; never relabelled as user text)."""
    if not has_tool_parts(record) or (support["calls"] and support["tools"]):
        return record
    out = dict(record)
    if not support["calls"]:
        for key in ("prompt", "completion", "chosen", "rejected"):
            if key in out:
                out[key] = [_call_as_text(m) if m.get("tool_calls") else m for m in out[key]]
    if not support["tools"] and out.get("tools"):
        described = json.dumps([t.get("function", t) for t in out.pop("tools")], ensure_ascii=False)
        prompt = list(out["prompt"])
        if prompt and prompt[0]["role"] == "system":
            prompt[0] = dict(prompt[0], content=f"{prompt[0]['content']}\n\n{described}")
        else:
            prompt.insert(0, {"role": "system", "content": described})
        out["prompt"] = prompt
    return out


def _call_as_text(message: dict) -> dict:
    calls = [json.dumps({"name": c["function"]["name"], "arguments": c["function"].get("arguments")},
                        ensure_ascii=False) for c in message["tool_calls"]]
    content = "\n".join([message["content"]] + calls if message.get("content") else calls)
    return {k: v for k, v in message.items() if k != "tool_calls"} | {"content": content}


# ---- for the trainer ----------------------------------------------------------------------------

def to_dataset(records: list[dict], tokenizer=None):
    """A `datasets.Dataset` of records for TRL, metadata stripped. With the model's tokenizer, tool
    parts its template cannot express are written as text (`for_template`). Messages and tool
    schemas are stored as JSON values: Arrow would otherwise merge every tool's argument names into
    one struct and fill the missing ones with None (which the chat template would then print)."""
    from datasets import Dataset, Features, Json, List, Value

    rows = [strip_meta(r) for r in records]
    if rows and "text" in rows[0] and "prompt" not in rows[0]:
        return Dataset.from_list(rows)
    if tokenizer is not None and any(has_tool_parts(r) for r in rows):
        support = tool_support(tokenizer)
        rows = [for_template(r, support) for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    features = Features({k: Json() if k == "tools" else List(Json()) if k != "text" else Value("string")
                         for k in keys})
    return Dataset.from_list(rows, features=features)
