"""The Train tab shows each method's own settings only (studio.ui.method_fields)."""

import pytest

from studio.config import METHOD_FIELDS, METHODS, StudioConfig
from studio.ui.method_fields import METHOD_KEYS, visible_fields


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_shows_exactly_its_own_settings(method):
    shown = visible_fields(method, "sft")
    assert set(shown) == set(METHOD_KEYS)
    assert {k for k, v in shown.items() if v} == set(METHOD_FIELDS[method])


def test_examples_and_dpo_beta_only_for_dpo():
    assert [k for k, v in visible_fields("prefix", "sft").items() if v] == ["method.num_virtual_tokens"]
    assert visible_fields("full", "sft") == {k: False for k in METHOD_KEYS}
    assert [k for k, v in visible_fields("full", "dpo").items() if v] == ["method.dpo_beta"]
    qlora = visible_fields("qlora", "dpo")
    assert qlora["method.quant_bits"] and qlora["method.lora_r"] and qlora["method.dpo_beta"]
    assert not qlora["method.freeze_layers"] and not qlora["method.num_virtual_tokens"]
    assert not any(visible_fields("no-such-method", "sft").values())


def test_every_method_setting_is_covered():
    method_keys = {f"method.{name}" for name in StudioConfig().method.__dataclass_fields__} - {
        "method.stage", "method.method"}
    assert method_keys == set(METHOD_KEYS)


def test_train_tab_starts_with_the_default_method_settings_only():
    import gradio as gr

    from studio.ui import method_fields

    with gr.Blocks():
        fields = {k: gr.Textbox() for k in METHOD_KEYS + ["method.method", "method.stage"]}
        with gr.Accordion() as box:
            pass
        method_fields.wire(fields, box, "lora", "sft")
    assert {k for k in METHOD_KEYS if fields[k].visible} == set(METHOD_FIELDS["lora"])
    assert box.visible
