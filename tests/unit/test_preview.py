"""studio.preview: one example rendered as TRL tokenizes it (trained vs masked), folded cells, pages."""

import json

import pytest
from trl.data_utils import common_prefix_length

from studio.formats import to_records
from studio.preview import fold, page_rows, render_example


@pytest.fixture(scope="module")
def tok():
    from studio.models import load_tokenizer
    from studio.paths import DEMO_MODEL

    return load_tokenizer(str(DEMO_MODEL))


def trl_masks(record, tok):
    """TRL 1.16 SFTTrainer's prompt-completion tokenization (tokenize_fn), written out."""
    tools = record.get("tools")
    prompt_ids = tok.apply_chat_template(record["prompt"], tools=tools, add_generation_prompt=True,
                                         tokenize=True, return_dict=True)["input_ids"]
    ids = tok.apply_chat_template(record["prompt"] + record["completion"], tools=tools, tokenize=True,
                                  return_dict=True)["input_ids"]
    start = common_prefix_length(prompt_ids, ids)
    return ids, [0] * start + [1] * (len(ids) - start)


def joined(shown, kind=None):
    return "".join(text for text, k in shown["segments"] if kind in (None, k))


def test_alpaca_example_masks_the_prompt_and_trains_the_answer(tok):
    (rec,) = to_records([{"instruction": "Name a colour.", "input": "", "output": "Blue."}], system="Be brief.")
    shown = render_example(rec, tok)
    ids, mask = trl_masks(rec, tok)
    assert shown["tokens"] == len(ids) and shown["trained_tokens"] == sum(mask)
    assert [k for _, k in shown["segments"]] == ["masked", "trained"]
    assert joined(shown) == shown["text"] == tok.decode(ids)
    assert joined(shown, "masked") == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a colour."
                                       "<|im_end|>\n<|im_start|>assistant\n")
    assert joined(shown, "trained") == "Blue.<|im_end|>\n"
    assert shown["truncated"] is False and shown["note"] is None


def test_loss_on_all_trains_every_token(tok):
    (rec,) = to_records([{"prompt": "q", "completion": "a"}])
    shown = render_example(rec, tok, loss_on="all")
    assert shown["trained_tokens"] == shown["tokens"] and [k for _, k in shown["segments"]] == ["trained"]


def test_chinese_text_joins_back_exactly(tok):
    (rec,) = to_records([{"instruction": "识别并解释细胞理论。", "output": "细胞理论认为所有生命体都由细胞构成。"}])
    shown = render_example(rec, tok)
    ids, mask = trl_masks(rec, tok)
    assert joined(shown) == tok.decode(ids)
    assert "细胞理论认为" in joined(shown, "trained") and "识别并解释" in joined(shown, "masked")
    assert shown["trained_tokens"] == sum(mask)


def test_multi_turn_trains_only_the_last_answer(tok):
    (rec,) = to_records([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                       {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]}])
    shown = render_example(rec, tok)
    assert joined(shown, "trained") == "ciao<|im_end|>\n"
    assert "hello" in joined(shown, "masked")


def test_text_records_are_all_trained_and_cut_at_max_length(tok):
    shown = render_example({"text": "one two three"}, tok)
    assert [k for _, k in shown["segments"]] == ["trained"]
    assert shown["text"].endswith(tok.eos_token)  # TRL appends EOS to plain text
    long = render_example({"text": "word " * 400, "_row": 1}, tok, max_length=32)
    assert long["truncated"] and long["tokens"] > 32 and long["trained_tokens"] == 32
    assert long["note"].code == "preview.cut" and "first 32" in str(long["note"])


def test_too_long_conversation_is_flagged_as_left_out(tok):
    (rec,) = to_records([{"prompt": "q", "completion": "word " * 300}])
    shown = render_example(rec, tok, max_length=64)
    assert shown["truncated"] and shown["tokens"] > 64
    assert shown["note"].code == "preview.left_out" and "left out of training" in str(shown["note"])
    assert joined(shown) == shown["text"]  # shown whole: the row is left out, not cut


def test_tool_record_on_a_template_without_tools_gets_a_note_and_trains_the_call_as_text(tok):
    row = {"conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": '{"temp": 21}'},
        {"from": "gpt", "value": "It is 21 degrees."}],
        "tools": json.dumps([{"name": "get_weather", "description": "Weather", "parameters": {}}])}
    (rec,) = to_records([row])
    shown = render_example(rec, tok)
    codes = [n.code for n in shown["notes"]]
    assert codes == ["formats.calls_as_text", "formats.tools_as_text"]
    trained = joined(shown, "trained")
    assert trained.startswith('{"name": "get_weather", "arguments": {"city": "Paris"}}<|im_end|>')
    assert '<|im_start|>tool\n{"temp": 21}' in trained and trained.endswith("It is 21 degrees.<|im_end|>\n")
    assert '"description": "Weather"' in joined(shown, "masked")  # the tools, as text in the system turn


def test_preference_record_is_shown_with_the_chosen_answer(tok):
    (rec,) = to_records([{"prompt": "q", "chosen": "good", "rejected": "bad"}], kind="dpo")
    shown = render_example(rec, tok)
    assert shown["note"].code == "preview.chosen_shown"
    assert joined(shown, "trained") == "good<|im_end|>\n" and "bad" not in shown["text"]


def test_fallback_template_of_the_shared_model(shared):
    from studio.models import load_tokenizer

    tok = load_tokenizer(str(shared / "models" / "aidreams-260k"))
    (rec,) = to_records([{"instruction": "q", "output": "a"}])
    shown = render_example(rec, tok)
    ids, mask = trl_masks(rec, tok)
    assert shown["trained_tokens"] == sum(mask) and joined(shown) == tok.decode(ids)
    assert "<|assistant|>" in joined(shown, "masked")


def test_fold_makes_one_readable_line():
    assert fold(None) == "" and fold(3) == "3"
    assert fold("a\n\n  b") == "a b"
    long = fold("x" * 500, width=40)
    assert len(long) == 40 and long.endswith("…")
    conversation = [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello!"}]
    assert fold(conversation) == "human: Hi there | gpt: Hello!"
    assert fold({"role": "user", "content": [{"type": "text", "value": "hi"}]}) == "user: hi"
    tools = json.dumps([{"name": "search", "description": "d", "parameters": {"properties": {"q": {}, "n": {}}}}])
    assert fold(tools) == "search(q, n)"
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}
    assert fold(call) == "assistant: → f(x: 1)"
    many = fold([{"role": "user", "content": "word " * 100}] * 10, width=160)
    assert len(many) <= 160 and "{" not in many


def test_page_rows_pages_and_folds():
    rows = [{"id": i, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(45)]
    page, n = page_rows(rows, 1, 20)
    assert n == 3 and len(page) == 20 and page[0] == {"id": "0", "messages": "user: q0"}
    last, _ = page_rows(rows, 99, 20)
    assert [r["id"] for r in last] == ["40", "41", "42", "43", "44"]
    assert page_rows([], 1)[0] == [] and page_rows([], 1)[1] == 1
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    assert page_rows(table, 2, 20) == page_rows(rows, 2, 20)


TOOL_TEMPLATE = (  # a small template that expresses tools, tool calls and tool results (Qwen-like)
    "{% if tools %}<|im_start|>system\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n{{ m['content'] }}"
    "{% for c in m.get('tool_calls') or [] %}<tool_call>{{ c['function'] | tojson }}</tool_call>{% endfor %}"
    "<|im_end|>\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_template_with_tools_gets_the_tools_and_calls_as_they_are(tok):
    import copy

    from studio.formats import template_supports_tools

    tooled = copy.deepcopy(tok)
    tooled.chat_template = TOOL_TEMPLATE
    assert template_supports_tools(tooled)
    row = {"messages": [{"role": "user", "content": "Time?"},
                        {"role": "assistant", "content": "", "tool_calls": [
                            {"type": "function", "function": {"name": "now", "arguments": {"tz": "UTC"}}}]},
                        {"role": "tool", "content": "12:00"}, {"role": "assistant", "content": "Noon."}],
           "tools": [{"type": "function", "function": {"name": "now", "parameters": {}}}]}
    (rec,) = to_records([row])
    shown = render_example(rec, tooled)
    assert shown["notes"] == []
    ids, mask = trl_masks(rec, tooled)
    assert shown["trained_tokens"] == sum(mask) and shown["text"] == tooled.decode(ids)
    assert '<tool_call>{"name": "now", "arguments": {"tz": "UTC"}}</tool_call>' in joined(shown, "trained")
    assert '"name": "now"' in joined(shown, "masked")  # the tool's description, in the system turn


def test_assistant_only_loss_masks_tool_results_inside_the_completion(tok):
    row = {"conversations": [
        {"from": "human", "value": "Weather?"},
        {"from": "function_call", "value": json.dumps({"name": "w", "arguments": {}})},
        {"from": "observation", "value": "RESULT_21"},
        {"from": "gpt", "value": "It is 21."}]}
    (rec,) = to_records([row])
    plain = render_example(rec, tok)
    assert "RESULT_21" in joined(plain, "trained")
    shown = render_example(rec, tok, assistant_only=True)
    assert "RESULT_21" in joined(shown, "masked") and "RESULT_21" not in joined(shown, "trained")
    assert '{"name": "w", "arguments": {}}' in joined(shown, "trained") and "It is 21." in joined(shown, "trained")
    assert joined(shown) == joined(plain)


def test_fold_survives_hostile_cells():
    deep = "x"
    for _ in range(5000):
        deep = [deep]
    assert fold(deep) == "…"
    assert len(fold(list(range(100_000)))) <= 160
    assert fold({"role": "assistant", "content": "", "tool_calls": "not a list"}) == "assistant: "
    assert fold("<script>alert(1)</script>") == "<script>alert(1)</script>"  # text; the page shows it as text
    big = "word " * 200_000
    assert len(fold(big)) == 160
