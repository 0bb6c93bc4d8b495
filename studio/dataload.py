"""Read a dataset file safely: sniff it, cap its size, parse it, and check every row.

    rows = read_rows(Path("train.jsonl"), max_rows=0)   # list of dicts, or UserError (key 'data.path')
    limits()                                             # {'file': bytes, 'field': bytes}

What it refuses, each with one sentence that names the file and, where it helps, the line or row:
a binary or compressed file under a text name (zip/gzip/bzip2/xz/zstd/7z magic, NUL bytes; it is
never unpacked), text that is not UTF-8, a torn or invalid JSON line, an empty file or a CSV with
only a header, a file or a single field over the size caps, and rows whose field kinds change
(an object or a list where earlier rows hold text, or the reverse).

Text files are parsed here, line by line, instead of by `datasets.load_dataset`: `datasets`
unpacks any zip/gzip it is given, whatever the file's name, and silently turns mixed-kind
fields into text. JSONL, CSV, TSV and TXT are streamed (the file is never held whole in
memory); a JSON array is parsed in one piece after its size was checked against the cap.
Parquet is read with pyarrow in batches after its *uncompressed* size was checked.

Caps: 200 MB per file and 1 MB per field by default; `$STUDIO_DATA_MAX_FILE_MB` and
`$STUDIO_DATA_MAX_FIELD_MB` change them.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from pathlib import Path

from studio.errors import UserError
from studio.i18n import Msg

KEY = "data.path"  # the setting every sentence here is about
FILE_TYPES = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "text",
              ".parquet": "parquet"}
DEFAULT_MAX_FILE_MB = 200
DEFAULT_MAX_FIELD_MB = 1
SNIFF_BYTES = 8192
KIND_NAMES = {"text": "data.kind_text", "object": "data.kind_object", "list": "data.kind_list"}

# Leading bytes of formats that must never be parsed (or unpacked) as text.
MAGIC = (
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"), (b"PAR1", "Parquet"),
    (b"SQLite format 3\x00", "SQLite"),
) + tuple((b"BZh" + bytes([d]) + b"1AY&SY", "bzip2") for d in b"123456789")


def limits() -> dict[str, int]:
    """The size caps in bytes: {'file': ..., 'field': ...}."""
    def megabytes(name: str, default: float) -> int:
        try:
            return int(float(os.environ.get(name) or default) * 1_000_000)
        except ValueError:
            return int(default * 1_000_000)
    return {"file": megabytes("STUDIO_DATA_MAX_FILE_MB", DEFAULT_MAX_FILE_MB),
            "field": megabytes("STUDIO_DATA_MAX_FIELD_MB", DEFAULT_MAX_FIELD_MB)}


def human_size(n: int) -> str:
    """Bytes as people say them: '200 MB', '1.5 MB', '800 KB', '12 bytes'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} bytes"


def read_rows(path: Path, max_rows: int = 0) -> list[dict]:
    """The rows of a local file as dicts (at most max_rows when it is set), every row checked."""
    name = path.name
    if path.is_dir():
        raise UserError("data.is_folder", key=KEY, name=name)
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise UserError("data.file_type", key=KEY, name=name)
    caps = limits()
    size = path.stat().st_size
    if size > caps["file"]:
        raise UserError("data.file_too_large", key=KEY, name=name, size=human_size(size),
                        limit=human_size(caps["file"]))
    if size == 0:
        raise UserError("data.empty", key=KEY, name=name)
    _sniff(path, kind)
    checker = RowChecker(name, caps["field"])
    if kind == "parquet":
        rows = _parquet_rows(path, checker, max_rows, caps["file"])
    elif kind == "json":
        rows = _json_rows(path, checker, max_rows)
    elif kind == "jsonl":
        rows = _jsonl_rows(path, checker, max_rows)
    elif kind in ("csv", "tsv"):
        rows = _csv_rows(path, checker, max_rows, "\t" if kind == "tsv" else ",")
    else:
        rows = _text_rows(path, checker, max_rows)
    if not rows:
        raise UserError("data.no_rows", key=KEY, name=name)
    return rows


def check_rows(rows: list[dict], name: str) -> list[dict]:
    """Apply the per-row checks to rows that came from elsewhere (a Hub dataset)."""
    checker = RowChecker(name, limits()["field"])
    for number, row in enumerate(rows, 1):
        checker.add(row, Msg("data.where_row", row=number))
    return rows


def _sniff(path: Path, kind: str) -> None:
    """Refuse archives, compressed and binary files before any parser (or unpacker) sees them."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    found = next((label for magic, label in MAGIC if head.startswith(magic)), None)
    if kind == "parquet":
        if found != "Parquet":
            raise UserError("data.not_parquet", key=KEY, name=path.name)
        return
    if found == "Parquet":
        raise UserError("data.parquet_named_text", key=KEY, name=path.name)
    if found:
        raise UserError("data.packed", key=KEY, name=path.name, kind=found)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UserError("data.utf16", key=KEY, name=path.name)
    if b"\x00" in head:
        raise UserError("data.binary", key=KEY, name=path.name, line=_line_of(head, head.index(b"\x00")))


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


class RowChecker:
    """Checks rows one by one: each is an object, no field over the cap, no field changes kind.

    Kinds are text (strings, numbers, true/false), object and list; an empty value (null) fits
    any kind. List items and the fields of objects inside lists (a conversation's turns) are
    checked too, so a turn whose content is a list where other turns hold text is named.
    """

    def __init__(self, name: str, max_field: int):
        self.name = name
        self.max_field = max_field
        self.kinds: dict[str, tuple[str, Msg]] = {}

    def add(self, row, where: Msg) -> dict:
        if not isinstance(row, dict):
            raise UserError("data.row_not_object", key=KEY, name=self.name, where=where)
        for field, value in row.items():
            self._check_size(field, value, where)
            self._observe(field, value, where)
            if isinstance(value, list):
                for item in value:
                    self._observe(f"{field}[]", item, where)
                    if isinstance(item, dict):
                        for sub, inner in item.items():
                            self._observe(f"{field}[].{sub}", inner, where)
        return row

    def _observe(self, field: str, value, where: Msg) -> None:
        kind = _kind(value)
        if kind is None:
            return
        expected, first = self.kinds.setdefault(field, (kind, where))
        if kind != expected:
            raise UserError("data.field_kind_changed", key=KEY, name=self.name, where=where, field=field,
                            kind=Msg(KIND_NAMES[kind]), expected=Msg(KIND_NAMES[expected]), first=first)

    def _check_size(self, field: str, value, where: Msg) -> None:
        size = _largest_text(value)
        # Characters first (cheap); bytes only when the text could be over the cap.
        if size * 4 > self.max_field:
            size = max(len(text.encode("utf-8")) for text in _texts(value))
            if size > self.max_field:
                raise UserError("data.field_too_large", key=KEY, name=self.name, where=where, field=field,
                                size=human_size(size), limit=human_size(self.max_field))


def _kind(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return "text"


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _texts(inner)


def _largest_text(value) -> int:
    return max((len(text) for text in _texts(value)), default=0)


def _lines(path: Path, name: str):
    """(line number, text) for each line, refusing NUL bytes and invalid UTF-8 with the line named."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if b"\x00" in raw:
                raise UserError("data.binary", key=KEY, name=name, line=number)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError("data.not_utf8", key=KEY, name=name, line=number, column=exc.start + 1,
                                byte=f"0x{raw[exc.start]:02X}") from None


def _jsonl_rows(path: Path, checker: RowChecker, max_rows: int) -> list[dict]:
    rows = []
    decoder = json.JSONDecoder()
    for number, text in _lines(path, checker.name):
        if not text.strip():
            continue
        try:
            row = decoder.decode(text)
        except json.JSONDecodeError as exc:
            if number == 1 and path.suffix.lower() == ".json":
                _refuse_single_object(path, checker.name)
            if not _more_lines_after(path, number):
                raise UserError("data.torn_last_line", key=KEY, name=checker.name, line=number) from None
            raise UserError("data.bad_json_line", key=KEY, name=checker.name, line=number, column=exc.colno,
                            detail=exc.msg) from None
        rows.append(checker.add(row, Msg("data.where_line", line=number)))
        if max_rows and len(rows) >= max_rows:
            break
    return rows


def _more_lines_after(path: Path, line: int) -> bool:
    """Whether a non-empty line follows `line` (a bad last line is most likely a torn write)."""
    with open(path, "rb") as fh:
        return any(raw.strip() for number, raw in enumerate(fh, 1) if number > line)


def _refuse_single_object(path: Path, name: str) -> None:
    """A .json file that starts with '{' but is not JSON lines: one object is not a dataset."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return  # not one object either: the caller reports the bad first line
    if isinstance(value, dict):
        raise UserError("data.json_top_level", key=KEY, name=name)


def _json_rows(path: Path, checker: RowChecker, max_rows: int) -> list[dict]:
    """A JSON array of objects; a file that starts with '{' is read as JSON lines (as datasets did)."""
    with open(path, "rb") as fh:
        start = fh.read(SNIFF_BYTES).lstrip(codecs.BOM_UTF8).lstrip()
    if not start:
        raise UserError("data.empty", key=KEY, name=checker.name)
    if start.startswith(b"{"):
        return _jsonl_rows(path, checker, max_rows)
    data = path.read_bytes()
    if b"\x00" in data:
        raise UserError("data.binary", key=KEY, name=checker.name, line=_line_of(data, data.index(b"\x00")))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise UserError("data.not_utf8", key=KEY, name=checker.name, line=_line_of(data, exc.start),
                        column=exc.start - line_start + 1, byte=f"0x{data[exc.start]:02X}") from None
    del data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError("data.bad_json", key=KEY, name=checker.name, line=exc.lineno, column=exc.colno,
                        detail=exc.msg) from None
    if not isinstance(value, list):
        raise UserError("data.json_top_level", key=KEY, name=checker.name)
    if max_rows:
        value = value[:max_rows]
    return [checker.add(row, Msg("data.where_row", row=number)) for number, row in enumerate(value, 1)]


def _csv_rows(path: Path, checker: RowChecker, max_rows: int, delimiter: str) -> list[dict]:
    # The field cap replaces csv's own (process-wide) 128 KB limit, so csv stops at an oversized
    # cell instead of building it in memory. No other part of the studio reads CSV with this module.
    csv.field_size_limit(checker.max_field + 1)
    reader = csv.reader((text for _, text in _lines(path, checker.name)), delimiter=delimiter)
    rows: list[dict] = []
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise UserError("data.empty", key=KEY, name=checker.name)
        header = [cell.strip() for cell in header]
        duplicate = next((cell for cell in header if header.count(cell) > 1), None)
        if duplicate is not None:
            raise UserError("data.csv_duplicate_column", key=KEY, name=checker.name, column=duplicate)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                raise UserError("data.csv_too_many_cells", key=KEY, name=checker.name, line=reader.line_num,
                                found=len(cells), expected=len(header))
            row = dict(zip(header, cells))
            row.update({column: None for column in header[len(cells):]})
            rows.append(checker.add(row, Msg("data.where_line", line=reader.line_num)))
            if max_rows and len(rows) >= max_rows:
                break
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise UserError("data.cell_too_large", key=KEY, name=checker.name,
                            where=Msg("data.where_line", line=reader.line_num),
                            limit=human_size(checker.max_field)) from None
        raise UserError("data.csv_invalid", key=KEY, name=checker.name, line=reader.line_num,
                        detail=str(exc)) from None
    if not rows:
        raise UserError("data.header_only", key=KEY, name=checker.name)
    return rows


def _text_rows(path: Path, checker: RowChecker, max_rows: int) -> list[dict]:
    """Plain text: one row {'text': line} per non-empty line (as datasets' text loader does)."""
    rows = []
    for number, text in _lines(path, checker.name):
        text = text.rstrip("\r\n")
        if text.strip():
            rows.append(checker.add({"text": text}, Msg("data.where_line", line=number)))
            if max_rows and len(rows) >= max_rows:
                break
    return rows


def _parquet_rows(path: Path, checker: RowChecker, max_rows: int, max_file: int) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise UserError("data.unreadable", key=KEY, name=checker.name, detail=first_line(exc)) from None
    # A small compressed file can unpack to gigabytes: the cap applies to the data, not the file.
    unpacked = sum(parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
    if unpacked > max_file:
        raise UserError("data.parquet_too_large", key=KEY, name=checker.name, size=human_size(unpacked),
                        limit=human_size(max_file))
    rows: list[dict] = []
    try:
        for batch in parquet.iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                rows.append(checker.add(row, Msg("data.where_row", row=len(rows) + 1)))
                if max_rows and len(rows) >= max_rows:
                    return rows
    except UserError:
        raise
    except Exception as exc:
        raise UserError("data.unreadable", key=KEY, name=checker.name, detail=first_line(exc)) from None
    return rows


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (at most 200 characters), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
