"""The dataset library: prepared datasets saved under the studio home, referenced as `library:<id>`.

    lib = Library(home)
    entry = lib.save(prepared, "medical qa")     # studio.prepare.prepare(...) -> a library entry
    lib.list()                                   # [{id, ref, name, format, kind, rows, hash, source, created}]
    lib.get("medical-qa-1a2b3c4d")               # the full dataset.json
    lib.records("medical-qa-1a2b3c4d", "train")  # the records of one split
    parse_mix("library:a-1a2b3c4d=0.7, library:b-5e6f7a8b=0.3")   # [(ref, share)], shares sum to 1

A dataset lives in `<home>/datasets/<slug>-<hash8>/`: `train.jsonl`, `val.jsonl`, `test.jsonl`
(the internal record form of studio.formats, metadata keys such as `_row` and `_augmented` kept so
augmented rows can be counted and removed) and `dataset.json`: name, source (file name, path and
the sha256 of the raw file), detected format, the recipe that made it (`studio data prepare
--replay ID` runs it again), the steps with their counts, and per split the rows and the sha256 of
the JSONL file. The dataset hash is the sha256 over the three split hashes, so the same data
prepared twice gets the same id (the slug comes from the name), and a run records exactly what it
trained on (run/data/manifest.json). Files are written into a temporary folder and renamed into
place, so a half-written dataset never shows in the list.

Uploads are not here: they stay plain files in `<home>/uploads/` (Workspace.uploaded_datasets).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from studio.errors import UserError
from studio.i18n import Msg, to_jsonable
from studio.paths import LIBRARY_ID, LIBRARY_PREFIX, current_home, is_library_ref, library_dir

SPLITS = ("train", "val", "test")
META_FILE = "dataset.json"
VERSION = 1


def strip_metadata(record: dict) -> dict:
    """The record without its metadata keys (`_row`, `_augmented`, `_group`, …): what a trainer sees."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def slugify(name: str) -> str:
    """A folder-safe lower-case ASCII slug of a dataset name ('dataset' when nothing ASCII is left)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-")
    return slug or "dataset"


def jsonl_bytes(records: list[dict]) -> bytes:
    """Records as JSONL bytes, always the same bytes for the same records (hashes depend on it)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_hash(split_hashes: dict[str, str]) -> str:
    """The hash of a whole dataset: sha256 over its split hashes, in split order."""
    return sha256_bytes("".join(f"{s}:{split_hashes[s]}\n" for s in SPLITS).encode())


def dataset_id(ref: str) -> str:
    return ref.strip()[len(LIBRARY_PREFIX):].strip()


# ---- mixing several library datasets (data.mix) -----------------------------------------------

def parse_mix(text: str) -> list[tuple[str, float]]:
    """'library:a=0.7, library:b=0.3' -> [('library:a', 0.7), ('library:b', 0.3)], or UserError.

    Entries are separated by commas, semicolons or new lines; each is `library:<id>=<share>`.
    Shares are relative weights (positive numbers); they are divided by their sum, so
    '0.7, 0.3' and '7, 3' mean the same. A dataset may appear once.
    """
    entries: list[tuple[str, float]] = []
    for item in (part.strip() for part in re.split(r"[,;\n]", text or "")):
        if not item:
            continue
        ref, sep, share_text = item.rpartition("=")
        ref = ref.strip()
        if not sep or not ref:
            raise UserError("library.mix_entry", key="data.mix", item=item)
        if not is_library_ref(ref) or library_dir(ref, "/") is None:
            raise UserError("library.mix_not_library", key="data.mix", item=ref)
        try:
            share = float(share_text)
        except ValueError:
            raise UserError("library.mix_share", key="data.mix", item=item, share=share_text.strip()) from None
        if not math.isfinite(share) or share <= 0:
            raise UserError("library.mix_share", key="data.mix", item=item, share=share_text.strip())
        ref = LIBRARY_PREFIX + dataset_id(ref)
        if any(ref == seen for seen, _ in entries):
            raise UserError("library.mix_twice", key="data.mix", ref=ref)
        entries.append((ref, share))
    if not entries:
        raise UserError("library.mix_empty", key="data.mix")
    total = sum(share for _, share in entries)
    return [(ref, share / total) for ref, share in entries]


def mix_counts(shares: list[float], total: int) -> list[int]:
    """Rows per dataset: `total` split by the shares, rounded so the counts add up to `total`
    (largest remainder), every dataset with a positive share getting at least one row."""
    exact = [share * total for share in shares]
    counts = [max(1, math.floor(x)) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    for i in order[:max(0, total - sum(counts))]:
        counts[i] += 1
    return counts


# ---- the library ------------------------------------------------------------------------------

class Library:
    """The prepared datasets of one studio home (`<home>/datasets/`)."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home).resolve() if home else current_home()
        self.root = self.home / "datasets"

    # -- reading --

    def folder(self, ref_or_id: str) -> Path:
        """The folder of a dataset given its id or `library:<id>`; UserError when it is not there."""
        ref = ref_or_id if is_library_ref(ref_or_id) else LIBRARY_PREFIX + (ref_or_id or "")
        folder = library_dir(ref, self.home)
        if folder is None or not (folder / META_FILE).is_file():
            raise UserError("library.not_found", key="data.path", ref=ref.strip(), home=str(self.root))
        return folder

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.folder(ref_or_id)
            return True
        except UserError:
            return False

    def get(self, ref_or_id: str) -> dict:
        """The dataset's dataset.json (a dict), or UserError."""
        folder = self.folder(ref_or_id)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict):
            raise UserError("library.damaged", key="data.path", ref=LIBRARY_PREFIX + folder.name)
        meta["id"] = folder.name
        return meta

    def list(self) -> list[dict]:
        """Every dataset (damaged ones left out), by name: {id, ref, name, format, kind, rows
        {split: n}, hash, source (a file name or Hub id), created}."""
        entries = []
        if not self.root.is_dir():
            return entries
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not LIBRARY_ID.fullmatch(folder.name):
                continue
            try:
                entries.append(summary(self.get(folder.name)))
            except UserError:
                continue
        return sorted(entries, key=lambda e: (e["name"].casefold(), -e["created"]))

    def choices(self) -> list[tuple[str, str]]:
        """(label, 'library:<id>') for pickers: 'name · 140/40/20 rows'."""
        return [(f"{e['name']} · {e['rows']['train']}/{e['rows']['val']}/{e['rows']['test']} ({e['id']})",
                 e["ref"]) for e in self.list()]

    def records(self, ref_or_id: str, split: str = "train", verify: bool = False) -> list[dict]:
        """The records of one split, metadata keys included. `verify` checks the file against its
        recorded sha256 first (training does: a run must train on exactly what it records)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}")
        meta = self.get(ref_or_id)
        path = self.folder(ref_or_id) / f"{split}.jsonl"
        if not path.is_file():
            raise UserError("library.damaged", key="data.path", ref=LIBRARY_PREFIX + meta["id"])
        data = path.read_bytes()
        if verify and sha256_bytes(data) != (meta["splits"].get(split) or {}).get("sha256"):
            raise UserError("library.changed", key="data.path", ref=LIBRARY_PREFIX + meta["id"], split=split)
        try:
            return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, ValueError):
            raise UserError("library.damaged", key="data.path", ref=LIBRARY_PREFIX + meta["id"]) from None

    # -- writing --

    def save(self, prepared, name: str) -> dict:
        """Save a `studio.prepare.Prepared` under `name`; returns its list entry (as `list()`).

        The same data saved again under a name with the same slug is the same dataset: the
        existing entry is returned and nothing is written."""
        name = (name or "").strip()
        if not name:
            raise UserError("library.name_needed", key="library.name")
        return self.save_splits(prepared.splits, prepared.info(name))

    def save_splits(self, splits: dict[str, list[dict]], info: dict) -> dict:
        """Save ready splits with their description `info` (name, format, kind, source, recipe, …)."""
        digest = dataset_hash({s: sha256_bytes(jsonl_bytes(splits.get(s) or [])) for s in SPLITS})
        folder_name = f"{slugify(info['name'])}-{digest[:8]}"
        target = self.root / folder_name
        if (target / META_FILE).is_file():
            return summary(self.get(folder_name))
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.root))
        try:
            write_dataset(scratch, splits, {**info, "id": folder_name})
            try:
                os.rename(scratch, target)
            except OSError:
                if not (target / META_FILE).is_file():  # not a concurrent save of the same data
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return summary(self.get(folder_name))

    def remove(self, ref_or_id: str) -> None:
        shutil.rmtree(self.folder(ref_or_id))


def write_dataset(folder: Path, splits: dict[str, list[dict]], info: dict) -> dict:
    """Write `<split>.jsonl` for each split and dataset.json (info + hashes) into folder; returns the meta."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes, counts = {}, {}
    for split in SPLITS:
        records = splits.get(split) or []
        blob = jsonl_bytes(records)
        (folder / f"{split}.jsonl").write_bytes(blob)
        hashes[split] = sha256_bytes(blob)
        counts[split] = {"file": f"{split}.jsonl", "rows": len(records), "sha256": hashes[split],
                         "augmented": sum(1 for r in records if r.get("_augmented"))}
    meta = {"version": VERSION, "id": info.get("id") or folder.name, **info, "hash": dataset_hash(hashes),
            "created": time.time(), "splits": counts}
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


def summary(meta: dict) -> dict:
    """The list entry of a dataset.json."""
    source = meta.get("source") or {}
    splits = meta.get("splits") or {}
    return {
        "id": meta["id"], "ref": LIBRARY_PREFIX + meta["id"], "name": str(meta.get("name") or meta["id"]),
        "format": meta.get("format"), "kind": meta.get("kind"),
        "rows": {s: int((splits.get(s) or {}).get("rows") or 0) for s in SPLITS},
        "hash": meta.get("hash"), "source": source.get("name") or source.get("path") or "",
        "created": float(meta.get("created") or 0),
    }


def to_step_dict(step: dict) -> dict:
    """A preparation step as JSON ({"step", "before", "after", "message": {code, params}})."""
    return {k: to_jsonable(v) for k, v in step.items()}


def quality_summary(report: dict | None) -> dict:
    """The part of a quality report worth keeping with the dataset: rows and finding counts."""
    if not report:
        return {}
    return {"rows": report.get("rows"),
            "findings": {f["code"]: f["count"] for f in report.get("findings") or []},
            "languages": report.get("languages") or {}}


def step_message(step: dict) -> Msg | None:
    message = step.get("message")
    if isinstance(message, dict):
        return Msg.from_dict(message)
    return message
