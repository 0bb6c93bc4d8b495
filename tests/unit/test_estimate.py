"""The estimate before Start: parameter counts match PEFT's own on the real model, step arithmetic
matches training's, and the summary reads in both languages."""

import math

import pytest

from studio import estimate as est
from studio.config import StudioConfig, set_value
from studio.i18n import Msg


def config(**values) -> StudioConfig:
    cfg = StudioConfig()
    for key, value in values.items():
        cfg = set_value(cfg, key.replace("__", "."), value)
    return cfg


def real_trainable(cfg: StudioConfig) -> tuple[int, int]:
    """(trainable, total) of the real demo model loaded for training, as PEFT counts them."""
    from peft import get_peft_model

    from studio.models import device_plan, load_model, peft_config_for

    model, _ = load_model(cfg, device_plan(cfg.train, cfg.method.method))
    peft_config = peft_config_for(cfg.method)
    if peft_config is not None:
        return get_peft_model(model, peft_config).get_nb_trainable_parameters()
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


@pytest.mark.parametrize("method", ["lora", "full", "freeze"])
def test_trainable_count_is_pefts_own(method):
    cfg = config(method__method=method, method__lora_r=8, method__freeze_layers=1)
    counts = est.count_parameters(cfg)
    assert (counts["trainable"], counts["total"]) == real_trainable(cfg)
    assert 0 < counts["trainable"] <= counts["total"]


def test_other_methods_count_on_the_skeleton():
    for method in ("dora", "rslora", "ia3", "prefix", "prompt", "qlora"):
        counts = est.count_parameters(config(method__method=method))
        assert 0 < counts["trainable"] < counts["total"], method


def test_unknown_method_is_no_crash(monkeypatch):
    import studio.models

    monkeypatch.setattr(studio.models, "peft_config_for", lambda method: None)
    info = est.estimate(config(method__method="prompt", method__num_virtual_tokens=7), rows=100)
    assert info["ok"] and info["trainable"] is None and info["share"] is None
    assert info["summary"].code == "estimate.summary_total"


def test_unreadable_model_says_so():
    info = est.estimate(config(model__path="nobody/not-a-cached-model-xyz"), rows=10)
    assert not info["ok"]
    assert info["summary"] == Msg("estimate.no_config", model="nobody/not-a-cached-model-xyz")


def test_a_setting_out_of_range_is_named_not_blamed_on_the_model():
    info = est.estimate(config(method__lora_r=0), rows=10)  # PEFT refuses r=0; the model is fine
    assert not info["ok"]
    assert info["summary"].render("en") == "No estimate: LoRA rank must be at least 1; got 0."
    assert info["summary"].render("zh").startswith("无法估算：LoRA 秩至少为 1")


@pytest.mark.parametrize("rows,batch,accum,epochs,max_steps", [
    (240, 8, 1, 3.0, 0), (241, 8, 2, 1.5, 0), (5, 8, 1, 2.0, 0), (1000, 4, 1, 3.0, 17)])
def test_steps_match_training(rows, batch, accum, epochs, max_steps):
    from studio.config import total_steps

    cfg = config(train__batch_size=batch, train__grad_accum=accum, train__epochs=epochs,
                 train__max_steps=max_steps)
    expected = max_steps or max(1, math.ceil(math.ceil(rows / batch / accum) * epochs))
    assert total_steps(rows, cfg) == expected
    assert est.estimate(cfg, rows=rows)["steps"] == expected


def test_rows_come_from_the_data_check():
    cfg = config()
    from studio.data import check_training_data

    report = check_training_data(cfg)
    info = est.estimate(cfg)
    assert info["rows"] == est.train_rows(cfg, report) > 0


def test_memory_grows_with_batch_and_length_and_method():
    small = est.estimate(config(train__batch_size=2), rows=100)
    big = est.estimate(config(train__batch_size=32), rows=100)
    full = est.estimate(config(method__method="full"), rows=100)
    dpo = est.estimate(config(method__stage="dpo", data__path="demo-dpo"), rows=100)
    lora = est.estimate(config(), rows=100)
    assert big["memory_cpu"] > small["memory_cpu"]
    assert full["memory_cpu"] > lora["memory_cpu"]
    assert dpo["memory_cpu"] > lora["memory_cpu"]
    qlora = est.estimate(config(method__method="qlora"), rows=100)
    assert qlora["memory_gpu"] < lora["memory_gpu"]


def test_summary_in_both_languages():
    info = est.estimate(config(), rows=240)
    en, zh = info["summary"].render("en"), info["summary"].render("zh")
    assert "trainable parameters" in en and "MB" in en and "steps" in en and "rough" in en
    assert "可训练参数" in zh and "步" in zh
    assert est.human_count(1_234_567) == "1.2 M" and est.human_bytes(310 * 1024 ** 2) == "310 MB"
    assert est.human_time(30) == Msg("estimate.time_s", n=30)
    assert est.human_time(600).code == "estimate.time_min"


class PagePaths:
    """The one Workspace method the handler uses: every path is allowed here."""

    def resolve_user_path(self, text, kind="data"):
        return text


def test_train_tab_line_is_escaped_text(monkeypatch):
    from studio.config import get_value
    from studio.ui.train_estimate import KEYS, estimate_text

    ctx = PagePaths()
    values = [str(get_value(config(), k)) for k in KEYS]
    line = estimate_text(ctx, config(), values, "zh")
    assert "可训练参数" in line and "<" not in line
    shown = Msg("estimate.no_config", model="<b>x</b>")
    monkeypatch.setattr("studio.estimate.estimate", lambda cfg: {"summary": shown})
    line = estimate_text(ctx, config(), values, "en")
    assert "<b>" not in line and "&lt;b&gt;" in line
