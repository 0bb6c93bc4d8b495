"""Train / validation / test split of prepared records: seeded, disjoint, optionally stratified.

    splits = split_records(records)                                   # 7:2:1, seed 42
    splits = split_records(records, ratios=(0.8, 0.1, 0.1), seed=7, stratify="task")
    splits["train"], splits["val"], splits["test"]

Sizes: each share gets the whole part of n × ratio and the rows left over go, one each, to the
shares with the largest fractional parts (ties: train, then val, then test) — so 10 rows at
7:2:1 give exactly 7/2/1, and 5 rows give 4/1/0. With `stratify`, each group (the records' values
of that key) is split that way on its own, so every group keeps its shares; the totals can then
differ from the unstratified sizes by at most one row per group, and a group of one row goes to
train. The stratify key is looked up as given, then as `_<key>`, then as `_group` (where the
data pipeline keeps a source column's value). Rows keep their input order inside each split.

The test split is held out: training never sees it, evaluation uses it. Augment after splitting
(studio.augment.augment_splits touches "train" only); records already augmented are refused here,
since a copy of a test row in train would leak it.
"""

from __future__ import annotations

import json
import math
import random

from studio.errors import UserError

SPLITS = ("train", "val", "test")
DEFAULT_RATIOS = (0.7, 0.2, 0.1)


def check_ratios(ratios) -> tuple[float, float, float]:
    """Three shares for train, val and test: numbers 0–1 summing to 1, train above 0."""
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise UserError("split.bad_ratios", key="split.ratios", value=str(ratios)[:80]) from None
    if len(values) != 3:
        raise UserError("split.ratio_count", key="split.ratios", value=str(ratios)[:80])
    if not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise UserError("split.ratio_range", key="split.ratios", value=str(ratios)[:80])
    if abs(sum(values) - 1) > 1e-6:
        raise UserError("split.ratio_sum", key="split.ratios", total=f"{sum(values):g}")
    if values[0] <= 0:
        raise UserError("split.no_train", key="split.ratios")
    return values


def split_sizes(n: int, ratios) -> tuple[int, int, int]:
    """Rows per split for n rows (largest remainder; see the module docstring)."""
    exact = [n * r for r in ratios]
    sizes = [math.floor(x) for x in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[:n - sum(sizes)]:
        sizes[i] += 1
    return tuple(sizes)


def _group_of(record: dict, key: str):
    for name in (key, f"_{key}", "_group"):
        if name in record:
            value = record[name]
            if isinstance(value, (dict, list)):
                return json.dumps(value, sort_keys=True, ensure_ascii=False)
            return "" if value is None else str(value)
    return ""


def split_records(records: list[dict], ratios=DEFAULT_RATIOS, seed: int = 42,
                  stratify: str | None = None) -> dict[str, list[dict]]:
    """{"train", "val", "test"}: disjoint lists of the same record objects, sized by `ratios`."""
    ratios = check_ratios(ratios)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError("split.bad_seed", key="split.seed", value=str(seed)[:40])
    augmented = sum(1 for r in records if r.get("_augmented"))
    if augmented:
        raise UserError("split.augmented", key="split.ratios", count=augmented)
    if stratify:
        if not any(stratify in r or f"_{stratify}" in r or "_group" in r for r in records):
            raise UserError("split.no_column", key="split.stratify", column=stratify)
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(_group_of(record, stratify), []).append(i)
        buckets = [groups[k] for k in sorted(groups)]  # sorted: the same seed gives the same split
    else:
        buckets = [list(range(len(records)))]
    rng = random.Random(seed)
    chosen: dict[str, list[int]] = {s: [] for s in SPLITS}
    for bucket in buckets:
        bucket = list(bucket)
        rng.shuffle(bucket)
        start = 0
        for name, size in zip(SPLITS, split_sizes(len(bucket), ratios)):
            chosen[name] += bucket[start:start + size]
            start += size
    return {name: [records[i] for i in sorted(chosen[name])] for name in SPLITS}
