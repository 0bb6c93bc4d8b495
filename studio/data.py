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

# The layouts and their conversion live in studio.formats; these names stay for older callers.
from studio.formats import FORMATS, SHAREGPT_ROLES, detect, strip_meta, to_records  # noqa: F401
from studio.formats import normalise as _normalise


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

    from studio import hub

    hub.require_hub(source, "data.path", kind="dataset")  # seconds, not minutes, when the Hub is away
    try:
        ds = datasets.load_dataset(source, split=f"train[:{max_rows}]" if max_rows else "train", **hub.token_kwargs())
    except Exception as exc:  # datasets raises many types for unreachable or unreadable sets
        if hub.is_offline():
            raise UserError("hub.dataset_offline", key="data.path", source=source) from None
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
    """The format name of `rows` (see `studio.formats.detect` for the reason and the note)."""
    return detect(rows).format


def to_sft_record(row: dict, fmt: str, system: str = "") -> dict | None:
    """One row -> a TRL SFT record, or None if the row has nothing to learn from."""
    return _normalise(row, fmt, system)


def to_sft_records(rows: list[dict], fmt: str = "auto", system: str = "") -> list[dict]:
    """Rows -> TRL SFT records (no metadata keys); see `studio.formats.to_records`."""
    return [strip_meta(r) for r in to_records(rows, fmt, system)]


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
        elif "rejected" in part[0]:  # a preference record (DPO): its longer answer counts
            chosen = tokenizer.apply_chat_template([r["prompt"] + r["chosen"] for r in part], tokenize=True,
                                                   return_dict=True)["input_ids"]
            rejected = tokenizer.apply_chat_template([r["prompt"] + r["rejected"] for r in part], tokenize=True,
                                                     return_dict=True)["input_ids"]
            ids = [a if len(a) >= len(b) else b for a, b in zip(chosen, rejected)]
        else:
            conversations = [r["prompt"] + r["completion"] for r in part]
            ids = tokenizer.apply_chat_template(conversations, tokenize=True, return_dict=True)["input_ids"]
        lengths += [len(x) for x in ids]
    return lengths


def trainable_records(cfg, tokenizer=None, home=None) -> tuple[list[dict], dict]:
    """(the records that train, the report): the one rule shared by the check and prepare_data.

    A raw source (file, bundled name, Hub id) gives all its usable rows, split later by
    `training_splits`; a library dataset or a mix (`library:<id>`, data.mix) gives its training
    rows only (see `library_splits`)."""
    if uses_library(cfg):
        splits, report = library_splits(cfg, tokenizer, home)
        return splits["train"], report
    rows = load_rows(cfg.data.path, cfg.data.max_samples)
    fmt = detect_format(rows) if cfg.data.format == "auto" else cfg.data.format
    if cfg.method.stage == "dpo":  # DPO trains on preference records (prompt, chosen, rejected)
        if fmt != "preference":
            raise UserError("dpo.needs_preference", key="data.path", name=_display_name(cfg.data.path), format=fmt)
        records = [strip_meta(r) for r in to_records(rows, fmt, cfg.data.system_prompt, kind="dpo")]
    else:
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
    n_train = report.get("train_rows", kept - round(kept * cfg.data.test_size) - round(kept * cfg.data.val_size))
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
    lines = [report.get("rows_message") or Msg("data.report_rows", name=report["name"], rows=report["rows"],
                                               format=report["format"], usable=report["usable"])]
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


# ---- library datasets and mixes (studio.library) -----------------------------------------------

def uses_library(cfg) -> bool:
    """Whether the run trains on library datasets (data.mix, or data.path = library:<id>)."""
    from studio.paths import is_library_ref

    return bool(cfg.data.mix.strip()) or is_library_ref(cfg.data.path)


def training_sources(cfg) -> list[tuple[str, float]]:
    """[(library ref, share)] of a run on library data: the data.mix entries, or data.path alone."""
    from studio.library import parse_mix

    return parse_mix(cfg.data.mix) if cfg.data.mix.strip() else [(cfg.data.path.strip(), 1.0)]


def trainer_record(record: dict) -> dict:
    """A stored record as SFT trains on it: metadata stripped; a preference record trains its
    chosen answer (DPO, which uses both, reads the library records themselves)."""
    record = strip_meta(record)
    if "chosen" in record:
        record = {"prompt": record["prompt"], "completion": record["chosen"],
                  **({"tools": record["tools"]} if "tools" in record else {})}
    return record


def _lengths(records: list[dict], tokenizer, cfg) -> list[int]:
    with _tokenizer_lock:
        try:
            return token_lengths(records, tokenizer)
        except Exception as exc:  # a chat template may refuse a conversation (e.g. roles must alternate)
            raise UserError("data.template_refused", key="data.format", model=cfg.model.path,
                            detail=first_line(exc)) from None


def _draw(records: list[dict], count: int, rng: random.Random) -> list[dict]:
    """`count` records: whole shuffled passes over `records` while count exceeds them (oversampling),
    then a sample without replacement for the rest."""
    drawn = []
    while count - len(drawn) >= len(records):
        drawn += rng.sample(records, len(records))
    return drawn + rng.sample(records, count - len(drawn))


def library_splits(cfg, tokenizer=None, home=None) -> tuple[dict[str, list[dict]], dict]:
    """({"train", "val", "test"} records, report) of a run on library datasets.

    Each dataset keeps its own splits (data.val_size / test_size do not apply): its train split
    trains, its val split measures eval loss, its test split is held out (written to
    run/data/test.jsonl for evaluation, never trained). Conversations longer than Max length are
    left out of train and val, texts are cut, as for raw files.

    Mixing (data.mix = "library:a=0.7, library:b=0.3"): shares are divided by their sum. The
    training set has N rows, N = the sum of the datasets' training rows that fit (or max_samples
    when set); dataset i gives round(N * share_i) of them (largest remainder, at least one),
    drawn with the run's seed: a sample without replacement when it has enough rows, else whole
    passes over it plus a sample (oversampling). The drawn rows are shuffled together. Validation
    and test are the union of the datasets' val and test splits, whole. Without a mix,
    max_samples keeps the first rows of the training split.
    """
    from studio.library import SPLITS, Library

    library = Library(home)
    entries = training_sources(cfg)
    key = "data.mix" if cfg.data.mix.strip() else "data.path"
    tokenizer = tokenizer or _tokenizer_for(cfg)
    max_length = cfg.train.max_length
    parts, kinds = [], set()
    too_long = usable = longest = 0
    for ref, share in entries:
        try:
            meta = library.get(ref)
            as_record = strip_meta if cfg.method.stage == "dpo" else trainer_record  # DPO keeps both answers
            splits = {s: [as_record(r) for r in library.records(ref, s, verify=True)] for s in SPLITS}
        except UserError as exc:
            raise UserError(exc.msg, key=key) from None
        if not splits["train"]:
            raise UserError("library.no_train_rows", key=key, ref=ref)
        if cfg.method.stage == "dpo" and "rejected" not in splits["train"][0]:
            raise UserError("dpo.needs_preference", key=key, name=ref, format=meta.get("format") or "?")
        kind = "text" if "text" in splits["train"][0] else "chat"
        kinds.add(kind)
        for split in ("train", "val"):
            if not splits[split]:
                continue
            lengths = _lengths(splits[split], tokenizer, cfg)
            longest = max(longest, max(lengths))
            if split == "train":
                too_long += sum(n > max_length for n in lengths)
                usable += len(lengths)
            if kind == "chat":
                splits[split] = [r for r, n in zip(splits[split], lengths) if n <= max_length]
        parts.append({"ref": ref, "share": share, "meta": meta, "splits": splits})
    if len(kinds) > 1:
        raise UserError("library.mix_kinds", key=key)
    rng = random.Random(cfg.train.seed)
    if cfg.data.mix.strip():
        from studio.library import mix_counts

        total = cfg.data.max_samples or sum(len(p["splits"]["train"]) for p in parts)
        counts = mix_counts([p["share"] for p in parts], total)
        train = []
        for part, count in zip(parts, counts):
            if not part["splits"]["train"]:
                raise UserError("library.none_fit", key="train.max_length", ref=part["ref"], max_length=max_length)
            part["drawn"] = _draw(part["splits"]["train"], count, rng)
            train += part["drawn"]
        rng.shuffle(train)
    else:
        train = parts[0]["splits"]["train"]
        train = train[:cfg.data.max_samples] if cfg.data.max_samples else train
        parts[0]["drawn"] = train
    val = [r for p in parts for r in p["splits"]["val"]]
    test = [r for p in parts for r in p["splits"]["test"]]
    sources = [{"ref": p["ref"], "id": p["meta"]["id"], "name": p["meta"].get("name"), "hash": p["meta"].get("hash"),
                "share": round(p["share"], 6), "format": p["meta"].get("format"),
                "splits": {s: {"rows": (p["meta"]["splits"].get(s) or {}).get("rows"),
                               "sha256": (p["meta"]["splits"].get(s) or {}).get("sha256")} for s in SPLITS},
                "used": {"train": len(p["drawn"]), "train_fit": len(p["splits"]["train"]),
                         "val": len(p["splits"]["val"]), "test": len(p["splits"]["test"])}} for p in parts]
    if len(parts) == 1 and not cfg.data.mix.strip():
        meta = parts[0]["meta"]
        name = f"{meta.get('name')} ({parts[0]['ref']})"
        rows_message = Msg("library.report_rows", name=name, train=len(train), val=len(val), test=len(test))
    else:
        name = "data.mix"
        shares = ", ".join(f"{p['meta'].get('name')} {p['share']:.0%} ({len(p['drawn'])})" for p in parts)
        rows_message = Msg("library.report_mix", count=len(parts), shares=shares, train=len(train), val=len(val),
                           test=len(test))
    fmt = parts[0]["meta"].get("format") if len(parts) == 1 else "mix"
    report = {"name": name, "rows": usable, "usable": usable, "format": fmt, "too_long": too_long,
              "max_length": max_length, "long_rows": "cut" if kinds == {"text"} else "left_out",
              "kept": len(train), "train_rows": len(train), "longest": longest, "rows_message": rows_message,
              "sources": sources}
    _refuse_too_few(report, cfg)
    report["summary"] = summary_message(report)
    return {"train": train, "val": val, "test": test}, report


def training_splits(cfg, tokenizer=None, home=None) -> tuple[dict[str, list[dict]], dict]:
    """({"train", "val", "test"} records without metadata, report) — what a run trains, measures
    and holds out. report["sources"] lists what the data came from (for run/data/manifest.json)."""
    if uses_library(cfg):
        return library_splits(cfg, tokenizer, home)
    records, report = trainable_records(cfg, tokenizer)
    train, val, test = split_rows([strip_meta(r) for r in records], cfg.data.val_size, cfg.data.test_size,
                                  cfg.train.seed)
    report["sources"] = [raw_source(cfg.data.path)]
    return {"train": train, "val": val, "test": test}, report


def raw_source(source: str) -> dict:
    """A raw source for the manifest: a file with the sha256 of its bytes, or a Hub id."""
    from studio.library import sha256_file

    path = Path(resolve_data_path(source))
    if path.is_file():
        return {"path": str(path), "name": _display_name(source), "sha256": sha256_file(path)}
    return {"hub": source, "name": source}


def write_manifest(path: Path, cfg, splits: dict[str, list[dict]], report: dict) -> dict:
    """run/data/manifest.json: the exact data a run trained on — its sources with their hashes
    (library split hashes, or the sha256 of a raw file) and the sha256 and rows of each split file
    the run wrote (data/<split>.jsonl, as `write_jsonl` writes them)."""
    from studio.library import sha256_file

    folder = Path(path).parent
    manifest = {
        "version": 1,
        "data": {"path": cfg.data.path, "mix": cfg.data.mix, "format": cfg.data.format,
                 "max_samples": cfg.data.max_samples, "seed": cfg.train.seed},
        "sources": report.get("sources") or [],
        "files": {name: {"file": f"{name}.jsonl", "rows": len(part),
                         "sha256": sha256_file(folder / f"{name}.jsonl") if (folder / f"{name}.jsonl").is_file()
                         else None}
                  for name, part in splits.items()},
        "held_out": "test",
    }
    folder.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


# ---- the check before a run exists -----------------------------------------------------------

_reports: dict[tuple, dict] = {}


def _fingerprint(cfg) -> tuple:
    """What the report depends on; a changed file (size or time) gives a new fingerprint."""
    if uses_library(cfg):
        from studio.library import META_FILE, Library

        library = Library()
        stamps = []
        for ref, share in training_sources(cfg):
            meta = library.folder(ref) / META_FILE if library.exists(ref) else None
            if meta is None:  # not there: nothing to remember, library_splits says so
                return ("missing", object())
            stamps.append((ref, share, meta.stat().st_mtime_ns))
        return (tuple(stamps), str(library.root), cfg.data.max_samples, cfg.train.seed, cfg.train.batch_size,
                resolve_model_path(cfg.model.path), cfg.model.trust_remote_code, cfg.train.max_length, cfg.method.stage)
    path = Path(resolve_data_path(cfg.data.path))
    stat = path.stat() if path.is_file() else None
    file_id = (str(path), stat.st_size, stat.st_mtime_ns) if stat else (cfg.data.path,)
    return (file_id, cfg.data.format, cfg.data.max_samples, cfg.data.system_prompt, cfg.data.val_size,
            cfg.data.test_size, resolve_model_path(cfg.model.path), cfg.model.trust_remote_code,
            cfg.train.max_length, cfg.method.stage)


def check_training_data(cfg, tokenizer=None) -> dict:
    """Everything about the data that can be checked before a run folder exists.

    Raises UserError (one sentence, key='data.path' or the field concerned) for data that cannot
    train; otherwise returns the report the Train tab and `studio train` show before starting:
    {"name", "rows", "usable", "format", "too_long", "max_length", "long_rows" ('left_out' or
    'cut'), "kept", "longest", "summary" (a Msg)}; for library data (`library:<id>`, data.mix)
    also "train_rows", "rows_message" and "sources" (see `library_splits`). Called by the job
    manager before it creates a run; repeated calls with an unchanged file and settings are
    answered from memory.
    """
    key = _fingerprint(cfg)
    if key not in _reports:
        if len(_reports) > 32:
            _reports.clear()
        _reports[key] = trainable_records(cfg, tokenizer)[1]
    return dict(_reports[key])
