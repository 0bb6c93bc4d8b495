"""split_records: sizes per ratio, disjoint, seeded, stratified, and refusing bad ratios."""

import pytest

from studio.clean import split_records as reexported
from studio.errors import UserError
from studio.split import split_records, split_sizes


def rows(n, **extra):
    return [{"prompt": [{"role": "user", "content": f"q{i}"}],
             "completion": [{"role": "assistant", "content": f"a{i}"}], "_row": i, **extra} for i in range(n)]


def ids(records):
    return [r["_row"] for r in records]


@pytest.mark.parametrize("n, sizes", [(10, (7, 2, 1)), (100, (70, 20, 10)), (5, (4, 1, 0)), (1, (1, 0, 0)),
                                      (0, (0, 0, 0)), (7, (5, 1, 1))])
def test_sizes_follow_the_ratios_by_largest_remainder(n, sizes):
    assert split_sizes(n, (0.7, 0.2, 0.1)) == sizes
    splits = split_records(rows(n))
    assert tuple(len(splits[s]) for s in ("train", "val", "test")) == sizes


def test_splits_are_disjoint_cover_everything_and_keep_input_order():
    data = rows(203)
    splits = split_records(data, ratios=(0.6, 0.3, 0.1), seed=3)
    seen = ids(splits["train"]) + ids(splits["val"]) + ids(splits["test"])
    assert sorted(seen) == list(range(203)) and len(set(seen)) == 203
    for part in splits.values():
        assert ids(part) == sorted(ids(part))
    assert all(any(r is d for d in data) for r in splits["train"])  # the same objects, not copies
    assert reexported is split_records


def test_the_seed_decides_the_split():
    data = rows(50)
    first = split_records(data, seed=1)
    assert split_records(data, seed=1) == first
    assert split_records(data, seed=2)["test"] != first["test"]


def test_stratify_keeps_each_groups_share_in_every_split():
    data = rows(60, task="qa")[:40] + [dict(r, task="math", _row=100 + r["_row"]) for r in rows(20)]
    splits = split_records(data, ratios=(0.5, 0.25, 0.25), stratify="task")
    for name, expected in (("train", (20, 10)), ("val", (10, 5)), ("test", (10, 5))):
        tasks = [r["task"] for r in splits[name]]
        assert (tasks.count("qa"), tasks.count("math")) == expected
    # The data pipeline keeps a source column's value as `_group`.
    grouped = [dict(r, _group="a" if i % 4 else "b") for i, r in enumerate(rows(40))]
    split = split_records(grouped, ratios=(0.5, 0.5, 0.0), stratify="_group", seed=9)
    assert sum(r["_group"] == "b" for r in split["val"]) == 5
    assert split_records(grouped, ratios=(0.5, 0.5, 0.0), stratify="task", seed=9) == split  # falls back


def test_stratify_needs_the_column():
    with pytest.raises(UserError) as info:
        split_records(rows(10), stratify="task")
    assert info.value.msg.code == "split.no_column"


@pytest.mark.parametrize("ratios, code", [
    ((0.7, 0.2, 0.2), "split.ratio_sum"), ((0.5, 0.5), "split.ratio_count"), ((1.2, -0.1, -0.1), "split.ratio_range"),
    (("a", "b", "c"), "split.bad_ratios"), ((0.0, 0.5, 0.5), "split.no_train"),
    ((float("nan"), 0.5, 0.5), "split.ratio_range"),
])
def test_bad_ratios_are_one_sentence(ratios, code):
    with pytest.raises(UserError) as info:
        split_records(rows(10), ratios=ratios)
    assert info.value.msg.code == code and info.value.key == "split.ratios"
    assert str(info.value).endswith(".")


def test_augmented_rows_are_refused_so_nothing_leaks():
    data = rows(10) + [dict(rows(1)[0], _augmented={"from": 0, "ops": ["swap"]})]
    with pytest.raises(UserError) as info:
        split_records(data)
    assert info.value.msg.code == "split.augmented"
