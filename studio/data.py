"""Datasets: load a file or Hub id, recognise its layout, convert it for TRL, split it.

    rows = load_rows("train.jsonl")                  # list of dicts (JSON/JSONL/CSV/Parquet/Hub id)
    fmt = detect_format(rows)                        # 'alpaca', 'sharegpt', 'messages', ...
    records = to_sft_records(rows, fmt, system="")   # TRL prompt/completion or text records
    train, val, test = split_rows(records, 0.2, 0.1, seed=42)

SFT records are TRL's conversational prompt-completion shape
(`{"prompt": [messages…], "completion": [{"role": "assistant", …}]}`), so the model's chat
template is applied by TRL and the loss covers the answer tokens only; plain text becomes
`{"text": …}` for continued pre-training.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from studio.errors import UserError
from studio.paths import resolve_data_path

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant"}
FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_rows(source: str, max_rows: int = 0) -> list[dict]:
    """Rows of a local file or a Hub dataset id ('train' split), as plain dicts."""
    import datasets

    path = Path(resolve_data_path(source))
    try:
        if path.exists():
            kind = FILE_TYPES.get(path.suffix.lower())
            if kind is None:
                raise UserError(f"{path.name}: use a .json, .jsonl, .csv or .parquet file.")
            if path.stat().st_size == 0:
                raise UserError(f"{path.name} is empty.")
            ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        elif "/" in source and not source.startswith((".", "/", "~")):
            ds = datasets.load_dataset(source, split="train")
        else:
            raise UserError(f"Dataset not found: '{source}' is neither a file nor a Hub dataset id.")
    except UserError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"Could not read dataset '{source}': {first}") from None
    if max_rows:
        ds = ds.select(range(min(max_rows, len(ds))))
    rows = ds.to_list()
    if not rows:
        raise UserError(f"Dataset '{source}' has no rows.")
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
    raise UserError(
        f"Could not recognise the dataset's columns ({', '.join(sorted(cols))}). Expected e.g. "
        "instruction/output (alpaca), conversations, messages, prompt/completion, "
        "prompt/chosen/rejected or text."
    )


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
    raise UserError(f"Unknown dataset format '{fmt}'.")


def to_sft_records(rows: list[dict], fmt: str = "auto", system: str = "") -> list[dict]:
    if fmt == "auto":
        fmt = detect_format(rows)
    records = [r for r in (to_sft_record(row, fmt, system) for row in rows) if r is not None]
    if not records:
        raise UserError(f"No usable rows: every row lacks a question or an answer for format '{fmt}'.")
    return records


def split_rows(rows: list, val_size: float, test_size: float, seed: int = 42) -> tuple[list, list, list]:
    """Shuffle with seed, then test = first share, val = next share, train = the rest (7:2:1 default)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_test, n_val = round(len(rows) * test_size), round(len(rows) * val_size)
    test, val, train = rows[:n_test], rows[n_test:n_test + n_val], rows[n_test + n_val:]
    if not train:
        raise UserError(f"Only {len(rows)} usable rows: too few to keep any for training after the split.")
    return train, val, test


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def check_training_data(cfg) -> dict:
    """Everything about the data that can be checked before a run folder exists.

    Raises UserError (one sentence, key='data.path' or the field concerned) for data that cannot
    train; otherwise returns a report the Train tab and `studio train` show before starting:
    {"rows", "usable", "format", "too_long", "max_length", ...}. Called by the job manager
    before it creates a run. (First version: load + convert; the data-check work extends it.)
    """
    rows = load_rows(cfg.data.path, cfg.data.max_samples)
    fmt = detect_format(rows) if cfg.data.format == "auto" else cfg.data.format
    records = to_sft_records(rows, fmt, cfg.data.system_prompt)
    return {"rows": len(rows), "usable": len(records), "format": fmt, "too_long": None,
            "max_length": cfg.train.max_length}
