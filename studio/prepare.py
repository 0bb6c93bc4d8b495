"""Prepare a dataset for training: load, detect, normalise, clean, split, augment, report.

    recipe = DataRecipe(source="data.jsonl", clean={"dedupe": "near", "near_threshold": 0.85},
                        split_ratios=[0.7, 0.2, 0.1], augment={"methods": ["swap"], "multiplier": 1})
    prepared = prepare(recipe, tokenizer=None)   # UserError (one sentence) for data that cannot be used
    prepared.splits["train"]                     # records (studio.formats' internal form)
    prepared.steps                               # [{"step", "before", "after", "message": Msg}]
    prepared.report                              # studio.quality.quality_report of the cleaned rows
    Library(home).save(prepared, "my data")      # studio.library: saved with hashes and this recipe
    DataRecipe.from_dict(Library(home).get(id)["recipe"])   # ... and replayed to the same hashes

The recipe is the whole description of the work (a small dict / YAML): the same recipe on the
same source gives byte-identical splits, because every random step is seeded. The steps run in
this order, each recorded with its row counts: load (studio.data / studio.dataload, every file
check included), detect the format (studio.formats.detect, or the user's format and column
mapping), normalise to records (studio.formats.to_records), clean (studio.clean), split
train/val/test (studio.split.split_records; the test split is held out from training),
augment the training split only (studio.augment), and the quality report of the cleaned records
(studio.quality). The Data tab, `studio data prepare` and a replayed library dataset all run it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from studio.errors import UserError
from studio.i18n import Msg
from studio.library import SPLITS, Library, dataset_id, jsonl_bytes, sha256_bytes, sha256_file, strip_metadata
from studio.paths import DEMO_DATA, is_library_ref, resolve_data_path

DEFAULT_RATIOS = (0.7, 0.2, 0.1)


@dataclass
class DataRecipe:
    """What to do to a source, step by step; serialises to a plain dict (`to_dict` / `from_dict`)."""
    source: str = ""
    config: str | None = None          # Hub dataset config
    split: str | None = None           # Hub dataset split (None: 'train')
    format: str = "auto"               # one of studio.formats.FORMATS, or 'auto'
    mapping: dict = field(default_factory=dict)   # {role: column} overrides for the format
    system: str = ""                   # a system prompt added to conversations that have none
    max_rows: int = 0                  # read at most this many rows (0: all)
    clean: dict | None = field(default_factory=dict)   # studio.clean.CleanOptions fields ({}: defaults)
    split_ratios: list = field(default_factory=lambda: list(DEFAULT_RATIOS))  # train, val, test
    split_seed: int = 42
    stratify: str | None = None        # a source column whose values keep their shares in each split
    augment: dict | None = None        # studio.augment.AugmentOptions fields (None: no augmentation)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataRecipe":
        """A recipe from a dict (YAML, JSON, a library dataset.json's 'recipe'); bad keys or
        values are one sentence each."""
        if not isinstance(data, dict):
            raise UserError("library.recipe_not_mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise UserError("library.recipe_unknown", names=", ".join(unknown), known=", ".join(sorted(known)))
        recipe = cls(**data)
        recipe.check()
        return recipe

    @classmethod
    def load(cls, path: str | Path) -> "DataRecipe":
        """A recipe file: YAML or JSON holding the recipe, or a library dataset.json (its 'recipe')."""
        path = Path(path)
        if not path.is_file():
            raise UserError("library.recipe_missing", path=str(path))
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            raise UserError("library.recipe_unreadable", name=path.name) from None
        if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
            data = data["recipe"]
        return cls.from_dict(data)

    def check(self) -> None:
        """Types and ranges, before any data is read."""
        if not isinstance(self.source, str) or not self.source.strip():
            raise UserError("library.recipe_no_source")
        for name in ("mapping", "clean", "augment"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise UserError("library.recipe_bad_value", name=name, value=str(value)[:80])
        if not isinstance(self.mapping, dict) or not all(isinstance(v, str) for v in self.mapping.values()):
            raise UserError("library.recipe_bad_value", name="mapping", value=str(self.mapping)[:80])
        self.split_ratios = parse_ratios(self.split_ratios)
        for name in ("split_seed", "max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError("library.recipe_bad_value", name=name, value=str(value)[:80])


def parse_ratios(value) -> list[float]:
    """'0.7,0.2,0.1' or [0.7, 0.2, 0.1] -> three shares (train > 0, each 0–1, summing to 1)."""
    from studio.split import check_ratios

    return list(check_ratios(value.split(",") if isinstance(value, str) else value))


@dataclass
class Prepared:
    """The result of `prepare`: the splits and everything said about them."""
    recipe: DataRecipe          # with every option written out (defaults included), for replay
    detection: object           # studio.formats.Detection
    splits: dict                # {"train", "val", "test"} -> records
    steps: list                 # [{"step", "before", "after", "message": Msg}]
    report: dict | None         # quality report of the cleaned records (before splitting)
    source: dict                # {"name", "path", "sha256"} (sha256 of the raw file, when a file)
    format: str = ""
    kind: str = "sft"           # "sft", "preference" or "text"

    def hashes(self) -> dict[str, str]:
        """sha256 of each split as it is saved (library.jsonl_bytes)."""
        return {s: sha256_bytes(jsonl_bytes(self.splits.get(s) or [])) for s in SPLITS}

    def rows(self) -> dict[str, int]:
        return {s: len(self.splits.get(s) or []) for s in SPLITS}

    def info(self, name: str = "") -> dict:
        """The description saved with the splits (dataset.json without the split hashes)."""
        from studio.library import quality_summary, to_step_dict

        return {"name": name or Path(self.source.get("name") or "dataset").stem, "format": self.format,
                "kind": self.kind, "source": self.source, "recipe": self.recipe.to_dict(),
                "steps": [to_step_dict(s) for s in self.steps], "quality": quality_summary(self.report)}


def _step(name: str, before: int, after: int, message: Msg) -> dict:
    return {"step": name, "before": before, "after": after, "message": message}


def source_info(source: str) -> dict:
    """Where the data came from: name, absolute path (local files) and the sha256 of the raw file."""
    if is_library_ref(source):
        meta = Library().get(source)
        return {"name": source.strip(), "library": meta["id"], "sha256": meta.get("hash")}
    path = Path(resolve_data_path(source))
    if path.is_file():
        name = source if source in DEMO_DATA else path.name
        return {"name": name, "path": str(path), "sha256": sha256_file(path)}
    return {"name": source, "hub": source}


def load_source_rows(recipe: DataRecipe) -> list[dict]:
    """The rows of the recipe's source (files, bundled names, Hub ids with config/split, library)."""
    source = recipe.source.strip()
    if is_library_ref(source):  # preparing a library dataset again: all its rows, metadata dropped
        lib = Library()
        rows = [strip_metadata(r) for s in SPLITS for r in lib.records(source, s) if not r.get("_augmented")]
        return rows[:recipe.max_rows] if recipe.max_rows else rows
    if recipe.config or recipe.split:  # a Hub dataset's config / split
        from studio.dataload import load_table, table_rows

        return table_rows(load_table(source, config=recipe.config or None, split=recipe.split or None,
                                     max_rows=recipe.max_rows))
    from studio.data import load_rows

    return load_rows(source, recipe.max_rows)


def _clean_options(recipe: DataRecipe):
    from studio.clean import CleanOptions

    try:
        return CleanOptions(**(recipe.clean or {}))
    except TypeError as exc:
        raise UserError("library.recipe_bad_value", name="clean", value=str(exc)[:120]) from None


def _augment_options(recipe: DataRecipe):
    from studio.augment import AugmentOptions

    options = dict(recipe.augment or {})
    options.setdefault("seed", recipe.split_seed)
    try:
        return AugmentOptions(**options)
    except TypeError as exc:
        raise UserError("library.recipe_bad_value", name="augment", value=str(exc)[:120]) from None


def _options_dict(options) -> dict:
    data = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(vars(options))
    return json.loads(json.dumps(data, default=list))  # tuples -> lists, so a replayed recipe compares equal


def _kind_of(records: list[dict]) -> str:
    first = records[0] if records else {}
    return "text" if "text" in first else "preference" if "chosen" in first else "sft"


def _add_groups(rows: list[dict], records: list[dict], column: str) -> None:
    """Keep the stratify column's value as `_group` on each record (from its source row)."""
    if not any(column in row for row in rows[:1000]):
        columns = sorted({str(k) for row in rows[:100] for k in row})
        raise UserError("library.no_stratify_column", key="stratify", column=column, columns=", ".join(columns))
    for record in records:
        index = record["_row"] - 1  # studio.formats numbers source rows from 1
        value = rows[index].get(column) if 0 <= index < len(rows) else None
        record["_group"] = "" if value is None else str(value)


def quality_of(records: list[dict], tokenizer=None, max_length: int = 256, near_threshold: float = 0.8) -> dict:
    """studio.quality's report of the records ({"rows", "findings": []} while that module is absent)."""
    try:
        from studio.quality import quality_report
    except ImportError:
        return {"rows": len(records), "findings": [], "lengths": None, "histogram": [], "languages": {}}
    return quality_report(records, tokenizer=tokenizer, max_length=max_length, near_threshold=near_threshold)


def prepare(recipe: DataRecipe | dict, tokenizer=None, max_length: int = 256) -> Prepared:
    """Run the recipe; UserError for data or options that cannot be used (nothing is written)."""
    from studio.clean import clean
    from studio.formats import convert, detect
    from studio.split import split_records

    recipe = DataRecipe.from_dict(recipe) if isinstance(recipe, dict) else recipe
    recipe.check()
    steps: list[dict] = []
    source = source_info(recipe.source)
    rows = load_source_rows(recipe)
    steps.append(_step("load", len(rows), len(rows), Msg("library.step_load", rows=len(rows), source=source["name"])))

    mapping = dict(recipe.mapping or {})
    kind = "dpo" if recipe.format == "preference" else "sft"
    if recipe.format in ("", "auto", None):
        kind = "dpo" if detect(rows[:1000], mapping or None).format == "preference" else "sft"
    detection, records = convert(rows, recipe.format or "auto", system=recipe.system, mapping=mapping or None,
                                 kind=kind)
    fmt = detection.format
    steps.append(_step("detect", len(rows), len(rows), Msg("library.step_detect", format=fmt, reason=detection.reason)))
    steps.append(_step("normalise", len(rows), len(records),
                       Msg("library.step_normalise", after=len(records), before=len(rows), format=fmt)))
    if recipe.stratify:
        _add_groups(rows, records, recipe.stratify)
    del rows

    clean_options = _clean_options(recipe)
    records, clean_steps = clean(records, clean_options, tokenizer)
    steps += clean_steps
    if not records:
        raise UserError("library.nothing_left", key="clean")

    report = quality_of(records, tokenizer, max_length, getattr(clean_options, "near_threshold", 0.8))

    before = len(records)
    splits = split_records(records, ratios=tuple(recipe.split_ratios), seed=recipe.split_seed,
                           stratify="_group" if recipe.stratify else None)
    splits = {s: list(splits.get(s) or []) for s in SPLITS}
    if not splits["train"]:
        raise UserError("library.too_few_to_split", key="split_ratios", rows=before)
    steps.append(_step("split", before, before, Msg("library.step_split", rows=before, train=len(splits["train"]),
                                                      val=len(splits["val"]), test=len(splits["test"]),
                                                      seed=recipe.split_seed)))

    augment_options = None
    if recipe.augment and (recipe.augment.get("methods") or []) and float(recipe.augment.get("multiplier", 1) or 0) > 0:
        from studio.augment import augment

        augment_options = _augment_options(recipe)
        before = len(splits["train"])
        splits["train"] = augment(splits["train"], augment_options)
        steps.append(_step("augment", before, len(splits["train"]),
                           Msg("library.step_augment", before=before, after=len(splits["train"]),
                               added=len(splits["train"]) - before)))

    # The recipe as run, every option written out: a replay does not depend on later defaults.
    # (format and mapping stay as the user gave them: the same rows are detected the same way.)
    resolved = dataclasses.replace(recipe, clean=_options_dict(clean_options),
                                   augment=_options_dict(augment_options) if augment_options else None)
    return Prepared(recipe=resolved, detection=detection, splits=splits, steps=steps, report=report,
                    source=source, format=fmt, kind=_kind_of(splits["train"]))


def write_prepared(prepared: Prepared, folder: str | Path, name: str = "") -> dict:
    """Write the splits and dataset.json to a folder of the user's choice (`--out DIR`)."""
    from studio.library import write_dataset

    return write_dataset(Path(folder), prepared.splits, prepared.info(name))


def replay(ref_or_path: str, home=None, tokenizer=None) -> Prepared:
    """Prepare again what a library dataset (id or library:<id>) or a recipe file describes."""
    if Path(ref_or_path).suffix.lower() in (".json", ".yaml", ".yml") and Path(ref_or_path).is_file():
        recipe = DataRecipe.load(ref_or_path)
    else:
        ref = ref_or_path if is_library_ref(ref_or_path) else "library:" + dataset_id("library:" + ref_or_path)
        recipe = DataRecipe.from_dict(Library(home).get(ref).get("recipe") or {})
    return prepare(recipe, tokenizer=tokenizer)
