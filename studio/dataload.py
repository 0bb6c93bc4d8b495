"""Read a dataset file safely: sniff it, cap its size, parse it, and check every row.

    table = load_table("train.jsonl")                    # pyarrow.Table: file, bundled name or Hub id
    table = load_table("owner/set", config="en", split="test")
    rows = table_rows(table, 0, 100)                     # the first 100 rows as dicts
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

`load_table` is the fast way in for large files: after the same sniffing and caps, Arrow's own
readers parse JSON lines, CSV/TSV, text and Parquet straight into columns (no Python object per
cell), and the field cap is checked on the columns. Whenever Arrow refuses a file, or a check on
the columns fails, the careful reader above reads it instead, so every problem gets the same one
sentence with its line; a file Arrow refuses but that reader accepts (numbers in one row, text in
the next) becomes a table through it. A JSON array is parsed by Python in any case. JSON lines are
parsed 4 MB at a time and the pieces merged, so a 200 MB file peaks at little more than its
table; for the same reason `load_table` makes jemalloc (else the system allocator) Arrow's
default for the process unless $ARROW_DEFAULT_MEMORY_POOL chose one (mimalloc keeps freed pages).
A Hub id is loaded by `datasets` (memory-mapped from its cache) and its table capped and checked
the same way. `table_rows` turns rows back into dicts without the None-valued keys Arrow adds to
objects nested in lists (tool-call arguments stay as written).

Caps: 200 MB per file and 1 MB per field by default; `$STUDIO_DATA_MAX_FILE_MB` and
`$STUDIO_DATA_MAX_FIELD_MB` change them.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
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


def _checked_file(path: Path) -> tuple[str, str, dict[str, int]]:
    """(name, kind, caps) of a file that may be read: a data file type, within the size cap, not
    empty, and not binary or compressed content (sniffed); else the one sentence that says why."""
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
    return name, kind, caps


def read_rows(path: Path, max_rows: int = 0) -> list[dict]:
    """The rows of a local file as dicts (at most max_rows when it is set), every row checked."""
    name, kind, caps = _checked_file(path)
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
    from studio.hub import redact  # a Hub error may quote a URL or header with the token in it

    text = redact(str(exc)).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ---- Arrow tables: the fast path for large files -----------------------------------------------

ARROW_BLOCK = 1 << 20  # bytes per JSON parse block (a longer row: see _json_piece)
JSON_PIECE = 4 << 20  # bytes of JSON lines parsed at a time (a line longer than that: the careful reader)


def load_table(source: str, config: str | None = None, split: str | None = None, max_rows: int = 0):
    """A dataset as a pyarrow.Table: a local file, a bundled name ('demo-en'), a 'library:<id>',
    or a Hub dataset id (with its config and split, 'train' by default). Same checks and
    sentences as `read_rows`; at most max_rows rows when it is set."""
    from studio.paths import resolve_data_path  # here: studio.paths must not depend on this module

    _lean_arrow_memory()
    path = Path(resolve_data_path(source))
    if path.exists():
        table = read_table(path)
    else:
        looks_like_hub_id = ("/" in source and not source.startswith((".", "/", "~"))
                             and Path(source).suffix.lower() not in FILE_TYPES)
        if not looks_like_hub_id:
            raise UserError("data.not_found", key=KEY, source=source)
        table = hub_table(source, config, split, max_rows)
    return table.slice(0, max_rows) if max_rows else table


def read_table(path: Path):
    """A local file as a pyarrow.Table, with read_rows' checks and sentences."""
    name, kind, caps = _checked_file(path)
    if kind == "parquet":
        table = _parquet_table(path, caps["file"])
        _check_table(table, name, caps["field"])
    else:
        table = _text_table(path, kind)
        if table is None or _field_over_cap(table, caps["field"]) is not None:
            # Arrow refused the file, or a field is too large: the careful reader names the line
            # (or, for a file only Arrow minds, reads it).
            table = _table_from_rows(read_rows(path))
            _check_table(table, name, caps["field"])
    if table.num_rows == 0:
        raise UserError("data.no_rows", key=KEY, name=name)
    return table


def hub_table(source: str, config: str | None = None, split: str | None = None, max_rows: int = 0):
    """A Hub dataset (or a local dataset folder given by id) as an Arrow table, capped and checked."""
    import datasets  # its cache follows the studio home (studio.paths.use_home_caches)

    from studio import hub

    split = split or "train"
    if not Path(source).exists():  # datasets would wait minutes on an unreachable Hub: say so in seconds
        hub.require_hub(source, KEY, kind="dataset")
    try:
        ds = datasets.load_dataset(source, config or None, split=f"{split}[:{max_rows}]" if max_rows else split,
                                   **hub.token_kwargs())
    except Exception as exc:  # datasets raises many types for unreachable or unreadable sets
        if hub.is_offline() and not Path(source).exists():
            raise UserError("hub.dataset_offline", key=KEY, source=source) from None
        raise UserError("data.hub_unreadable", key=KEY, source=source, detail=first_line(exc)) from None
    if ds._indices is not None:  # a selection: make the rows it names the table
        ds = ds.flatten_indices()
    table = ds.data.table  # memory-mapped from the datasets cache: not a copy
    cap = limits()["file"]
    if table.nbytes > cap:  # checked on the Arrow table, before anything becomes Python objects
        raise UserError("data.file_too_large", key=KEY, name=source, size=human_size(table.nbytes),
                        limit=human_size(cap))
    _check_table(table, source, limits()["field"])
    if table.num_rows == 0:
        raise UserError("data.no_rows", key=KEY, name=source)
    return table


def table_rows(table, start: int = 0, stop: int | None = None) -> list[dict]:
    """Rows start..stop of a table as dicts. Arrow gives every object in a column the union of
    the keys seen in any row; the keys a row did not have (None) are dropped again inside
    nested values (tool-call arguments stay as written), top-level columns are kept."""
    stop = table.num_rows if stop is None else min(stop, table.num_rows)
    rows = table.slice(start, max(0, stop - start)).to_pylist()
    nested = [f.name for f in table.schema if _has_struct(f.type)]
    if nested:
        for row in rows:
            for name in nested:
                row[name] = _drop_nulls(row[name])
    return rows


def _has_struct(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_struct(kind.value_type)
    return False


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _text_table(path: Path, kind: str):
    """JSON lines, CSV/TSV or text through Arrow's readers; None when Arrow refuses the file (or
    the file has a flaw the careful reader words better: not UTF-8, NUL bytes, a JSON array)."""
    import pyarrow as pa

    if kind not in ("json", "jsonl") and not _no_nul_bytes(path):
        return None
    try:
        if kind in ("json", "jsonl"):
            table = _json_table(path)
        elif kind in ("csv", "tsv"):
            table = _csv_table(path, "\t" if kind == "tsv" else ",")
        else:
            table = _lines_table(path)
        if table is not None:
            table.validate(full=True)  # Arrow's JSON reader lets invalid UTF-8 through; this does not
        return table
    except (pa.ArrowException, ValueError, UnicodeDecodeError, OSError):
        return None


def _no_nul_bytes(path: Path) -> bool:
    """Whether the file holds no NUL byte, read in pieces (UTF-8 is checked on the table)."""
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            if b"\x00" in chunk:
                return False
    return True


def _json_table(path: Path):
    """JSON lines through Arrow, JSON_PIECE bytes at a time (cut at a line end), so the file is
    never in memory whole next to its table; pieces whose inferred types differ (a column empty
    in one, text in the next; objects with other keys) are merged as Arrow allows."""
    import pyarrow as pa

    with open(path, "rb") as fh:
        start = fh.read(SNIFF_BYTES).lstrip(codecs.BOM_UTF8).lstrip()
    if not start.startswith(b"{"):
        return None  # a JSON array (or not JSON at all): the careful reader
    tables, position = [], 0
    with open(path, "rb") as fh:
        while chunk := fh.read(JSON_PIECE):
            if b"\x00" in chunk:
                return None
            cut = chunk.rfind(b"\n") + 1 if len(chunk) == JSON_PIECE else len(chunk)
            if cut == 0:
                return None  # one line longer than a piece: the careful reader
            skip = len(codecs.BOM_UTF8) if position == 0 and chunk.startswith(codecs.BOM_UTF8) else 0
            piece = memoryview(chunk)[skip:cut]  # no copy
            if piece.nbytes:
                table = _json_piece(pa.py_buffer(piece))
                lines = chunk.count(b"\n", skip, cut) + (chunk[cut - 1] != 0x0A)
                if table.num_rows != lines and table.num_rows != len(_LINE_START.findall(piece)):
                    return None  # an object over several lines is not JSON lines: the careful reader says so
                tables.append(table)
            position += cut
            fh.seek(position)
            del piece, chunk
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, TypeError):
        return None  # a field that changes kind between pieces: the careful reader names the row


_LINE_START = re.compile(rb"(?m)^[ \t\r\f\v]*[^ \t\r\f\v\n]")  # a line that is not blank


def _lean_arrow_memory() -> None:
    """Make jemalloc (else the system allocator) Arrow's default for this process, unless
    ARROW_DEFAULT_MEMORY_POOL chose one: mimalloc, Arrow's usual default, keeps the pages of
    freed buffers, so inspecting a large file peaked 20 MB per 60 MB of data higher."""
    import pyarrow as pa

    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and pa.default_memory_pool().backend_name == "mimalloc":
        pa.set_memory_pool(_pool())


def _pool():
    """Arrow's jemalloc (else the system's) allocator: mimalloc, the default, keeps the parse
    buffers of every piece, which doubles the peak memory of a large file."""
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowException):
        return pa.system_memory_pool()


def _json_piece(data):
    import pyarrow as pa
    import pyarrow.json as paj

    read = paj.ReadOptions(block_size=ARROW_BLOCK)  # blocks are parsed in parallel
    try:
        table = paj.read_json(pa.BufferReader(data), read_options=read, memory_pool=_pool())
    except pa.ArrowInvalid:  # e.g. a row longer than a block: once more as one block
        read = paj.ReadOptions(block_size=data.size + 1)
        table = paj.read_json(pa.BufferReader(data), read_options=read, memory_pool=_pool())
    strings = _no_dates(table.schema)
    if strings != table.schema:  # Arrow turns ISO-8601-looking text into timestamps; keep the text
        table = paj.read_json(pa.BufferReader(data), read_options=read, memory_pool=_pool(),
                              parse_options=paj.ParseOptions(explicit_schema=strings))
    return table


def _no_dates(schema):
    """The schema with every inferred timestamp/date column (at any depth) read as text."""
    import pyarrow as pa

    def fix(kind):
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
            return pa.string()
        if pa.types.is_list(kind):
            return pa.list_(pa.field(kind.value_field.name, fix(kind.value_type)))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, fix(f.type)) for f in kind])
        return kind

    return pa.schema([pa.field(f.name, fix(f.type)) for f in schema])


def _csv_table(path: Path, delimiter: str):
    """Every cell as text, as the careful reader keeps it; rows of only blank cells are skipped."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    header = [cell.strip() for cell in header or []]
    if not any(header) or len(set(header)) != len(header):
        return None  # empty or duplicated header: the careful reader says which
    table = pcsv.read_csv(
        path, read_options=pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=4 << 20),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
        memory_pool=_pool())
    if table.num_rows == 0:
        return None  # header only
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.utf8_trim_whitespace(column), "")
        blank = empty if blank is None else pc.and_(blank, empty)
    return table.filter(pc.invert(blank))


def _lines_table(path: Path):
    """Plain text: one row {'text': line} per non-blank line, split by Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = pa.py_buffer(path.read_bytes().removeprefix(codecs.BOM_UTF8))
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data]).cast(pa.large_string())
    lines = pc.list_flatten(pc.split_pattern(whole, "\n"))
    del whole, data
    lines = pc.utf8_rtrim(lines, "\r\n")
    lines = lines.filter(pc.not_equal(pc.utf8_trim_whitespace(lines), ""))
    return pa.table({"text": lines.cast(pa.string())})


def _parquet_table(path: Path, max_file: int):
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        unpacked = sum(parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise UserError("data.unreadable", key=KEY, name=path.name, detail=first_line(exc)) from None
    # A small compressed file can unpack to gigabytes: the cap applies to the data, not the file.
    if unpacked > max_file:
        raise UserError("data.parquet_too_large", key=KEY, name=path.name, size=human_size(unpacked),
                        limit=human_size(max_file))
    try:
        return parquet.read()
    except Exception as exc:
        raise UserError("data.unreadable", key=KEY, name=path.name, detail=first_line(exc)) from None


def _table_from_rows(rows: list[dict]):
    """Checked rows -> a table; a column Arrow cannot type (5 in one row, 'five' in the next)
    keeps its values as text, as the conversion to training records reads them anyway."""
    import pyarrow as pa

    names = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            try:
                columns[name] = pa.array([_scalars_as_text(v) for v in values])
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                columns[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                          for v in values], pa.string())
    return pa.table(columns) if names else pa.table({}).append_column("_", pa.nulls(len(rows))).drop(["_"])


def _scalars_as_text(value):
    if isinstance(value, dict):
        return {k: _scalars_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scalars_as_text(v) for v in value]
    return value if value is None or isinstance(value, str) else str(value)


def _check_table(table, name: str, max_field: int) -> None:
    """The field cap on a table's columns (vectorised): the largest text anywhere in a field."""
    over = _field_over_cap(table, max_field)
    if over is not None:
        field, size, row = over
        raise UserError("data.field_too_large", key=KEY, name=name, where=Msg("data.where_row", row=row + 1),
                        field=field, size=human_size(size), limit=human_size(max_field))


def _field_over_cap(table, max_field: int):
    """(field, bytes, row index) of the first field holding a text over the cap, else None."""
    for field in table.schema.names:
        start = 0
        for chunk in table.column(field).chunks:
            size = _largest_text_size(chunk)
            if size > max_field:
                return field, size, start + _index_of_text_size(chunk, size)
            start += len(chunk)
    return None


def _largest_text_size(array) -> int:
    """Bytes of the longest text anywhere in `array` (inside lists and objects too); 0 if none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.max(pc.binary_length(array)).as_py() or 0
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _largest_text_size(pc.list_flatten(array))
    if pa.types.is_struct(kind):
        return max((_largest_text_size(pc.struct_field(array, [i])) for i in range(kind.num_fields)), default=0)
    return 0


def _index_of_text_size(array, size: int) -> int:
    """The index in `array` of the (first) value holding a text of `size` bytes (-1 if none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.index(pc.binary_length(array), size).as_py()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _index_of_text_size(pc.list_flatten(array), size)
        return -1 if inner < 0 else pc.list_parent_indices(array)[inner].as_py()
    if pa.types.is_struct(kind):
        found = (_index_of_text_size(pc.struct_field(array, [i]), size) for i in range(kind.num_fields))
        return min((i for i in found if i >= 0), default=-1)
    return -1
