"""Cleaning: each step is a choice, with counts before and after."""

import pytest

from studio.clean import CleanOptions, clean, empty_rows, fill_placeholders, record_lengths
from studio.errors import UserError
from studio.i18n import render

OFF = dict(trim=False, drop_empty=False, dedupe="off", conflicts="off")


def sft(prompt, answer, i=0, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return {"prompt": messages, "completion": [{"role": "assistant", "content": answer}], "_row": i}


def texts(records):
    return [(r["prompt"][-1]["content"], r["completion"][-1]["content"]) for r in records]


def only(steps, name):
    (step,) = [s for s in steps if s["step"] == name]
    return step


def test_trim_edits_texts_and_counts_the_rows_it_changed():
    data = [sft("  hello ", "world\n"), sft("fine", "fine"), sft("a", " b", system=" Be brief. ")]
    out, steps = clean(data, CleanOptions(**dict(OFF, trim=True)))
    assert texts(out) == [("hello", "world"), ("fine", "fine"), ("a", "b")]
    assert out[2]["prompt"][0]["content"] == "Be brief."
    step = only(steps, "trim")
    assert (step["before"], step["after"], step["changed"]) == (3, 3, 2)
    assert "2 of 3" in render(step["message"], "en")
    assert data[0]["prompt"][0]["content"] == "  hello "  # the input is not edited in place


def test_drop_empty_counts_rows_without_prompt_or_answer():
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                                                                "function": {"name": "f", "arguments": {}}}]}
    data = [sft("q", "a"), sft("q", "   "), sft("", "a"), dict(sft("q", ""), completion=[call]), {"text": " "},
            {"text": "t"}]
    out, steps = clean(data, CleanOptions(**dict(OFF, trim=True, drop_empty=True)))
    assert len(out) == 3 and out[1]["completion"] == [call] and out[2] == {"text": "t"}
    step = only(steps, "drop_empty")
    assert (step["before"], step["after"]) == (6, 3)
    pref = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": ""}]}
    assert empty_rows([pref, dict(pref, rejected=[{"role": "assistant", "content": "b"}])]) == [0]


def test_exact_duplicates_keep_the_first():
    data = [sft("q1", "a", 1), sft("q2", "b", 2), sft("q1", "a", 3), sft("q1", "a", 4)]
    out, steps = clean(data, CleanOptions(**dict(OFF, dedupe="exact")))
    assert [r["_row"] for r in out] == [1, 2]
    step = only(steps, "dedupe")
    assert (step["before"], step["after"]) == (4, 2)
    assert render(step["message"], "zh") != render(step["message"], "en")


def test_near_duplicates_use_the_threshold():
    base = "Explain how the heart pumps blood through the body to the lungs and back again, step by step"
    data = [sft(base, "answer one", 1), sft(base + " please", "answer one", 2),
            sft("What is the capital city of France and why is it famous", "Paris", 3)]
    out, _ = clean(data, CleanOptions(**dict(OFF, dedupe="near", near_threshold=0.7)))
    assert [r["_row"] for r in out] == [1, 3]
    out, _ = clean(data, CleanOptions(**dict(OFF, dedupe="exact")))
    assert len(out) == 3


def test_conflicts_keep_first_or_drop_all():
    data = [sft("q", "yes", 1), sft("other", "x", 2), sft("q", "no", 3), sft("q", "maybe", 4)]
    out, steps = clean(data, CleanOptions(**dict(OFF, conflicts="keep_first")))
    assert [r["_row"] for r in out] == [1, 2]
    assert (only(steps, "conflicts")["before"], only(steps, "conflicts")["after"]) == (4, 2)
    out, steps = clean(data, CleanOptions(**dict(OFF, conflicts="drop_all")))
    assert [r["_row"] for r in out] == [2]
    assert "3" in render(only(steps, "conflicts")["message"], "en")


def test_length_filter_counts_characters_without_a_tokenizer():
    data = [sft("ab", "c", 1), sft("abcdef", "ghij", 2), sft("a" * 50, "b" * 50, 3)]
    out, steps = clean(data, CleanOptions(**dict(OFF, min_tokens=4, max_tokens=20)))
    assert [r["_row"] for r in out] == [2]
    step = only(steps, "length")
    assert (step["before"], step["after"], step["unit"]) == (3, 1, "characters")
    assert "characters" in render(step["message"], "en") and "字符" in render(step["message"], "zh")


def test_length_filter_counts_tokens_with_the_tokenizer():
    from studio.models import load_tokenizer
    from studio.paths import DEMO_MODEL

    tokenizer = load_tokenizer(str(DEMO_MODEL), False)
    data = [sft("hi", "ok", 1), sft("tell me a long story " * 40, "ok", 2)]
    lengths = record_lengths(data, tokenizer)
    assert lengths[0] < lengths[1] and lengths[0] > len("hi") + len("ok")  # the chat template counts too
    out, steps = clean(data, CleanOptions(**dict(OFF, max_tokens=lengths[0] + 5)), tokenizer)
    assert [r["_row"] for r in out] == [1] and only(steps, "length")["unit"] == "tokens"


def test_placeholders_are_filled_before_deduplication():
    assert fill_placeholders("Hi {{ name }}, {name} and {other}", {"name": "Alice"}) == "Hi Alice, Alice and {other}"
    data = [sft("Hello {{name}}", "Hi {name}", 1), sft("Hello Alice", "Hi Alice", 2), sft("plain", "x", 3)]
    out, steps = clean(data, CleanOptions(**dict(OFF, dedupe="exact", placeholders={"name": "Alice"})))
    assert texts(out) == [("Hello Alice", "Hi Alice"), ("plain", "x")]
    assert only(steps, "placeholders")["changed"] == 1 and [s["step"] for s in steps] == ["placeholders", "dedupe"]


def test_steps_run_in_order_and_only_when_chosen():
    data = [sft(" q ", "a", 1), sft("q", "a", 2), sft("", "a", 3)]
    out, steps = clean(data, CleanOptions())
    assert [s["step"] for s in steps] == ["trim", "drop_empty", "dedupe", "conflicts"]
    assert [r["_row"] for r in out] == [1]
    assert all({"step", "before", "after", "message"} <= set(s) for s in steps)
    assert clean(data, CleanOptions(**OFF)) == (data, [])


def test_options_validate_and_round_trip():
    opts = CleanOptions(dedupe="near", near_threshold=0.9, conflicts="drop_all", max_tokens=512,
                        placeholders={"name": "Alice", "n": 3})
    assert opts.placeholders == {"name": "Alice", "n": "3"}
    assert CleanOptions.from_dict(opts.to_dict()) == opts
    assert CleanOptions.from_dict(None) == CleanOptions()
    for bad, code in [({"dedupe": "fuzzy"}, "clean.bad_choice"), ({"conflicts": "keep"}, "clean.bad_choice"),
                      ({"near_threshold": 0}, "clean.bad_threshold"), ({"max_tokens": -1}, "clean.bad_length"),
                      ({"min_tokens": 9, "max_tokens": 3}, "clean.length_order"), ({"trim": "yes"}, "clean.bad_flag"),
                      ({"placeholders": {"{x}": "1"}}, "clean.bad_placeholder_name"),
                      ({"placeholders": {"x": None}}, "clean.bad_placeholder_value"),
                      ({"dedup": "exact"}, "clean.unknown_option")]:
        with pytest.raises(UserError) as info:
            CleanOptions.from_dict(bad)
        assert info.value.msg.code == code, bad


def test_drop_empty_drops_what_the_quality_report_counts_as_empty():
    from studio.quality import quality_report

    blank_turn = sft("q", "a")
    blank_turn["prompt"][:0] = [{"role": "user", "content": " "}, {"role": "assistant", "content": "x"}]
    data = [sft("q", "a"), sft("q", " "), sft(" ", "a"), blank_turn, {"text": ""}, {"text": "t"}]
    finding = [f for f in quality_report(data)["findings"] if f["code"] == "empty"]
    assert finding and finding[0]["count"] == len(empty_rows(data)) == 4
