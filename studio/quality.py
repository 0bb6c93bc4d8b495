"""The data quality report: what is wrong with a dataset, counted, with example rows.

    report = quality_report(records, tokenizer=tok, max_length=256, near_threshold=0.8)
    report["findings"]    # [{"code", "count", "examples": [indices], "rows": [_row], "message": Msg, ...}]
    report["histogram"]   # [{"start", "end", "count", "over"}]: lengths against max_length
    report["languages"]   # {"en": 812, "zh": 190}: rows per language (by script)
    report["lengths"]     # tokens per record with a tokenizer, else None ("unit": tokens|characters)

    detection, report = inspect_table(load_table("big.jsonl"))   # the same, straight from Arrow

    duplicate_groups(records)              # [[0, 7], [3, 9, 12]]: same prompt and answer
    near_duplicate_groups(records, 0.8)    # texts at least 80% the same (MinHash LSH); copies too
    conflict_groups(records)               # same prompt, different answers
    find_placeholders("Dear {{name}},")    # ['{{name}}']

Records are studio.formats' internal records; the checks look at their plain texts
(`studio.formats.record_texts`: the prompt, context included, and the answer). Example indices
are positions in the list given (`rows` holds the records' `_row`, the source row, when they
have one). Finding codes: empty, duplicate, near_duplicate (rows beyond the exact copies),
conflict, too_long (with `answers_lost`: rows whose prompt alone fills max_length),
template_refused, invalid_chars (with `kinds`), placeholder (with `placeholders`: name -> rows),
language_mix; a finding is listed only when its count is above zero. Group findings keep their
first groups in `groups`. Languages are told apart by script: Latin counts as "en", Han as "zh",
kana as "ja", Hangul as "ko", Cyrillic as "ru", Arabic as "ar"; rows without letters are not
counted.

`inspect_table` is what `studio data inspect` needs for a large file: the texts are read where
they lie in the Arrow table (alpaca, prompt/completion and text columns) or from records made a
few thousand rows at a time, so no list of records is ever held (see benchmarks/data_inspect.py:
100k rows in about the time `datasets.load_dataset` takes, at under twice the Arrow size).

How it stays fast: every check runs over Arrow columns a few thousand rows at a time (a few
threads): hashes of the trimmed texts for duplicates and conflicts, Arrow regular expressions
(RE2) for invalid characters and placeholders, the UTF-8 lead bytes for the script. Near
duplicates are a MinHash over the 8-byte pieces of the text that start a word or a non-ASCII
character, one hash per piece (one-permutation hashing, 64 one-byte bins), banded LSH for candidate
pairs and the signatures to confirm them, connected into groups. Without a tokenizer the
histogram counts characters and nothing is reported too long.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter

import numpy as np

from studio.i18n import Msg

EXAMPLES = 10  # example row indices kept per finding
BIN_BITS = 6
BINS = 1 << BIN_BITS  # MinHash signature length (64 bytes per row)

# Control characters other than tab/newline/carriage return, C1 controls (often broken
# Windows-1252 text), the replacement character U+FFFD (text decoded with errors replaced).
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
REPLACEMENT = "\ufffd"
# UTF-8 read as Windows-1252/Latin-1 ("é" -> "Ã©", "’" -> "â€™", "中" -> "ä¸­"): a lead byte's
# character followed by characters standing for continuation bytes.
_CONT = ("\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
         "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122")
MOJIBAKE = f"[\u00c2\u00c3][{_CONT}]|[\u00e2\u00e4-\u00e9][{_CONT}][{_CONT}]"
INVALID = f"{CONTROL}|{REPLACEMENT}|{MOJIBAKE}"

# Template placeholders left in the text: {{name}}, {name}, [NAME], ${name}. Single braces and
# brackets only count when they hold an identifier (not JSON, not a LaTeX argument like \frac{a}).
# The same pattern runs in Arrow (RE2: ASCII \w, no look-behind) and in Python (re.ASCII).
PLACEHOLDER = (r"(?m)\{\{\s*[A-Za-z_][\w.]*\s*\}\}|\$\{[A-Za-z_]\w*\}|(?:^|[^\\\w{}^_$])(\{[A-Za-z_]\w*\})"
               r"|(\[[A-Z][A-Z0-9_]*(?: [A-Z0-9_]+)*\])")
_PLACEHOLDER = re.compile(PLACEHOLDER, re.ASCII)

# Rows per language, told apart by script (first bytes of each row's UTF-8): Latin script counts
# as "en", Han as "zh", Cyrillic as "ru"; kana makes it "ja" even with Han around it; Greek,
# Hebrew, Thai, Indic... are "other".
LANGUAGES = ("en", "zh", "ja", "ko", "ru", "ar", "other")  # rows without letters are not counted
SAMPLE_BYTES = 48  # of the answer (or prompt): enough letters to tell the script


# ---- the texts every check looks at ---------------------------------------------------------------

class Texts:
    """The texts the checks read, one entry per record. The prompt is a list of Arrow string
    columns ("parts", e.g. alpaca's instruction and input, read where they lie, not copied),
    joined by a blank line where not blank; the answer is one column. Also: whether each record
    is plain text, its source row (`_row`, -1 when unknown), the records with a blank turn inside
    a conversation, token lengths when counted and the rows whose answer they would lose."""

    def __init__(self, prompts, answers, is_text, rows, blank_turns=(), lengths=None, lost=()):
        self.parts = list(prompts) if isinstance(prompts, (list, tuple)) else [prompts]
        self.answers = answers
        self.is_text = np.asarray(is_text, dtype=bool)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.blank_turns = list(blank_turns)
        self.lengths, self.lost = lengths, list(lost)
        self._hashes = None

    def __len__(self) -> int:
        return len(self.answers)

    @property
    def columns(self) -> list:
        return self.parts + [self.answers]

    def prompt(self, i: int) -> str:
        return "\n\n".join(t for t in (part[i].as_py() for part in self.parts) if t and t.strip())

    def prompt_slice(self, lo: int, hi: int):
        """The prompt texts of rows lo..hi as one Arrow array: the parts joined by a blank line
        where not blank (a copy of those rows only)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        parts = [p.slice(lo, hi - lo) for p in self.parts]
        if not parts:
            return pa.chunked_array([pa.array([""] * (hi - lo), pa.string())])
        joined = parts[0]
        for part in parts[1:]:
            glued = pc.binary_join_element_wise(joined, part, pa.scalar("\n\n", pa.string()))
            joined = pc.if_else(pa.array(_blank(joined)), part, pc.if_else(pa.array(_blank(part)), joined, glued))
        return joined

    def text(self, i: int) -> str:
        """Row i's prompt and answer as one text (for the few rows looked at one by one)."""
        return f"{self.prompt(i)}\n{self.answers[i].as_py()}"

    def hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(prompt, answer) hashes of the trimmed texts (0 when blank): equal texts, equal numbers."""
        if self._hashes is None:
            scan = _scan(self, only_hashes=True)
            self._hashes = scan["prompt_hash"], scan["answer_hash"]
        return self._hashes

    def blank_prompts(self) -> np.ndarray:
        blank = np.ones(len(self), dtype=bool)
        for part in self.parts:
            blank &= _blank(part)
        return blank

    @classmethod
    def of_records(cls, records: list[dict]) -> Texts:
        from studio.formats import record_texts

        pairs = [record_texts(r) for r in records]
        return cls(_strings(p for p, _ in pairs), _strings(a for _, a in pairs), [_is_text(r) for r in records],
                   [r.get("_row", -1) if isinstance(r.get("_row"), int) else -1 for r in records],
                   [i for i, r in enumerate(records) if _blank_turn(r)])

    @classmethod
    def concat(cls, parts: list[Texts]) -> Texts:
        """Texts of batches of records (one prompt column each) as one."""
        import pyarrow as pa

        shift = np.cumsum([0] + [len(p) for p in parts])
        lengths = None if any(p.lengths is None for p in parts) else [n for p in parts for n in p.lengths]

        def chunks(columns):
            return pa.chunked_array([c for column in columns for c in column.chunks], pa.string())

        return cls(chunks(p.parts[0] for p in parts), chunks(p.answers for p in parts),
                   np.concatenate([p.is_text for p in parts]) if parts else [],
                   np.concatenate([p.rows for p in parts]) if parts else [],
                   [i + s for p, s in zip(parts, shift) for i in p.blank_turns], lengths,
                   [i + s for p, s in zip(parts, shift) for i in p.lost])


def _blank(values) -> np.ndarray:
    """Empty or whitespace-only, per row (no copy of the texts)."""
    import pyarrow.compute as pc

    blank = pc.or_(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values))
    return blank.fill_null(True).to_numpy(zero_copy_only=False)


def _strings(values):
    import pyarrow as pa

    return pa.chunked_array([pa.array(list(values), pa.string())])


def _is_text(record: dict) -> bool:
    return "text" in record and "prompt" not in record


def _blank_turn(record: dict) -> bool:
    """A user or assistant turn with no text (and no tool call) inside a record's messages."""
    for key in ("prompt", "completion", "chosen", "rejected"):
        for m in record.get(key) or ():
            if m.get("role") in ("user", "assistant") and not str(m.get("content") or "").strip() \
                    and not m.get("tool_calls"):
                return True
    return False


# ---- public helpers (also used by studio.clean) -------------------------------------------------

def duplicate_groups(records: list[dict]) -> list[list[int]]:
    """Indices of records with the same prompt and answer (surrounding whitespace aside), one
    sorted group per repeated pair."""
    return _duplicate_groups(Texts.of_records(records))


def conflict_groups(records: list[dict]) -> list[list[int]]:
    """Indices of records with the same prompt (trimmed) but different answers (trimmed)."""
    return _conflict_groups(Texts.of_records(records))


def near_duplicate_groups(records: list[dict], threshold: float = 0.8) -> list[list[int]]:
    """Groups of records whose prompt+answer texts are at least `threshold` similar (Jaccard of
    their 8-byte pieces, estimated by MinHash); exact copies are in the same group."""
    return _near_groups(Texts.of_records(records), threshold)


def find_placeholders(text: str) -> list[str]:
    """The template placeholders in a text ({{name}}, {name}, ${name}, [NAME]), each once, in order."""
    found = []
    for match in _PLACEHOLDER.finditer(text or ""):
        token = match.group(1) or match.group(2) or match.group(0)
        if token not in found:
            found.append(token)
    return found


# ---- the report --------------------------------------------------------------------------------

def quality_report(records: list[dict], tokenizer=None, max_length: int = 256, near_threshold: float = 0.8) -> dict:
    """Every check over the records (see the module docstring for the shape of the result)."""
    texts = Texts.of_records(records)
    if tokenizer is not None:
        texts.lengths = token_counts(records, tokenizer)
        long_rows = [i for i, n in enumerate(texts.lengths) if n is not None and n > max_length]
        texts.lost = _answers_lost(records, long_rows, tokenizer, max_length)
    return report_of(texts, max_length, near_threshold)


def inspect_table(table, fmt: str = "auto", mapping: dict | None = None, system: str = "", kind: str = "sft",
                  tokenizer=None, max_length: int = 256, near_threshold: float = 0.8, batch: int = 5000):
    """(Detection, report) for an Arrow table (studio.dataload.load_table) without holding its
    records: the texts are taken from the columns (alpaca, prompt/completion and text files made
    of text columns) or from records made `batch` rows at a time and dropped again. The report
    is `quality_report`'s of the records `studio.formats.convert` would make; rows that make no
    record are left out of it, as there. Bad rows raise the same UserError as `convert`."""
    from studio.dataload import table_rows
    from studio.errors import UserError
    from studio.formats import detect

    detection = detect(table_rows(table, 0, 1000), mapping, fmt)
    if kind == "dpo" and detection.format != "preference":
        raise UserError("formats.dpo_needs_preference", key="data.format", format=detection.format)
    texts = None
    if tokenizer is None and kind == "sft":
        texts = _column_texts(table, detection, system)
    if texts is None:
        texts = Texts.concat([_batch_texts(table, start, start + batch, detection, system, kind, tokenizer, max_length)
                              for start in range(0, table.num_rows, batch)])
    if len(texts) == 0:
        raise UserError("data.no_usable_rows", key="data.format", format=detection.format)
    return detection, report_of(texts, max_length, near_threshold)


def _batch_texts(table, start: int, stop: int, detection, system: str, kind: str, tokenizer, max_length: int) -> Texts:
    from studio.dataload import first_line, table_rows
    from studio.errors import UserError
    from studio.formats import normalise, normalise_preference

    fmt, mapping = detection.format, detection.mapping
    records = []
    for number, row in enumerate(table_rows(table, start, stop), start + 1):
        try:
            record = (normalise_preference(row, fmt, mapping, system) if kind == "dpo"
                      else normalise(row, fmt, system, mapping))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise UserError("data.row_layout", key="data.format", row=number, format=fmt,
                            detail=first_line(exc)) from None
        if record is not None:
            record["_row"] = number
            records.append(record)
    texts = Texts.of_records(records)
    if tokenizer is not None:
        texts.lengths = token_counts(records, tokenizer)
        long_rows = [i for i, n in enumerate(texts.lengths) if n is not None and n > max_length]
        texts.lost = _answers_lost(records, long_rows, tokenizer, max_length)
    return texts


def _column_texts(table, detection, system: str) -> Texts | None:
    """The texts straight from text columns, as studio.formats.normalise + record_texts make
    them, for the layouts where that is simple; None for the others (read through records)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt, mapping = detection.format, detection.mapping
    names = set(table.column_names)

    def column(role: str):
        name = mapping.get(role)
        if name is None or name not in names:
            return None
        values = table.column(name)  # chunked as read: used as it is, not copied
        if pa.types.is_null(values.type):
            return empty()
        if not pa.types.is_string(values.type):
            if not pa.types.is_large_string(values.type):
                raise _NotColumns
            values = values.cast(pa.string())
        return values.fill_null("") if values.null_count else values

    def empty():
        return pa.chunked_array([pa.array([""] * table.num_rows, pa.string())])

    def blank(values):
        return pa.array(_blank(values))

    try:
        if fmt == "text":
            text = column("text")
            keep = pc.invert(blank(text))
            parts, answer = [], text
        elif fmt == "alpaca":
            history = mapping.get("history")
            if history in names and table.column(history).null_count < table.num_rows:
                return None
            instruction, extra, answer = column("instruction"), column("input"), column("output")
            parts = [instruction] if extra is None else [instruction, extra]
            keep = pc.and_(pc.invert(pa.array(np.logical_and.reduce([_blank(p) for p in parts]))),
                           pc.invert(blank(answer)))
            parts = _with_system(parts, column("system"), system)
        elif fmt == "prompt_completion" and mapping.get("tools") not in names:
            prompt, answer = column("prompt"), column("completion")
            keep = pc.and_(pc.invert(blank(prompt)), pc.invert(blank(answer)))
            parts = _with_system([prompt], column("system"), system)
        else:
            return None
    except _NotColumns:
        return None
    keep = keep.to_numpy(zero_copy_only=False)
    index = np.flatnonzero(keep)
    n = len(index)
    if n < len(keep):  # rows that make no record are left out (a copy only then)
        mask = pa.array(keep)
        parts, answer = [p.filter(mask) for p in parts], answer.filter(mask)
    return Texts(parts, answer, np.full(n, fmt == "text"), index + 1)


class _NotColumns(Exception):
    """A column that is not text: the records path reads it the way normalise does."""


def _with_system(parts: list, row_system, system: str) -> list:
    """The prompt parts with the system turn in front, as normalise + record_texts write it: the
    row's own system text, else the one given. Without either the parts are used as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if row_system is None or not (~_blank(row_system)).any():
        if not system.strip():
            return parts
        return [pa.chunked_array([pa.array([system] * len(parts[0]), pa.string())])] + parts
    return [pc.if_else(pa.array(_blank(row_system)), system, row_system)] + parts


def report_of(texts: Texts, max_length: int = 256, near_threshold: float = 0.8) -> dict:
    """The report over prepared texts (quality_report and inspect_table end here)."""
    n = len(texts)
    findings = []

    def add(code: str, indices, message: Msg, **extra) -> None:
        indices = sorted(int(i) for i in indices)
        if indices:
            examples = indices[:EXAMPLES]
            findings.append({"code": code, "count": len(indices), "examples": examples,
                             "rows": [int(texts.rows[i]) if texts.rows[i] >= 0 else None for i in examples],
                             "message": message, **extra})

    scan = _scan(texts)
    texts._hashes = scan["prompt_hash"], scan["answer_hash"]
    empty = _blank(texts.answers) | (texts.blank_prompts() & ~texts.is_text)
    empty[texts.blank_turns] = True
    empty = np.flatnonzero(empty)
    add("empty", empty, Msg("quality.empty", count=len(empty), total=n))

    groups = _duplicate_groups(texts)
    repeats = [i for g in groups for i in g[1:]]
    add("duplicate", repeats, Msg("quality.duplicate", count=len(repeats), groups=len(groups)),
        groups=groups[:EXAMPLES])

    near, near_repeats = [], []
    exact_repeat = np.zeros(n, dtype=bool)
    exact_repeat[repeats] = True
    for group in _near_groups(texts, near_threshold, scan["signatures"]) if n > 1 else []:
        # rows a near-duplicate clean drops beyond those the exact clean drops
        extra = [i for i in group[1:] if not exact_repeat[i]]
        if extra:
            near.append(group)
            near_repeats += extra
    add("near_duplicate", near_repeats, Msg("quality.near_duplicate", count=len(near_repeats), groups=len(near),
                                            threshold=round(near_threshold * 100)), groups=near[:EXAMPLES])

    conflicts = _conflict_groups(texts)
    add("conflict", [i for g in conflicts for i in g],
        Msg("quality.conflict", count=sum(map(len, conflicts)), groups=len(conflicts)), groups=conflicts[:EXAMPLES])

    lengths = texts.lengths
    if lengths is not None:
        long_rows = [i for i, k in enumerate(lengths) if k is not None and k > max_length]
        if long_rows:
            text_rows = int(texts.is_text[long_rows].sum())
            add("too_long", long_rows, Msg("quality.too_long", count=len(long_rows), total=n, max_length=max_length,
                                           lost=len(texts.lost), cut=len(long_rows) - len(texts.lost) - text_rows,
                                           longest=max(k for k in lengths if k is not None)),
                answers_lost=len(texts.lost), lost_examples=sorted(texts.lost)[:EXAMPLES])
        refused = [i for i, k in enumerate(lengths) if k is None]
        add("template_refused", refused, Msg("quality.template_refused", count=len(refused)))
        sizes = lengths
    else:
        sizes = scan["characters"].tolist()

    bad, kinds = _invalid_rows(texts, scan["invalid"])
    add("invalid_chars", bad, Msg("quality.invalid_chars", count=len(bad), **kinds), kinds=kinds)

    placeholders, names = _placeholder_rows(texts, scan["placeholder"])
    add("placeholder", placeholders, Msg("quality.placeholder", count=len(placeholders),
                                         names=", ".join(name for name, _ in names.most_common(5))),
        placeholders=dict(names.most_common(20)))

    per_row = row_languages(texts, scan["scripts"])
    languages = dict(Counter(code for code in per_row if code).most_common())
    if len(languages) > 1:
        main = next(iter(languages))
        others = [i for i, code in enumerate(per_row) if code and code != main]
        add("language_mix", others, Msg("quality.language_mix", count=len(others), main=main,
                                        languages=", ".join(f"{k} {v}" for k, v in languages.items())))

    return {"rows": n, "findings": findings, "lengths": lengths,
            "unit": "tokens" if lengths is not None else "characters", "max_length": max_length,
            "histogram": histogram(sizes, max_length if lengths is not None else None), "languages": languages}


# ---- the checks ----------------------------------------------------------------------------------

def _groups_of(keys: np.ndarray, member: np.ndarray | None = None) -> list[list[int]]:
    """Indices sharing a key, groups of two or more, each sorted, ordered by their first index."""
    index = np.arange(len(keys)) if member is None else np.flatnonzero(member)
    keys = keys[index]
    order = np.argsort(keys, kind="stable")
    keys, index = keys[order], index[order]
    cut = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    groups = [index[a:b].tolist() for a, b in zip(cut[:-1], cut[1:]) if b - a > 1]
    return sorted(groups, key=lambda g: g[0])


def _pair_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return first * np.int64(1000003) ^ second  # wraps around: a hash of the pair


def _duplicate_groups(texts: Texts) -> list[list[int]]:
    if len(texts) < 2:
        return []
    prompt, answer = texts.hashes()
    return _groups_of(_pair_keys(prompt, answer))


def _conflict_groups(texts: Texts) -> list[list[int]]:
    if len(texts) < 2:
        return []
    prompt, answer = texts.hashes()
    has_prompt = ~texts.blank_prompts()  # plain texts have no prompt: nothing to conflict over
    if not has_prompt.any():
        return []
    prompts = prompt[has_prompt]
    _, first = np.unique(_pair_keys(prompts, answer[has_prompt]), return_index=True)  # distinct pairs
    values, answers_per_prompt = np.unique(prompts[first], return_counts=True)
    return _groups_of(prompt, has_prompt & np.isin(prompt, values[answers_per_prompt > 1]))


def _invalid_rows(texts: Texts, mask: np.ndarray) -> tuple[list[int], dict[str, int]]:
    hit = np.flatnonzero(mask).tolist()
    kinds: Counter = Counter()
    for i in hit:  # only the rows found: which kinds they hold
        text = texts.text(i)
        kinds["control"] += bool(re.search(CONTROL, text))
        kinds["replacement"] += REPLACEMENT in text
        kinds["mojibake"] += bool(re.search(MOJIBAKE, text))
    return hit, {k: kinds[k] for k in ("control", "replacement", "mojibake")}


def _placeholder_rows(texts: Texts, mask: np.ndarray) -> tuple[list[int], Counter]:
    names: Counter = Counter()
    rows = []
    for i in np.flatnonzero(mask).tolist():
        found = find_placeholders(texts.prompt(i)) + find_placeholders(texts.answers[i].as_py())
        if found:
            rows.append(i)
            names.update(dict.fromkeys(found, 1))
    return rows, names


SLICE = 4000  # rows per step of the scan (each thread holds one step's copies)


def _scan(texts: Texts, only_hashes: bool = False) -> dict:
    """One pass over the texts, SLICE rows at a time (the prompt parts joined for those rows
    only), the slices shared by a few threads (numpy and Arrow work without the GIL): hashes of
    the trimmed prompt and answer, MinHash signatures, letters per script, characters per row,
    and the rows an Arrow regular expression (RE2) flags for invalid characters and placeholders."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(texts)
    out = {"prompt_hash": np.zeros(n, dtype=np.int64), "answer_hash": np.zeros(n, dtype=np.int64)}
    if not only_hashes:
        out.update(signatures=np.full((n, BINS), EMPTY, dtype=np.uint8),
                   scripts=np.zeros((n, len(LANGUAGES)), dtype=np.int32), characters=np.zeros(n, dtype=np.int64),
                   invalid=np.zeros(n, dtype=bool), placeholder=np.zeros(n, dtype=bool))
    step = _sample_step(texts)
    starts = range(0, n, SLICE)
    threads = min(len(starts), os.cpu_count() or 1, 4)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda lo: _scan_slice(texts, out, lo, min(n, lo + SLICE), step, only_hashes), starts))
    else:
        for lo in starts:
            _scan_slice(texts, out, lo, min(n, lo + SLICE), step, only_hashes)
    _give_back_free_memory()
    if only_hashes:
        return out
    # Rows with no piece at all (shorter than 8 bytes, or unlucky sampling): the whole text.
    sigs = out["signatures"]
    for i in np.flatnonzero((sigs == EMPTY).all(axis=1)):
        whole = texts.text(i).encode("utf-8")
        sigs[i, zlib.crc32(whole) % BINS] = zlib.adler32(whole) & 0x7F
    return out


def _true_indices(mask) -> list[int]:
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()


def _give_back_free_memory() -> None:
    """Return freed heap memory to the system (glibc keeps it in each thread's arena after the
    threads' short-lived strings are gone); a no-op where there is no malloc_trim."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _scan_slice(texts: Texts, out: dict, lo: int, hi: int, step: int, only_hashes: bool) -> None:
    import pyarrow.compute as pc

    prompt = texts.prompt_slice(lo, hi)
    for is_answer, column in ((False, prompt), (True, texts.answers.slice(lo, hi - lo))):
        out["answer_hash" if is_answer else "prompt_hash"][lo:hi] = [
            hash(text.strip()) if text and not text.isspace() else 0 for text in column.to_pylist()]
        if only_hashes:
            continue
        out["characters"][lo:hi] += pc.utf8_length(column).to_numpy(zero_copy_only=False)
        for key, pattern in (("invalid", INVALID), ("placeholder", PLACEHOLDER)):
            out[key][lo:hi] |= pc.match_substring_regex(column, pattern).to_numpy(zero_copy_only=False)
        first = lo
        for chunk in getattr(column, "chunks", [column]):
            rows = slice(first, first + len(chunk))
            data, offsets = _bytes_of(chunk)
            _add_pieces(out["signatures"][rows], data, offsets, step)
            if is_answer:  # the answer tells the language; the prompt only when it has no letters
                out["scripts"][rows] = _sample_scripts(data, offsets[:-1], offsets[1:])
            first += len(chunk)
    if only_hashes:
        return
    silent = np.flatnonzero(out["scripts"][lo:hi].sum(axis=1) == 0)
    if len(silent):
        for chunk in getattr(prompt.take(silent), "chunks", [prompt.take(silent)]):
            data, offsets = _bytes_of(chunk)
            out["scripts"][lo + silent[:len(chunk)]] = _sample_scripts(data, offsets[:-1], offsets[1:])
            silent = silent[len(chunk):]


def row_languages(texts: Texts, scripts: np.ndarray | None = None) -> list[str]:
    """Each row's language by the script most of its letters are in (the first bytes of its
    answer, or of its prompt when the answer has no letters); "" for a row without letters."""
    counts = _scan(texts)["scripts"] if scripts is None else scripts
    # Japanese writes much in Han: any kana makes a row Japanese.
    ja = LANGUAGES.index("ja")
    best = np.where(counts[:, ja] > 0, ja, counts.argmax(axis=1))
    has_letters = counts.sum(axis=1) > 0
    return [LANGUAGES[i] if letters else "" for i, letters in zip(best.tolist(), has_letters.tolist())]


def _sample_scripts(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    width = len(LANGUAGES)
    n = len(starts)
    if len(data) == 0 or n == 0:
        return np.zeros((n, width), dtype=np.int64)
    position = starts[:, None] + np.arange(SAMPLE_BYTES + 1)[None, :]
    inside = position < ends[:, None]
    sample = np.where(inside, data[np.minimum(position, len(data) - 1)], 0)
    del position, inside
    lead, after = sample[:, :-1], sample[:, 1:]  # `after`: the byte after a lead byte
    script = _SCRIPT_OF_LEAD[lead]
    e3, ea = lead == 0xE3, lead == 0xEA
    if e3.any():
        script[e3 & (after >= 0x81) & (after <= 0x83)] = LANGUAGES.index("ja")
        script[e3 & (after >= 0x90)] = LANGUAGES.index("zh")  # CJK extension A
    if ea.any():
        script[ea & (after < 0xB0)] = -1  # U+A000-U+ABFF: not Hangul
    row = np.broadcast_to(np.arange(n)[:, None], script.shape)
    letter = script >= 0
    return np.bincount(row[letter] * width + script[letter], minlength=n * width).reshape(n, width)


def _script_table() -> np.ndarray:
    table = np.full(256, -1, dtype=np.int8)
    table[ord("A"):ord("Z") + 1] = table[ord("a"):ord("z") + 1] = LANGUAGES.index("en")
    table[0xC3:0xCA] = LANGUAGES.index("en")  # Latin-1 supplement and Latin Extended letters
    table[0xD0:0xD4] = LANGUAGES.index("ru")  # Cyrillic
    table[0xD8:0xDC] = LANGUAGES.index("ar")  # Arabic
    other = LANGUAGES.index("other")  # Greek, Armenian, Hebrew, Syriac..., Indic and Thai
    table[0xCA:0xD0] = table[0xD4:0xD8] = table[0xDC:0xE0] = table[0xE0:0xE2] = other
    table[0xE4:0xEA] = LANGUAGES.index("zh")  # CJK unified ideographs U+4000-U+9FFF
    table[0xEA:0xEE] = LANGUAGES.index("ko")  # Hangul syllables U+AC00-U+D7AF (EA below B0: not Hangul)
    return table


_SCRIPT_OF_LEAD = _script_table()


def _bytes_of(array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets) of one Arrow string array, the bytes not copied (nulls read
    as empty)."""
    import pyarrow as pa

    if array.null_count:
        array = array.fill_null("")
    wide = pa.types.is_large_string(array.type)
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64 if wide else np.int32)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


# ---- near duplicates: MinHash over 8-byte pieces, LSH bands ------------------------------------------

PIECE = 8  # bytes per piece ("shingle"): about one and a half English words, two or three CJK characters
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multipliers: multiply, xor-shift, multiply
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


def _near_groups(texts: Texts, threshold: float, sigs: np.ndarray | None = None) -> list[list[int]]:
    """Connected groups of rows whose estimated Jaccard similarity is >= threshold."""
    n = len(texts)
    if n < 2:
        return []
    sigs = _scan(texts)["signatures"] if sigs is None else sigs
    pairs = _similar_pairs(sigs, threshold)
    if len(pairs) == 0:
        return []
    # Connected components by label propagation with pointer jumping (vectorised union-find).
    label = np.arange(n)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]
        if np.array_equal(label, before):
            break
    linked = np.zeros(n, dtype=bool)
    linked[a] = linked[b] = True
    return _groups_of(label, linked)


def _sample_step(texts: Texts) -> int:
    """1 in how many pieces the signatures use: 64 or more per row estimate the similarity about
    as well as all of them (about one piece per 4 bytes; prompt lengths as joined)."""
    import pyarrow.compute as pc

    n = len(texts)
    if n == 0:
        return 1
    lengths = pc.binary_length(texts.answers).to_numpy(zero_copy_only=False).astype(np.int64)
    nonblank = np.zeros(n, dtype=np.int64)
    for part in texts.parts:
        blank = _blank(part)
        lengths += np.where(blank, 0, pc.binary_length(part).to_numpy(zero_copy_only=False))
        nonblank += ~blank
    lengths += 2 * np.maximum(nonblank - 1, 0)
    pieces = float(np.median(lengths)) / 4
    step = 1
    while pieces / (step * 2) >= 64 and step < 16:
        step *= 2
    return step


def _add_pieces(sigs: np.ndarray, data: np.ndarray, offsets: np.ndarray, step: int) -> None:
    """Fold the 8-byte pieces of some texts (UTF-8 bytes and offsets, as `_bytes_of` gives them)
    into their rows' signatures: pieces start at a non-ASCII character, after a space or a line
    end, or at a row's start (about one per word, one per CJK character: like word shingles), each is
    hashed once, the hash's top bits choose a bin, each bin keeps its smallest value
    (one-permutation hashing); with step > 1 only the pieces whose hash says so (the same in
    every row)."""
    n = len(offsets) - 1
    if n == 0:
        return
    shift_bin, shift_value = np.uint64(64 - BIN_BITS), np.uint64(40)
    row_lo = 0
    while row_lo < n:  # blocks of about 256 KB of text, so the temporary arrays stay small
        row_hi = int(np.searchsorted(offsets, offsets[row_lo] + (1 << 18), side="right")) - 1
        row_hi = max(row_lo + 1, min(n, row_hi))
        lo, hi = int(offsets[row_lo]), int(offsets[row_hi])
        if hi - lo >= PIECE:
            segment = data[lo:hi]
            starts, ends = offsets[row_lo:row_hi] - lo, offsets[row_lo + 1:row_hi + 1] - lo
            # where pieces start: a non-ASCII character's lead byte, after a space, a row's start
            anchor = segment >= 0xC0
            anchor[1:] |= segment[:-1] <= 0x20
            anchor[starts[starts < hi - lo]] = True
            for k in range(1, PIECE):  # pieces must end inside their row
                tail = ends - k
                anchor[tail[tail >= starts]] = False
            where = np.flatnonzero(anchor)
            padded = np.concatenate([segment, np.zeros(PIECE, np.uint8)])
            h = np.ndarray((hi - lo,), dtype="<u8", buffer=padded.data, strides=(1,))[where]
            h *= _MIX
            h ^= h >> np.uint64(32)  # then every bit of the hash depends on all 8 bytes
            h *= _MIX2
            if step > 1:
                sampled = ((h >> np.uint64(36)) & np.uint64(step - 1)) == 0
                h, where = h[sampled], where[sampled]
            per_row = np.diff(np.searchsorted(where, np.r_[starts, hi - lo]))  # pieces of each row
            rows = np.repeat(np.arange(row_hi - row_lo), per_row)
            np.minimum.at(sigs[row_lo:row_hi].reshape(-1), rows * BINS + (h >> shift_bin).astype(np.int64),
                          (h >> shift_value).astype(np.uint8))
        row_lo = row_hi


EMPTY = 0xFF  # an empty bin (a real value of 0xFF reads as empty too: rare, and harmless)


def lsh_bands(threshold: float, bins: int = BINS) -> tuple[int, int]:
    """(bands, rows per band) with the least weighted chance of a missed or a false pair
    around `threshold` (the rule datasketch's MinHashLSH uses)."""
    xs = np.linspace(0, 1, 201)
    best, best_cost = (1, bins), float("inf")
    for bands in range(1, bins + 1):
        for rows in range(1, bins // bands + 1):
            p = 1 - (1 - xs ** rows) ** bands
            false_pos = np.trapezoid(np.where(xs < threshold, p, 0), xs)
            false_neg = np.trapezoid(np.where(xs >= threshold, 1 - p, 0), xs)
            cost = 0.5 * false_pos + 0.5 * false_neg
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of signature rows: equal bins among the bins not empty in
    both (the one-permutation-hashing estimator)."""
    both_empty = (a == EMPTY) & (b == EMPTY)
    used = BINS - both_empty.sum(axis=-1)
    equal = ((a == b) & ~both_empty).sum(axis=-1)
    return np.where(used > 0, equal / np.maximum(used, 1), 1.0)


def _similar_pairs(sigs: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs (i, j) of rows sharing an LSH band whose signatures are >= threshold similar.
    Within a bucket each row is paired with the bucket's first row (linear, not quadratic)."""
    n = len(sigs)
    bands, rows = _bands(threshold)
    candidates = []
    for band in range(bands):
        key = np.zeros(n, dtype=np.uint64)
        for column in sigs[:, band * rows:(band + 1) * rows].T:
            key = (key * np.uint64(1000003)) ^ column.astype(np.uint64)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        first = order[np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
        member = ~starts
        if member.any():
            candidates.append(first[member].astype(np.int64) * n + order[member])
    if not candidates:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(candidates))
    pairs = np.stack([codes // n, codes % n], axis=1)
    keep = [block[similarity(sigs[block[:, 0]], sigs[block[:, 1]]) >= threshold]
            for block in (pairs[lo:lo + 20000] for lo in range(0, len(pairs), 20000))]
    return np.concatenate(keep)


_band_cache: dict[float, tuple[int, int]] = {}


def _bands(threshold: float) -> tuple[int, int]:
    key = round(float(threshold), 3)
    if key not in _band_cache:
        _band_cache[key] = lsh_bands(key)
    return _band_cache[key]


# ---- lengths -----------------------------------------------------------------------------------

def token_counts(records: list[dict], tokenizer, batch: int = 256) -> list[int | None]:
    """Tokens per record as training sees them: the chat template over prompt + answer (the
    chosen answer for preference records; tools included), or text + EOS. None where the
    template refuses a record."""
    from studio.formats import for_template, strip_meta, tool_support

    support = None
    out: list[int | None] = [None] * len(records)
    texts = [i for i, r in enumerate(records) if _is_text(r)]
    if texts:
        eos = tokenizer.eos_token or ""
        for lo in range(0, len(texts), batch):
            part = texts[lo:lo + batch]
            body = [str(records[i].get("text") or "") for i in part]
            ids = tokenizer(text=[t if t.endswith(eos) else t + eos for t in body])["input_ids"]
            for i, x in zip(part, ids):
                out[i] = len(x)
    plain, tooled = [], []
    for i, r in enumerate(records):
        if not _is_text(r):
            (tooled if r.get("tools") else plain).append(i)
    if tooled:
        support = tool_support(tokenizer)
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True

    def conversation(record: dict) -> tuple[list[dict], list | None]:
        record = strip_meta(record)
        if support is not None:
            record = for_template(record, support)
        answer = record.get("completion") or record.get("chosen") or []
        return list(record.get("prompt") or []) + list(answer), record.get("tools")

    for lo in range(0, len(plain), batch):
        part = plain[lo:lo + batch]
        try:
            ids = tokenizer.apply_chat_template([conversation(records[i])[0] for i in part], tokenize=True,
                                                return_dict=True)["input_ids"]
            for i, x in zip(part, ids):
                out[i] = len(x)
        except Exception:  # one refused conversation: count the others one by one
            tooled += part
    for i in tooled:
        messages, tools = conversation(records[i])
        try:
            ids = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=True,
                                                return_dict=True)["input_ids"]
            out[i] = len(ids)
        except Exception:  # e.g. a template that needs alternating roles
            out[i] = None
    return out


def _answers_lost(records: list[dict], rows: list[int], tokenizer, max_length: int, batch: int = 256) -> list[int]:
    """Of the too-long conversations, those whose prompt alone fills max_length: cut there, they
    would keep no answer at all (the rest would lose the end of it)."""
    from studio.formats import strip_meta

    conversations = [i for i in rows if not _is_text(records[i])]
    lost = []

    def prompt_tokens(items: list[int], tools=None) -> list[int]:
        prompts = [strip_meta(records[i]).get("prompt") or [] for i in items]
        ids = tokenizer.apply_chat_template(prompts, tools=tools, add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
        return [len(x) for x in ids]

    plain = [i for i in conversations if not records[i].get("tools")]
    single = [i for i in conversations if records[i].get("tools")]
    for lo in range(0, len(plain), batch):
        part = plain[lo:lo + batch]
        try:
            lost += [i for i, n in zip(part, prompt_tokens(part)) if n >= max_length]
        except Exception:  # one refused prompt: the others one by one
            single += part
    for i in single:
        try:
            if prompt_tokens([i], records[i].get("tools") or None)[0] >= max_length:
                lost.append(i)
        except Exception:  # a prompt the template refuses: not counted either way
            continue
    return sorted(lost)


def histogram(lengths: list[int | None], max_length: int | None = None, bins: int = 20) -> list[dict]:
    """Counts per length range [start, end) (end exclusive). With max_length, the ranges are cut
    right after it (rows of exactly max_length fit) and those above it are marked `over`."""
    values = np.array([n for n in lengths if n is not None], dtype=np.int64)
    if len(values) == 0:
        return []
    top = int(values.max()) + 1
    if max_length:
        fit = max_length + 1  # the first length that does not fit
        width = max(1, -(-fit // (bins // 2)))
        edges = list(range(0, fit, width)) + [fit]
        while edges[-1] < top and len(edges) <= bins * 2:
            edges.append(edges[-1] + width)
        if edges[-1] < top:
            edges.append(top)
    else:
        fit = None
        width = max(1, -(-top // bins))
        edges = list(range(0, top, width)) + [top]
    counts = np.histogram(values, bins=edges)[0]
    return [{"start": int(a), "end": int(b), "count": int(c), "over": bool(fit and a >= fit)}
            for a, b, c in zip(edges[:-1], edges[1:], counts)]
