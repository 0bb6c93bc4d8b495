"""Train tab: the estimate line under the data check (parameters, memory, steps, rough time).

    hook = train_estimate.wire(ctx, initial_config, fields, texts, lang, markdown)   # in train_tab.build: the load hook

The handler is thin: it turns the form's relevant fields into a config and renders
`studio.estimate.estimate` in the page's language. The skeleton count is cached per model and
method settings, the data check per file and settings, so a change costs little.
"""

from __future__ import annotations

import html

import gradio as gr

from studio.i18n import render

# The fields the estimate depends on (the tab wires a change of any of them).
KEYS = ["model.path", "data.path", "method.stage", "method.method", "method.lora_r", "method.lora_target",
        "method.freeze_layers", "method.num_virtual_tokens", "method.quant_bits", "train.batch_size",
        "train.max_length", "train.epochs", "train.max_steps", "train.grad_accum", "data.max_samples",
        "data.val_size", "data.test_size", "train.precision", "train.gradient_checkpointing"]


def estimate_text(ctx, base, values, lang_code) -> str:
    """The Markdown line for the form's values (one sentence when something cannot be estimated)."""
    from studio.config import set_value
    from studio.estimate import estimate

    try:
        cfg = base
        for key, value in zip(KEYS, values):
            cfg = set_value(cfg, key, value)
        ctx.resolve_user_path(cfg.model.path, "model")  # paths from the page are checked first
        ctx.resolve_user_path(cfg.data.path, "data")
        info = estimate(cfg)
    except Exception:  # the data check above already says what is wrong with the data
        return ""
    # Text, not markup: the summary may carry a model path the user typed.
    return html.escape(render(info["summary"], lang_code))


def wire(ctx, base_config, fields: dict, texts, lang, markdown: gr.Markdown):
    """Recompute on a change of any relevant field or the language; returns (fn, inputs, outputs)
    for the page's load hook."""
    inputs = [fields[k] for k in KEYS] + [lang]

    def on_change(*values):
        return estimate_text(ctx, base_config(), values[:-1], values[-1])

    gr.on([fields[k].change for k in KEYS], on_change, inputs, markdown,
          api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    texts.on_language(on_change, inputs, markdown, slow=True)
    return on_change, inputs, markdown
