"""Which method settings the Train tab shows: each method only its own (studio.config.METHOD_FIELDS),
and the DPO beta only for the DPO stage.

    shown = visible_fields("prefix", "sft")       # {"method.lora_r": False, …, "method.num_virtual_tokens": True}
    wire(fields, box)                             # in train_tab.build: initial visibility + .change on method/stage

No gradio in `visible_fields`, so it is unit-tested without a UI.
"""

from __future__ import annotations

from studio.config import METHOD_FIELDS

# Every method setting the form may hide: the union of METHOD_FIELDS plus the DPO-only beta.
METHOD_KEYS = sorted({k for keys in METHOD_FIELDS.values() for k in keys} | {"method.dpo_beta"})


def visible_fields(method: str, stage: str) -> dict[str, bool]:
    """{method setting key: shown?} for this method and stage (an unknown method shows none)."""
    own = set(METHOD_FIELDS.get(method, []))
    if stage == "dpo":
        own.add("method.dpo_beta")
    return {key: key in own for key in METHOD_KEYS}


def wire(fields: dict, box, method: str, stage: str) -> None:
    """Show only `method`'s settings now, and again whenever method or stage changes. `box` is the
    accordion holding them: it hides too when the method has no settings (full fine-tuning, SFT)."""
    import gradio as gr

    keys = [k for k in METHOD_KEYS if k in fields]
    shown = visible_fields(method, stage)
    for key in keys:
        fields[key].visible = shown[key]
    box.visible = any(shown[k] for k in keys)

    def on_change(method_value, stage_value):
        now = visible_fields(method_value, stage_value)
        return [gr.update(visible=now[k]) for k in keys] + [gr.update(visible=any(now[k] for k in keys))]

    gr.on([fields["method.method"].change, fields["method.stage"].change], on_change,
          [fields["method.method"], fields["method.stage"]], [fields[k] for k in keys] + [box],
          api_visibility="private", queue=False, show_progress="hidden")
