"""studio.formats: detection with reasons, column mapping, normalisation (tool turns kept), texts."""

import json

import pytest

from studio.data import load_rows
from studio.errors import UserError
from studio.formats import (FORMATS, ROLES, convert, detect, for_template, map_record_text, normalise,
                            normalise_preference, record_texts, template_supports_tools, to_dataset,
                            to_records, tool_support)

ALPACA = {"instruction": "Add.", "input": "2 and 3", "output": "5"}
SHAREGPT = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
MESSAGES = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
PC = {"prompt": "q", "completion": "a"}
PREF = {"prompt": "q", "chosen": "good", "rejected": "bad"}
TEXT = {"text": "some words"}

TOOL_ROW = {
    "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": json.dumps({"temp": 21})},
        {"from": "gpt", "value": "It is 21 degrees."},
    ],
    "tools": json.dumps([{"name": "get_weather", "description": "Weather of a city",
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]),
}


@pytest.mark.parametrize("row, fmt, columns", [
    (ALPACA, "alpaca", "instruction, output, input"),
    (SHAREGPT, "sharegpt", "conversations"),
    (MESSAGES, "messages", "messages"),
    (PC, "prompt_completion", "prompt, completion"),
    (PREF, "preference", "prompt, chosen, rejected"),
    (TEXT, "text", "text"),
])
def test_each_format_is_detected_with_its_reason_and_note(row, fmt, columns):
    det = detect([row])
    assert det.format == fmt and fmt in FORMATS
    assert det.reason.code == "formats.reason" and det.reason.params["columns"] == columns
    assert fmt in str(det.reason) and columns in str(det.reason)
    assert det.columns == list(row)
    expected_note = {"text": "formats.note_text", "preference": "formats.note_preference"}.get(fmt, "formats.note_sft")
    assert det.note.code == expected_note
    assert set(det.mapping) <= set(ROLES[fmt])
    # every sentence renders in both languages with its placeholders filled
    for msg in det.messages():
        for lang in ("en", "zh"):
            assert "{" not in msg.render(lang)


def test_notes_say_how_it_trains():
    assert "SFT trains on the chosen answers; DPO uses both" in str(detect([PREF]).note)
    assert "continued pre-training on the whole text" in str(detect([TEXT]).note)
    det = detect([TOOL_ROW])
    assert det.format == "sharegpt" and det.tools
    assert "tool calls and results are kept as tool turns" in str(det.note)


def test_unused_columns_are_named():
    det = detect([dict(ALPACA, source="web", id=3)])
    assert [w.code for w in det.warnings] == ["formats.warn_unused"]
    assert "source, id" in str(det.warnings[0])


def test_mapping_override_reads_other_column_names():
    rows = [{"question": "What is 2+2?", "answer": "4", "text": "ignored"}]
    assert detect(rows).format == "text"  # without a mapping only `text` is recognised
    det = detect(rows, mapping={"instruction": "question", "output": "answer"})
    assert det.format == "alpaca"
    assert det.reason.code == "formats.reason_mapped" and "question → instruction" in str(det.reason)
    (rec,) = to_records(rows, mapping={"instruction": "question", "output": "answer"})
    assert rec["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
    assert rec["completion"] == [{"role": "assistant", "content": "4"}]
    # a mapping can also pick the text column, or a prompt/completion pair
    assert detect(rows, mapping={"text": "answer"}).mapping == {"text": "answer"}
    assert detect(rows, mapping={"prompt": "question", "completion": "answer"}).format == "prompt_completion"


def test_mapping_to_a_missing_column_names_expected_and_found():
    rows = [{"question": "q", "answer": "a"}]
    with pytest.raises(UserError) as info:
        detect(rows, mapping={"instruction": "query", "output": "answer"})
    assert str(info.value) == ("The column mapping names columns the file does not have (query); "
                               "the file's columns are: question, answer.")
    assert info.value.key == "data.mapping"
    with pytest.raises(UserError, match="unknown roles"):
        detect(rows, mapping={"questionn": "question"})


def test_missing_required_columns_say_expected_and_found():
    rows = [{"instruction": "q", "answer": "a"}]
    with pytest.raises(UserError) as info:
        detect(rows, fmt="alpaca")
    assert "The alpaca format expects the columns instruction, output; found: instruction, answer." in str(info.value)
    with pytest.raises(UserError, match="expects the columns instruction, output; found: instruction, answer"):
        detect(rows, mapping={"instruction": "instruction"})
    with pytest.raises(UserError, match="Could not recognise") as info:
        detect([{"foo": 1}])
    assert info.value.key == "data.format"
    with pytest.raises(UserError, match=r"The alpaca format expects the columns instruction, output; "
                                        r"found: instruction, response\."):
        detect([{"instruction": "q", "response": "a"}])  # the nearest layout is named
    with pytest.raises(UserError, match="preference format expects the columns prompt .or conversations., chosen, "
                                        "rejected; found: prompt, chosen"):
        detect([{"prompt": "q", "chosen": "a"}])
    with pytest.raises(UserError, match="Unknown dataset format"):
        detect(rows, fmt="yaml")
    with pytest.raises(UserError, match="no rows"):
        detect([])


def test_chosen_format_is_checked_and_explained():
    det = detect([dict(PC, text="x")], fmt="text")
    assert det.format == "text" and det.reason.code == "formats.reason_chosen"


def test_sharegpt_tool_turns_are_kept_as_tool_calls_and_results():
    (rec,) = to_records([TOOL_ROW])
    assert rec["_row"] == 1
    assert rec["prompt"] == [{"role": "user", "content": "Weather in Paris?"}]
    call, result, answer = rec["completion"]
    assert call == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert result == {"role": "tool", "content": '{"temp": 21}', "name": "get_weather"}
    assert answer == {"role": "assistant", "content": "It is 21 degrees."}
    assert rec["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_messages_tool_roles_and_tool_calls_with_string_arguments():
    row = {"messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{\"tz\": \"UTC\"}"}}]},
        {"role": "tool", "content": "12:00", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Noon."},
    ], "tools": [{"type": "function", "function": {"name": "now", "parameters": {}}}]}
    det = detect([row])
    assert det.format == "messages" and det.tools and det.note.code == "formats.note_tools"
    rec = normalise(row, "messages")
    assert [m["role"] for m in rec["prompt"]] == ["system", "user"]
    assert rec["completion"][0]["tool_calls"][0]["function"] == {"name": "now", "arguments": {"tz": "UTC"}}
    assert rec["completion"][1] == {"role": "tool", "content": "12:00", "name": "now"}
    assert rec["tools"] == row["tools"]


def test_unknown_roles_and_bad_function_calls_name_the_row():
    with pytest.raises(UserError, match="Row 2 does not have the sharegpt layout .unknown role 'narrator'"):
        to_records([SHAREGPT, {"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt", "value": "y"}]}])
    bad_call = {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "not json"},
                                  {"from": "gpt", "value": "a"}]}
    with pytest.raises(UserError, match="function_call turn is not JSON"):
        to_records([bad_call])


def test_content_parts_and_multi_turn():
    row = {"messages": [{"role": "user", "content": [{"type": "text", "value": "hi"}], "loss_weight": 0.0},
                        {"role": "assistant", "content": [{"type": "text", "text": "hello"}], "loss_weight": 1.0},
                        {"role": "user", "content": "and?"}, {"role": "assistant", "content": "bye"}]}
    rec = normalise(row, "messages", system="Be kind.")
    assert rec["prompt"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "hello"}, {"role": "user", "content": "and?"}]
    assert rec["completion"] == [{"role": "assistant", "content": "bye"}]
    assert detect([row]).warnings == []  # loss weights that agree with answer-only training: no word
    odd = {"messages": [dict(m, loss_weight=1.0) for m in row["messages"][:2]]}
    assert [w.code for w in detect([odd]).warnings] == ["formats.warn_loss_weight"]


def test_rows_with_nothing_to_learn_are_skipped():
    rows = [ALPACA, {"instruction": "q", "output": " "},
            {"conversations": [{"from": "human", "value": "q"}]},  # no answer
            {"conversations": [{"from": "gpt", "value": "a"}]}]  # no question
    assert normalise(rows[1], "alpaca") is None
    assert normalise(rows[2], "sharegpt") is None
    assert normalise(rows[3], "sharegpt") is None
    records = to_records(rows, "alpaca")
    assert [r["_row"] for r in records] == [1]


@pytest.mark.parametrize("row", [
    {"prompt": "q", "chosen": "good", "rejected": "bad"},
    {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],
     "rejected": [{"role": "assistant", "content": "bad"}]},
    {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],  # implicit prompt
     "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
    {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "good"},
     "rejected": {"from": "gpt", "value": "bad"}},
    {"prompt": [{"role": "user", "content": "q"}],  # answers that repeat the prompt
     "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
     "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
])
def test_preference_in_all_shapes(row):
    det = detect([row])
    assert det.format == "preference"
    pref = normalise_preference(row, "preference", det.mapping)
    assert pref == {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],
                    "rejected": [{"role": "assistant", "content": "bad"}]}
    (sft,) = to_records([row])
    assert sft["completion"] == [{"role": "assistant", "content": "good"}] and "rejected" not in sft
    (dpo,) = to_records([row], kind="dpo")
    assert dpo["rejected"][0]["content"] == "bad"


def test_dpo_needs_preference_data():
    with pytest.raises(UserError, match="DPO needs preference data"):
        to_records([ALPACA], kind="dpo")


def test_record_texts():
    (rec,) = to_records([dict(ALPACA, system="S")])
    assert record_texts(rec) == ("S\n\nAdd.\n\n2 and 3", "5")
    assert record_texts({"text": "t"}) == ("", "t")
    (tool,) = to_records([TOOL_ROW])
    prompt, answer = record_texts(tool)
    assert prompt == "Weather in Paris?"
    assert answer == 'get_weather({"city": "Paris"})\n\nIt is 21 degrees.'
    (pref,) = to_records([PREF], kind="dpo")
    assert record_texts(pref) == ("q", "good")


def test_map_record_text_touches_only_the_part_asked_for():
    (rec,) = to_records([dict(ALPACA, system="sys")])
    upper = str.upper
    prompt_only = map_record_text(rec, upper, "prompt")
    assert record_texts(prompt_only) == ("SYS\n\nADD.\n\n2 AND 3", "5")
    assert record_texts(map_record_text(rec, lambda s: s + "!", "answer")) == ("sys\n\nAdd.\n\n2 and 3", "5!")
    assert record_texts(map_record_text(rec, upper, "all"))[0].startswith("SYS")
    assert rec["prompt"][0]["content"] == "sys"  # the original is not changed
    assert map_record_text({"text": "a", "_row": 3}, upper, "prompt") == {"text": "A", "_row": 3}
    (tool,) = to_records([TOOL_ROW])
    mapped = map_record_text(tool, upper, "all")
    assert mapped["completion"][0]["tool_calls"] == tool["completion"][0]["tool_calls"]  # calls untouched
    assert mapped["completion"][1]["content"] == '{"temp": 21}'  # tool results untouched
    assert mapped["completion"][2]["content"] == "IT IS 21 DEGREES."
    (pref,) = to_records([PREF], kind="dpo")
    both = map_record_text(pref, upper, "answer")
    assert both["chosen"][0]["content"] == "GOOD" and both["rejected"][0]["content"] == "BAD"
    with pytest.raises(ValueError):
        map_record_text(rec, upper, "question")


def test_to_dataset_keeps_tool_arguments_as_they_are():
    rows = [TOOL_ROW, dict(TOOL_ROW, conversations=[
        {"from": "human", "value": "Sum?"},
        {"from": "function_call", "value": json.dumps({"name": "add", "arguments": {"a": 1, "b": "2"}})},
        {"from": "observation", "value": "3"}, {"from": "gpt", "value": "3"}]), SHAREGPT]
    ds = to_dataset(to_records(rows))
    assert "_row" not in ds.column_names
    assert ds[0]["completion"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}  # no None keys
    assert ds[1]["completion"][0]["tool_calls"][0]["function"]["arguments"] == {"a": 1, "b": "2"}
    assert ds[2]["tools"] is None
    assert to_dataset(to_records([TEXT])).column_names == ["text"]


def test_demo_template_cannot_express_tools_so_calls_become_text():
    from studio.models import load_tokenizer
    from studio.paths import DEMO_MODEL

    tok = load_tokenizer(str(DEMO_MODEL))
    assert tool_support(tok) == {"tools": False, "calls": False, "results": True}
    assert not template_supports_tools(tok)
    (rec,) = to_records([TOOL_ROW])
    adapted = for_template(rec, tool_support(tok))
    assert "tools" not in adapted and "get_weather" in adapted["prompt"][0]["content"]
    assert adapted["prompt"][0]["role"] == "system"
    assert adapted["completion"][0] == {"role": "assistant", "content": json.dumps(
        {"name": "get_weather", "arguments": {"city": "Paris"}})}
    text = tok.apply_chat_template(adapted["prompt"] + adapted["completion"], tokenize=False)
    assert '"city": "Paris"' in text and "<|im_start|>tool\n" in text
    ds = to_dataset([rec], tok)
    assert "tools" not in ds.column_names
    # a template that does express tools gets the record unchanged
    assert for_template(rec, {"tools": True, "calls": True, "results": True}) is rec


def test_every_shared_fixture_is_detected_and_normalised(shared):
    expected = {"alpaca_en_demo.json": "alpaca", "alpaca_zh_demo.json": "alpaca", "c4_demo.jsonl": "text",
                "dpo_en_demo.json": "preference", "glaive_toolcall_en_demo.json": "sharegpt",
                "v1_sft_demo.jsonl": "messages"}
    notes = {"text": "formats.note_text", "preference": "formats.note_preference"}
    for name, fmt in expected.items():
        rows = load_rows(str(shared / "data" / name))
        det, records = convert(rows)
        assert det.format == fmt, name
        assert len(records) == len(rows), name
        assert det.note.code == ("formats.note_tools" if "toolcall" in name else notes.get(fmt, "formats.note_sft"))
    rows = load_rows(str(shared / "data" / "glaive_toolcall_en_demo.json"))
    det, records = convert(rows)
    assert det.tools and det.mapping == {"conversations": "conversations", "tools": "tools"}
    with_calls = [r for r in records if any(m.get("tool_calls") for m in r["completion"])]
    assert with_calls and all(any(m["role"] == "tool" for m in r["completion"]) for r in with_calls)
    assert all(m["role"] in ("system", "user", "assistant", "tool") for r in records for m in r["prompt"])
    assert sum("tools" in r for r in records) > 0
    dpo = to_records(load_rows(str(shared / "data" / "dpo_en_demo.json")), kind="dpo")
    assert len(dpo) == 300 and all(r["chosen"][-1]["role"] == "assistant" for r in dpo)
    v1 = to_records(load_rows(str(shared / "data" / "v1_sft_demo.jsonl")))
    assert v1[0]["prompt"] == [{"role": "user", "content": "hi"}]


def test_records_written_out_and_read_back_convert_to_themselves(tmp_path):
    from studio.data import write_jsonl

    sft = to_records([TOOL_ROW, SHAREGPT, ALPACA | {"system": "s"}][:2])
    write_jsonl(sft, tmp_path / "sft.jsonl")
    det, again = convert(load_rows(str(tmp_path / "sft.jsonl")))
    assert det.format == "prompt_completion" and det.tools
    assert again == sft
    pref = to_records([PREF], kind="dpo")
    write_jsonl(pref, tmp_path / "pref.jsonl")
    assert to_records(load_rows(str(tmp_path / "pref.jsonl")), kind="dpo") == pref


def test_bad_tools_column_is_named_with_its_row():
    row = dict(TOOL_ROW, tools="{not json")
    assert detect([row]).tools
    with pytest.raises(UserError, match="Row 1 does not have the sharegpt layout .the tools column is not JSON"):
        to_records([row])


def test_detection_to_dict_is_json():
    det = detect([TOOL_ROW])
    data = json.loads(json.dumps(det.to_dict()))
    assert data["format"] == "sharegpt" and data["note"]["code"] == "formats.note_tools" and data["tools"]


def test_hostile_nesting_is_one_sentence():
    deep = "x"
    for _ in range(5000):
        deep = [deep]
    row = {"messages": [{"role": "user", "content": deep}, {"role": "assistant", "content": "a"}]}
    with pytest.raises(UserError, match="Row 1 does not have the messages layout"):
        to_records([row])


def test_a_template_that_refuses_tool_turns_gets_every_note():
    import copy

    from studio.formats import tool_notes
    from studio.models import load_tokenizer
    from studio.paths import DEMO_MODEL

    strict = copy.deepcopy(load_tokenizer(str(DEMO_MODEL)))
    strict.chat_template = ("{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
                            "{{ raise_exception('roles must be user or assistant') }}{% endif %}"
                            "{{ m['content'] }}{% endfor %}")
    support = tool_support(strict)
    assert support == {"tools": False, "calls": False, "results": False}
    assert [n.code for n in tool_notes(support)] == ["formats.calls_as_text", "formats.tools_as_text",
                                                     "formats.results_unsupported"]
