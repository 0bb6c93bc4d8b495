"""What the Data tab shows, computed from plain values: no Gradio here, so it is testable alone.

    loaded = redetect(load_source(ws, "demo-en"))    # Loaded: the Arrow table + its detection
    rows, pages = page_frame(loaded, page=0)          # one page of the table, long cells folded
    view = example_view(loaded, 3, tok, 256, "en")    # a record as the model sees it
    recipe = make_recipe(loaded, clean={...}, split={...}, augment={...})
    prepared = run_prepare(recipe, tok)               # studio.prepare.prepare

The tab's handlers (studio/ui/data_tab.py) pass widget values in and put what comes back on the
page; the work itself is the data backends' (studio.formats, preview, dataload, quality, prepare,
library), imported where used so the app starts without loading them. Every path from the page
goes through `Workspace.resolve_user_path` first. Loaded tables are kept in a small cache shared
by the page's sessions (keyed by source and file time), so paging and re-detection do not read
the file again.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from studio.dataload import table_rows
from studio.errors import UserError
from studio.i18n import Msg, render, t

BUNDLED = ["demo-en", "demo-zh", "demo-dpo"]
PAGE_SIZE = 20
DETECT_ROWS = 500  # detection and the mapping look at the first rows only
MAX_ROLES = 6  # role dropdowns built once; a format uses as many as it has roles


@dataclass
class Loaded:
    """A dataset read for the tab: its table, where it came from and how it reads."""
    source: str
    config: str = ""
    split: str = ""
    table: object = None  # pyarrow.Table
    detection: object = None  # studio.formats.Detection
    format: str = "auto"  # "auto" or the user's choice
    mapping: dict = field(default_factory=dict)  # role -> column as read (defaults filled in)
    user_mapping: dict = field(default_factory=dict)  # the columns the user chose
    system: str = ""

    @property
    def rows(self) -> int:
        return self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.table.column_names]

    def row(self, index: int) -> dict:
        return table_rows(self.table, index, index + 1)[0]

    def head(self, n: int = DETECT_ROWS) -> list[dict]:
        return table_rows(self.table, 0, n)


# --- loading -------------------------------------------------------------------------------

_tables: OrderedDict = OrderedDict()
_tables_lock = threading.Lock()
_TABLES_KEPT = 4


def library(ws):
    from studio.library import Library

    return Library(ws.home)


def source_choices(ws, lang: str | None = None) -> list[tuple[str, str]]:
    """Bundled demos, uploads (by file name), library datasets (by name; value library:<id>)."""
    choices = [(name, name) for name in BUNDLED]
    choices += [(Path(p).name, p) for p in ws.uploaded_datasets()]
    return choices + library_choices(ws)


def library_choices(ws) -> list[tuple[str, str]]:
    """(name · rows per split, library:<id>) for every library dataset of the workspace's home."""
    return library(ws).choices()


def _read_table(ws, source: str, config: str, split: str):
    """(cache key, reader) for a source; a library dataset (library:<id>) reads its train split."""
    path = ws.resolve_user_path(source, "data")
    local = Path(path)
    stamp = local.stat().st_mtime_ns if local.is_file() else None
    from studio.dataload import load_table

    return (path, config, split, stamp), lambda: load_table(path, config=config or None, split=split or None)


def load_source(ws, source: str, config: str = "", split: str = "") -> Loaded:
    """Read and detect a dataset; UserError (one sentence) when it cannot be used."""
    source = (source or "").strip()
    if not source:
        raise UserError("dataui.pick")
    key, read = _read_table(ws, source, (config or "").strip(), (split or "").strip())
    with _tables_lock:
        table = _tables.get(key)
        if table is not None:
            _tables.move_to_end(key)
    if table is None:
        table = read()
        with _tables_lock:
            _tables[key] = table
            while len(_tables) > _TABLES_KEPT:
                _tables.popitem(last=False)
    return Loaded(source=source, config=config or "", split=split or "", table=table)


def redetect(loaded: Loaded, fmt: str = "auto", mapping: dict | None = None) -> Loaded:
    """Detection with the user's format / column choices (empty choices are left out); a copy.

    When the columns do not fit, the copy keeps the table and the choices but no detection
    (`detection` None), and the UserError is raised with it as `exc.loaded`, so the page can
    still show the rows and the column pickers to fix it."""
    from studio.formats import detect

    mapping = {role: col for role, col in (mapping or {}).items() if col}
    changed = dataclasses.replace(loaded, format=fmt or "auto", user_mapping=mapping, detection=None, mapping={})
    try:
        changed.detection = detect(loaded.head(), mapping or None, fmt=fmt or "auto")
    except UserError as exc:
        exc.loaded = changed
        raise
    changed.mapping = dict(changed.detection.mapping)
    return changed


def fmt_of(loaded: Loaded) -> str:
    return loaded.detection.format


def roles_of(loaded: Loaded) -> list[str]:
    """The roles a column can be picked for: those of the detected format, else of the format
    the user chose, else alpaca's (the most common layout) when nothing was recognised."""
    from studio.formats import ROLES

    if loaded.detection is not None:
        fmt = loaded.detection.format
    else:
        fmt = loaded.format if loaded.format in ROLES else "alpaca"
    return list(ROLES.get(fmt, ()))[:MAX_ROLES]


# --- what is shown -------------------------------------------------------------------------

def esc(text: str) -> str:
    """Text for a Markdown component: user text (column names, file names) shows as typed."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("*", "\\*").replace("_", "\\_").replace("`", "\\`").replace("[", "\\["))


def summary_text(loaded: Loaded, lang: str | None) -> str:
    names = ", ".join(loaded.columns[:12]) + (" …" if len(loaded.columns) > 12 else "")
    return t("dataui.loaded", lang, rows=loaded.rows, columns=len(loaded.columns), names=esc(names))


def detection_text(loaded: Loaded, lang: str | None) -> str:
    d = loaded.detection
    if d is None:
        return ""
    lines = [t("dataui.format.detected", lang, format=esc(d.format), reason=esc(render(d.reason, lang)))]
    if d.note:
        lines.append(t("dataui.format.training", lang, note=esc(render(d.note, lang))))
    lines += [f"⚠ {esc(render(w, lang))}" for w in (d.warnings or [])]
    return "\n\n".join(lines)


def preview_table(rows: list[dict], first: int = 1, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows as a table of text cells (long or nested values folded to one readable line by
    studio.preview.fold), numbered from `first` in a '#' column. Shown with datatype="str", so
    a column named `<img src=…>` shows those characters (checked in the browser test)."""
    from studio.preview import fold

    columns = columns or list(dict.fromkeys(str(k) for row in rows for k in row))
    frame = pd.DataFrame([{"#": str(first + i), **{str(k): fold(v) for k, v in row.items()}}
                          for i, row in enumerate(rows)], columns=["#"] + columns)
    return frame.fillna("")


def page_frame(loaded: Loaded, page: int, size: int = PAGE_SIZE) -> tuple[pd.DataFrame, int, int]:
    """(one page as text cells, the 0-based page shown (clamped), the number of pages); only the
    page is turned into Python objects."""
    pages = max(1, -(-loaded.rows // size))
    page = min(max(0, int(page or 0)), pages - 1)
    rows = table_rows(loaded.table, page * size, page * size + size)
    return preview_table(rows, page * size + 1, loaded.columns), page, pages


def record_of(loaded: Loaded, index: int) -> dict | None:
    """Row `index` (0-based) in the internal record form (None: nothing to learn from)."""
    from studio.formats import normalise

    # normalise gives None for a row with nothing to learn from (to_records would refuse the file);
    # a row without the format's shape is shown as "nothing to learn" too (the report names it).
    try:
        return normalise(loaded.row(index), fmt_of(loaded), system=loaded.system, mapping=loaded.mapping or None)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None


def all_records(loaded: Loaded) -> list[dict]:
    from studio.formats import to_records

    return to_records(table_rows(loaded.table), fmt_of(loaded), system=loaded.system,
                      mapping=loaded.mapping or None)


def example_view(loaded: Loaded, number, tokenizer, max_length: int, model: str, lang: str | None):
    """(highlighted segments with translated labels, the line under them) for row `number`
    (1-based, as the table and the quality report count rows)."""
    from studio.preview import render_example

    number_ = _int(number, 1)
    if not 1 <= number_ <= loaded.rows:
        return [], t("dataui.example.out_of_range", lang, rows=loaded.rows, last=loaded.rows)
    record = record_of(loaded, number_ - 1)
    if record is None:
        return [], t("dataui.example.none", lang, row=number_, format=fmt_of(loaded))
    shown = render_example(record, tokenizer, max_length=max_length or None)
    labels = {"trained": t("dataui.example.trained", lang), "masked": t("dataui.example.masked", lang)}
    segments = [(text, labels.get(kind, kind)) for text, kind in shown["segments"]]
    lines = [t("dataui.example.tokens", lang, tokens=shown["tokens"], trained=shown["trained_tokens"],
               model=esc(model))]
    if shown.get("truncated"):
        lines.append("⚠ " + t("dataui.example.truncated", lang))
    for note in shown.get("notes") or ([shown["note"]] if shown.get("note") else []):
        lines.append(esc(render(note, lang)))
    return segments, "\n\n".join(lines)


def color_map(lang: str | None = None) -> dict[str, str]:
    """Trained tokens green, masked grey, under their labels in the page's language."""
    return {t("dataui.example.trained", lang): "#16a34a", t("dataui.example.masked", lang): "#d1d5db"}


def findings_frame(report: dict | None, lang: str | None) -> pd.DataFrame:
    cols = [t(code, lang) for code in ("dataui.quality.col.finding", "dataui.quality.col.count",
                                        "dataui.quality.col.examples")]
    rows = [] if not report else [[render(f["message"], lang), str(f["count"]), ", ".join(
             str(i) for i in (f.get("rows") or [i + 1 for i in f.get("examples") or []])[:10])]
            for f in report.get("findings", []) if f.get("count")]
    return pd.DataFrame(rows, columns=cols)


def quality_text(report: dict, model: str, max_length: int, lang: str | None) -> str:
    found = [f for f in report.get("findings", []) if f.get("count")]
    summary = "dataui.quality.summary_one" if len(found) == 1 else "dataui.quality.summary"
    lines = [t(summary, lang, rows=report.get("rows", 0), kinds=len(found)) if found
             else t("dataui.quality.none", lang, rows=report.get("rows", 0))]
    if report.get("histogram"):
        lines.append(t("dataui.quality.max_length", lang, max_length=max_length, model=esc(model)))
    langs = report.get("languages") or {}
    if langs:
        mix = ", ".join(f"{esc(str(k))} {v}" for k, v in sorted(langs.items(), key=lambda kv: -kv[1]))
        lines.append(t("dataui.quality.languages", lang, languages=mix))
    return "\n\n".join(lines)


def histogram_frame(report: dict, lang: str | None) -> pd.DataFrame | None:
    bins = report.get("histogram") or []
    if not bins:
        return None
    within, over = t("dataui.quality.within", lang), t("dataui.quality.over", lang)
    return pd.DataFrame([{"tokens": f"{b['start']}–{b['end']}", "rows": int(b["count"]),
                          "fit": over if b.get("over") else within} for b in bins])


def histogram_colors(lang: str | None = None) -> dict[str, str]:
    return {t("dataui.quality.within", lang): "#4f46e5", t("dataui.quality.over", lang): "#dc2626"}


# --- the recipe ----------------------------------------------------------------------------

def _int(value, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def number(value, field_code: str, lang_free=None) -> float:
    """A number typed in a box, or UserError naming the box."""
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        raise UserError("dataui.bad_number", field=Msg(field_code), value=str(value)[:40]) from None


def parse_placeholders(text: str) -> dict[str, str]:
    """'name = Alice' lines -> {"name": "Alice"}; braces around the name are optional."""
    values = {}
    for number_, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        name = name.strip().strip("{}").strip()
        if not sep or not name:
            raise UserError("dataui.bad_line", line=number_, example="name = Alice")
        values[name] = value.strip()
    return values


def parse_substitutions(text: str) -> dict[str, list[str]]:
    """'咳嗽 -> 胸痛 | 呼吸困难 | 咯血' lines -> {"咳嗽": ["胸痛", "呼吸困难", "咯血"]}."""
    subs = {}
    for number_, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        term, sep, rest = line.partition("->")
        if not sep:
            term, sep, rest = line.partition("→")
        options = [o.strip() for o in rest.replace("｜", "|").split("|") if o.strip()]
        if not sep or not term.strip() or not options:
            raise UserError("dataui.bad_line", line=number_, example="咳嗽 -> 胸痛 | 呼吸困难 | 咯血")
        subs[term.strip()] = options
    return subs


def split_options(train, val, test, seed, stratify) -> dict:
    ratios = tuple(number(v, code) for v, code in ((train, "dataui.split.train"), (val, "dataui.split.val"),
                                                     (test, "dataui.split.test")))
    total = sum(ratios)
    if any(r < 0 or r > 1 for r in ratios) or abs(total - 1) > 1e-6:
        raise UserError("dataui.bad_shares", total=f"{total:g}")
    return {"ratios": list(ratios), "seed": _int(seed, 42), "stratify": stratify or None}


def clean_options(trim, drop_empty, dedupe, threshold, conflicts, min_tokens, max_tokens, placeholders) -> dict:
    return {"trim": bool(trim), "drop_empty": bool(drop_empty), "dedupe": dedupe or "off",
            "near_threshold": float(threshold), "conflicts": conflicts or "off",
            "min_tokens": max(0, int(number(min_tokens or 0, "dataui.clean.min_tokens"))),
            "max_tokens": max(0, int(number(max_tokens or 0, "dataui.clean.max_tokens"))),
            "placeholders": parse_placeholders(placeholders)}


def augment_options(methods, multiplier, seed, part, substitutions) -> dict:
    return {"methods": list(methods or []), "multiplier": float(multiplier or 0),
            "seed": _int(seed, 42), "part": part or "prompt",
            "substitutions": parse_substitutions(substitutions)}


def make_recipe(loaded: Loaded, clean: dict, split: dict, augment: dict) -> dict:
    """The DataRecipe (as a dict) for what the page shows: the same steps `studio data prepare` replays."""
    recipe = {"source": loaded.source, "config": loaded.config or None, "split": loaded.split or None,
              "format": fmt_of(loaded) if loaded.format not in ("", "auto") else "auto",
              "mapping": loaded.user_mapping or {}, "system": loaded.system, "clean": clean,
              "split_ratios": split["ratios"], "split_seed": split["seed"], "stratify": split["stratify"],
              "augment": augment if augment.get("methods") and augment.get("multiplier") else None}
    return recipe


def run_prepare(ws, recipe: dict, tokenizer=None, max_length: int = 256):
    """studio.prepare.prepare on the recipe, its source confined first (bundled names and library
    references stay as they are: the library records them by name)."""
    from studio.prepare import DataRecipe, prepare

    recipe = dict(recipe)
    source = recipe["source"]
    checked = ws.resolve_user_path(source, "data")
    if source not in BUNDLED and not source.startswith("library:"):
        recipe["source"] = checked
    return prepare(DataRecipe.from_dict(recipe), tokenizer=tokenizer, max_length=max_length or 256)


def steps_frame(prepared, lang: str | None) -> pd.DataFrame:
    cols = [t(code, lang) for code in ("dataui.prepare.col.step", "dataui.prepare.col.before",
                                        "dataui.prepare.col.after", "dataui.prepare.col.what")]
    rows = [] if prepared is None else [[str(s.get("step", "")), str(s.get("before", "")), str(s.get("after", "")),
             render(s.get("message"), lang)] for s in prepared.steps]
    return pd.DataFrame(rows, columns=cols)


def prepared_text(prepared, lang: str | None) -> str:
    sizes = {k: len(v) for k, v in prepared.splits.items()}
    return t("dataui.prepare.done", lang, train=sizes.get("train", 0), val=sizes.get("val", 0),
             test=sizes.get("test", 0))


def side_by_side(prepared, lang: str | None, limit: int = 20) -> pd.DataFrame:
    """Augmented rows of the training split next to the rows they were made from, with the edits."""
    from studio.augment import side_by_side as pairs_of
    from studio.preview import fold

    cols = [t(code, lang) for code in ("dataui.prepare.col.original", "dataui.prepare.col.augmented",
                                        "dataui.prepare.col.ops")]
    if prepared is None:
        return pd.DataFrame([], columns=cols)
    train = prepared.splits.get("train", [])
    pairs = pairs_of(train, n=limit)
    ops = [", ".join(map(str, r["_augmented"].get("ops", []))) for r in train if r.get("_augmented")]
    return pd.DataFrame([[fold(a, 300), fold(b, 300), o] for (a, b), o in zip(pairs, ops)], columns=cols)


# --- tokenizers ----------------------------------------------------------------------------

_tokenizers: dict = {}
_tok_lock = threading.Lock()


def tokenizer_for(ws, model: str):
    """The tokenizer of the Train tab's model (cached per resolved path). A model that cannot be
    loaded (a Hub id while offline) is not asked again for a minute: every redraw of the tab
    shows an example, and each would wait for the Hub again."""
    from studio.models import load_tokenizer

    path = ws.resolve_user_path(model or "demo", "model")
    with _tok_lock:
        known = _tokenizers.get(path)
        if isinstance(known, tuple) and time.monotonic() - known[1] < 60:
            raise known[0]
        if known is not None and not isinstance(known, tuple):
            return known
    try:
        tokenizer = load_tokenizer(path, trust_remote_code=False)
    except Exception as exc:
        with _tok_lock:
            _tokenizers[path] = (exc, time.monotonic())
        raise
    with _tok_lock:
        _tokenizers[path] = tokenizer
        while len(_tokenizers) > 4:
            _tokenizers.pop(next(iter(_tokenizers)))
    return tokenizer


# --- the Train tab's mix ---------------------------------------------------------------------

def mix_text(refs: list[str], current: str = "") -> str:
    """'library:a=0.5, library:b=0.5' for the picked datasets: shares already typed for a dataset
    are kept, new ones share what is left equally (the backend normalises the shares)."""
    refs = [r for r in refs or [] if r]
    if len(refs) < 2:
        return ""
    typed = {}
    for part in (current or "").split(","):
        ref, _, share = part.strip().rpartition("=")
        try:
            typed[ref.strip()] = float(share)
        except ValueError:
            continue
    kept = {r: typed[r] for r in refs if r in typed}
    rest = [r for r in refs if r not in kept]
    left = max(0.0, 1.0 - sum(kept.values()))
    shares = {**kept, **{r: (left / len(rest) if left > 0 else 1.0 / len(refs)) for r in rest}}
    return ", ".join(f"{r}={shares[r]:.3g}" for r in refs)
