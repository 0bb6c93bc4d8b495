"""Datasets: load a file or Hub id, recognise its layout, convert it for TRL, check it, split it.

    rows = load_rows("train.jsonl")                  # list of dicts (JSON/JSONL/CSV/TSV/TXT/Parquet/Hub id)
    fmt = detect_format(rows)                        # 'alpaca', 'sharegpt', 'messages', ...
    records = to_sft_records(rows, fmt, system="")   # TRL prompt/completion or text records
    train, val, test = split_rows(records, 0.2, 0.1, seed=42)

    report = check_training_data(cfg)                # before a run exists: UserError or a report
    report["summary"]                                # a Msg: rows, format, long rows and their fate
    records, report = trainable_records(cfg)         # what trains (prepare_data), same rule

SFT records are TRL's conversational prompt-completion shape
(`{"prompt": [messages…], "completion": [{"role": "assistant", …}]}`), so the model's chat
template is applied by TRL and the loss covers the answer tokens only; plain text becomes
`{"text": …}` for continued pre-training.

Long rows: TRL cuts every example at `train.max_length` tokens, which silently loses the end of
the answer. Rows are therefore counted with the model's own tokenizer, the way TRL tokenizes them,
and a conversation that does not fit is left out (and reported), never cut; a plain text is cut
(continued pre-training learns from its start). If the rows that fit leave less than one batch
to train on, the check refuses and names the longest row. Reading files safely (sniffing, size
caps, kinds of fields) lives in `studio.dataload`.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

from studio.dataload import FILE_TYPES, check_rows, first_line, human_size, limits, read_rows
from studio.errors import UserError
from studio.i18n import Msg
from studio.paths import DEMO_DATA, resolve_data_path, resolve_model_path

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant"}


def load_rows(source: str, max_rows: int = 0) -> list[dict]:
    """Rows of a local file or a Hub dataset id ('train' split), as plain dicts, every row checked."""
    path = Path(resolve_data_path(source))
    if path.exists():
        return read_rows(path, max_rows)
    looks_like_hub_id = ("/" in source and not source.startswith((".", "/", "~"))
                         and Path(source).suffix.lower() not in FILE_TYPES)
    if not looks_like_hub_id:
        raise UserError("data.not_found", key="data.path", source=source)
    return _hub_rows(source, max_rows)


def _hub_rows(source: str, max_rows: int) -> list[dict]:
    import datasets  # its cache follows the studio home (studio.paths.use_home_caches)

    try:
        ds = datasets.load_dataset(source, split=f"train[:{max_rows}]" if max_rows else "train")
    except Exception as exc:  # datasets raises many types for unreachable or unreadable sets
        raise UserError("data.hub_unreadable", key="data.path", source=source, detail=first_line(exc)) from None
    cap = limits()["file"]
    if ds.data.nbytes > cap:  # checked on the Arrow table, before it becomes Python objects
        raise UserError("data.file_too_large", key="data.path", name=source, size=human_size(ds.data.nbytes),
                        limit=human_size(cap))
    rows = check_rows(ds.to_list(), source)
    if not rows:
        raise UserError("data.no_rows", key="data.path", name=source)
    return rows


def detect_format(rows: list[dict]) -> str:
    cols = set(rows[0])
    if {"chosen", "rejected"} <= cols:
        return "preference"
    if "conversations" in cols:
        return "sharegpt"
    if "messages" in cols:
        return "messages"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    if "text" in cols:
        return "text"
    raise UserError("data.unknown_columns", key="data.format", columns=", ".join(sorted(map(str, cols))))


def _content(value) -> str:
    if isinstance(value, dict):  # sharegpt-preference answers are single messages
        return str(value.get("value", value.get("content", "")))
    if isinstance(value, list) and value:
        return _content(value[-1])
    return "" if value is None else str(value)


def _turns(conversation: list[dict]) -> list[dict]:
    """sharegpt from/value or messages role/content -> role/content messages."""
    out = []
    for turn in conversation or []:
        role = turn.get("role") or SHAREGPT_ROLES.get(str(turn.get("from", "")).lower(), "user")
        out.append({"role": SHAREGPT_ROLES.get(role, role), "content": _content(turn)})
    return out


def _pair(prompt: list[dict], answer: str, system: str) -> dict:
    if system and not (prompt and prompt[0]["role"] == "system"):
        prompt = [{"role": "system", "content": system}] + prompt
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}


def to_sft_record(row: dict, fmt: str, system: str = "") -> dict | None:
    """One row -> a TRL SFT record, or None if the row has nothing to learn from."""
    if fmt == "text":
        text = str(row.get("text") or "")
        return {"text": text} if text.strip() else None
    if fmt == "alpaca":
        question = str(row.get("instruction") or "")
        if row.get("input"):
            question = f"{question}\n\n{row['input']}"
        prompt = []
        for old_q, old_a in row.get("history") or []:
            prompt += [{"role": "user", "content": old_q}, {"role": "assistant", "content": old_a}]
        prompt.append({"role": "user", "content": question})
        answer = str(row.get("output") or "")
        return _pair(prompt, answer, row.get("system") or system) if question.strip() and answer.strip() else None
    if fmt in ("sharegpt", "messages"):
        turns = _turns(row.get("conversations") or row.get("messages"))
        if not turns or turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
            return None
        return _pair(turns[:-1], turns[-1]["content"], system)
    if fmt in ("prompt_completion", "preference"):
        prompt = row.get("prompt")
        if prompt is None and "conversations" in row:
            prompt = row["conversations"]
        prompt = _turns(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt or "")}]
        answer = _content(row.get("completion") if fmt == "prompt_completion" else row.get("chosen"))
        return _pair(prompt, answer, system) if prompt and answer.strip() else None
    raise UserError("data.unknown_format", key="data.format", format=fmt)


def to_sft_records(rows: list[dict], fmt: str = "auto", system: str = "") -> list[dict]:
    if fmt == "auto":
        fmt = detect_format(rows)
    records = []
    for number, row in enumerate(rows, 1):
        try:
            record = to_sft_record(row, fmt, system)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # e.g. turns that are not objects
            raise UserError("data.row_layout", key="data.format", row=number, format=fmt,
                            detail=first_line(exc)) from None
        if record is not None:
            records.append(record)
    if not records:
        raise UserError("data.no_usable_rows", key="data.format", format=fmt)
    return records


def split_rows(rows: list, val_size: float, test_size: float, seed: int = 42) -> tuple[list, list, list]:
    """Shuffle with seed, then test = first share, val = next share, train = the rest (7:2:1 default)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_test, n_val = round(len(rows) * test_size), round(len(rows) * val_size)
    test, val, train = rows[:n_test], rows[n_test:n_test + n_val], rows[n_test + n_val:]
    if not train:
        raise UserError("data.too_few_to_split", key="data.val_size", rows=len(rows))
    return train, val, test


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- long rows: counted the way TRL's SFTTrainer tokenizes them ---------------------------------

_tokenizers: dict[tuple[str, bool], object] = {}
_tokenizer_lock = threading.Lock()  # a fast tokenizer must not be used by two threads at once


def _tokenizer_for(cfg):
    from studio.models import check_model, load_tokenizer

    key = (resolve_model_path(cfg.model.path), cfg.model.trust_remote_code)
    if key not in _tokenizers:
        check_model(cfg.model)  # a missing or unreachable model gets its own sentence, fast
        try:
            _tokenizers[key] = load_tokenizer(*key)
        except Exception as exc:  # a model folder without (usable) tokenizer files
            raise UserError("data.no_tokenizer", key="model.path", model=cfg.model.path,
                            detail=first_line(exc)) from None
    return _tokenizers[key]


def token_lengths(records: list[dict], tokenizer, batch: int = 512) -> list[int]:
    """Tokens per record as TRL counts them: the chat template over prompt + completion, or text + EOS."""
    lengths: list[int] = []
    # Rows longer than the model's context are what is being counted here, not a mistake to warn about.
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    for start in range(0, len(records), batch):
        part = records[start:start + batch]
        if "text" in part[0]:
            eos = tokenizer.eos_token or ""
            texts = [r["text"] if r["text"].endswith(eos) else r["text"] + eos for r in part]
            ids = tokenizer(text=texts)["input_ids"]
        else:
            conversations = [r["prompt"] + r["completion"] for r in part]
            ids = tokenizer.apply_chat_template(conversations, tokenize=True, return_dict=True)["input_ids"]
        lengths += [len(x) for x in ids]
    return lengths


def trainable_records(cfg, tokenizer=None) -> tuple[list[dict], dict]:
    """(the records that train, the report): the one rule shared by the check and prepare_data."""
    rows = load_rows(cfg.data.path, cfg.data.max_samples)
    fmt = detect_format(rows) if cfg.data.format == "auto" else cfg.data.format
    records = to_sft_records(rows, fmt, cfg.data.system_prompt)
    max_length = cfg.train.max_length
    tokenizer = tokenizer or _tokenizer_for(cfg)
    with _tokenizer_lock:
        try:
            lengths = token_lengths(records, tokenizer)
        except Exception as exc:  # a chat template may refuse a conversation (e.g. roles must alternate)
            raise UserError("data.template_refused", key="data.format", model=cfg.model.path,
                            detail=first_line(exc)) from None
    too_long = sum(n > max_length for n in lengths)
    long_rows = "cut" if fmt == "text" else "left_out"
    if long_rows == "left_out":
        records = [r for r, n in zip(records, lengths) if n <= max_length]
    report = {"name": _display_name(cfg.data.path), "rows": len(rows), "usable": len(lengths),
              "format": fmt, "too_long": too_long, "max_length": max_length, "long_rows": long_rows,
              "kept": len(records), "longest": max(lengths)}
    _refuse_too_few(report, cfg)
    report["summary"] = summary_message(report)
    return records, report


def _refuse_too_few(report: dict, cfg) -> None:
    """Leaving rows out must not leave too little to train on (less than one batch after the split)."""
    kept = report["kept"]
    n_train = kept - round(kept * cfg.data.test_size) - round(kept * cfg.data.val_size)
    if report["long_rows"] == "left_out" and report["too_long"] and n_train < cfg.train.batch_size:
        raise UserError("data.too_few_fit", key="train.max_length", kept=kept, usable=report["usable"],
                        max_length=report["max_length"], longest=report["longest"])
    if n_train < 1:
        raise UserError("data.too_few_to_split", key="data.val_size", rows=kept)


def _display_name(source: str) -> str:
    return source if source in DEMO_DATA or not Path(source).suffix else Path(source).name


def report_messages(report: dict) -> list[Msg]:
    """The report as two sentences: rows, format and usable rows; then how many rows are too long
    for Max length and what happens to them (left out, or cut for plain text)."""
    lines = [Msg("data.report_rows", name=report["name"], rows=report["rows"], format=report["format"],
                 usable=report["usable"])]
    if report["too_long"] and report["long_rows"] == "left_out":
        lines.append(Msg("data.report_left_out", count=report["too_long"], total=report["usable"],
                         max_length=report["max_length"], longest=report["longest"]))
    elif report["too_long"]:
        lines.append(Msg("data.report_cut", count=report["too_long"], total=report["usable"],
                         max_length=report["max_length"]))
    else:
        lines.append(Msg("data.report_all_fit", max_length=report["max_length"]))
    return lines


def summary_message(report: dict) -> Msg:
    """One Msg holding both report sentences (what the CLI and the Train tab print before starting)."""
    first, second = report_messages(report)
    return Msg("data.report_summary", rows=first, lengths=second)


# ---- the check before a run exists -----------------------------------------------------------

_reports: dict[tuple, dict] = {}


def _fingerprint(cfg) -> tuple:
    """What the report depends on; a changed file (size or time) gives a new fingerprint."""
    path = Path(resolve_data_path(cfg.data.path))
    stat = path.stat() if path.is_file() else None
    file_id = (str(path), stat.st_size, stat.st_mtime_ns) if stat else (cfg.data.path,)
    return (file_id, cfg.data.format, cfg.data.max_samples, cfg.data.system_prompt, cfg.data.val_size,
            cfg.data.test_size, resolve_model_path(cfg.model.path), cfg.model.trust_remote_code,
            cfg.train.max_length)


def check_training_data(cfg, tokenizer=None) -> dict:
    """Everything about the data that can be checked before a run folder exists.

    Raises UserError (one sentence, key='data.path' or the field concerned) for data that cannot
    train; otherwise returns the report the Train tab and `studio train` show before starting:
    {"name", "rows", "usable", "format", "too_long", "max_length", "long_rows" ('left_out' or
    'cut'), "kept", "longest", "summary" (a Msg)}. Called by the job manager before it creates a
    run; repeated calls with an unchanged file and settings are answered from memory.
    """
    key = _fingerprint(cfg)
    if key not in _reports:
        if len(_reports) > 32:
            _reports.clear()
        _reports[key] = trainable_records(cfg, tokenizer)[1]
    return dict(_reports[key])
