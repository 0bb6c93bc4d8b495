"""Speed options do not change the maths: the same per-step train loss and eval loss with and
without each one, on the demo model (benchmarks/train_speed.py measures what they gain)."""

import threading

import pytest
import torch

from helpers import fast_overrides
from studio.answer_loss import answer_loss_applies
from studio.config import StudioConfig, apply_overrides
from studio.cpu_speed import CPU_ATTENTION, PACKED_ATTENTION, BitDropout
from studio.estimate import device_plan_for
from studio.runs import RunStore
from studio.train import build_trainer


def train_losses(tmp_path, overrides: list[str], answer_loss: bool | None = None, threads: int | None = None,
                 **plan_changes):
    """(per-step train losses, eval losses, whether the fast loss ran) of a short demo run, in fp32
    unless the overrides say otherwise: `auto` is bf16 on CPUs with native bf16, where rounding alone
    moves the losses by ~1e-3 and would hide a real difference in the maths. `plan_changes` turn
    the device plan's speed options on or off (`attention`, `padding_free`, `lora_kernels`)."""
    cfg = apply_overrides(StudioConfig(), fast_overrides(max_steps=6, eval_every=3, **{"save_every": 100})
                          + ["precision=fp32"] + overrides)
    run = RunStore(tmp_path / f"home-{answer_loss}-{threads}-{sorted(plan_changes.items())}").create(cfg)
    plan = {**device_plan_for(cfg), **plan_changes}
    trainer, _ = build_trainer(cfg, run, threading.Event(), plan)
    if plan_changes.get("attention"):
        expected = CPU_ATTENTION if plan_changes["attention"] == "short_eager" else PACKED_ATTENTION
        assert trainer.model.get_base_model().config._attn_implementation == expected
    if plan_changes.get("padding_free") is not None:
        assert (trainer.data_collator.padding_free is True) == plan_changes["padding_free"]
    if answer_loss is not None:
        trainer.answer_loss = answer_loss
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        trainer.train()
    finally:
        torch.set_num_threads(before)
    history = trainer.state.log_history
    return ([h["loss"] for h in history if "loss" in h], [h["eval_loss"] for h in history if "eval_loss" in h],
            trainer.answer_loss)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_answer_only_head_gives_the_same_loss_curve(tmp_path, method):
    fast, fast_eval, used = train_losses(tmp_path, [f"method={method}"], answer_loss=True)
    slow, slow_eval, _ = train_losses(tmp_path, [f"method={method}"], answer_loss=False)
    assert used and len(fast) == len(slow) == 6 and len(fast_eval) == len(slow_eval) == 2
    assert fast == pytest.approx(slow, rel=1e-4, abs=1e-5)
    assert fast_eval == pytest.approx(slow_eval, rel=1e-4, abs=1e-5)


def test_answer_only_head_in_bf16_stays_within_rounding(tmp_path):
    """bf16 (the default on CPUs that compute it natively, emulated elsewhere): the same curve to
    within bf16's rounding (8 bits of mantissa, ~0.4 % a value)."""
    fast, fast_eval, used = train_losses(tmp_path, ["precision=bf16"], answer_loss=True)
    slow, slow_eval, _ = train_losses(tmp_path, ["precision=bf16"], answer_loss=False)
    assert used and len(fast) == len(slow) == 6
    assert fast == pytest.approx(slow, rel=2e-2)
    assert fast_eval == pytest.approx(slow_eval, rel=2e-2)


def test_answer_only_head_on_text_data_with_the_whole_row_trained(tmp_path):
    """Plain text (no prompt): every position is trained, so the head runs everywhere; same loss."""
    overrides = ["data.path=demo-en", "loss_on=all"]
    fast, _, _ = train_losses(tmp_path, overrides, answer_loss=True)
    slow, _, _ = train_losses(tmp_path, overrides, answer_loss=False)
    assert fast == pytest.approx(slow, rel=1e-4, abs=1e-5)


def test_thread_count_does_not_change_the_loss(tmp_path):
    one, _, _ = train_losses(tmp_path, [], threads=1)
    two, _, _ = train_losses(tmp_path, [], threads=2)
    assert one == pytest.approx(two, rel=1e-3)  # only the order of float sums differs


def test_the_fast_loss_is_left_to_trl_where_the_forward_does_more(tmp_path):
    class Config:
        def get_text_config(self):
            return self

    class Capped:  # Gemma-like: soft-capped logits
        config = Config()
        config.final_logit_softcapping = 30.0

    assert not answer_loss_applies(Capped(), "cpu", "lora")
    cfg = apply_overrides(StudioConfig(), fast_overrides(method="prompt", num_virtual_tokens=4))
    run = RunStore(tmp_path / "prompt").create(cfg)
    trainer, _ = build_trainer(cfg, run, threading.Event())
    assert trainer.answer_loss is False  # prompt learning adds virtual tokens inside PEFT's forward
    assert not answer_loss_applies(trainer.model, "cuda", "lora")  # GPUs: TRL compacts on Triton
    assert not answer_loss_applies(trainer.model, "cpu", "lora", processes=2)  # DDP: the wrapper must run


def test_plain_attention_on_short_batches_gives_the_same_loss_curve(tmp_path):
    fast, fast_eval, _ = train_losses(tmp_path, [], attention="short_eager", padding_free=False)
    slow, slow_eval, _ = train_losses(tmp_path, [], attention=None, padding_free=False)
    assert len(fast) == 6 and fast == pytest.approx(slow, rel=1e-4, abs=1e-5)
    assert fast_eval == pytest.approx(slow_eval, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("attention", ["packed", "short_eager"])
def test_padding_free_batches_give_the_same_loss_curve(tmp_path, attention):
    """The same rows a step, positions and loss tokens, without the padding: the same train and
    eval losses to float rounding (no dropout, whose masks follow the tensors' shapes), with
    either of the studio's CPU attentions."""
    fast, fast_eval, _ = train_losses(tmp_path, ["lora_dropout=0"], padding_free=True, attention=attention)
    slow, slow_eval, _ = train_losses(tmp_path, ["lora_dropout=0"], padding_free=False, attention=attention)
    assert len(fast) == 6 and fast == pytest.approx(slow, rel=1e-4, abs=1e-5)
    assert len(fast_eval) == 2 and fast_eval == pytest.approx(slow_eval, rel=1e-4, abs=1e-5)


def test_padding_free_plain_text_is_cut_at_max_length_as_padded_text_is(tmp_path):
    """Plain text rows longer than Max length are cut (not left out) as TRL prepares them,
    whether the batches are padded or not: the same curve."""
    import json
    import random

    words = "the model reads plain text and learns to continue it one token after another".split()
    rng = random.Random(0)
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": " ".join(rng.choices(words, k=rng.randint(5, 60)))}) + "\n"
                            for _ in range(60)))
    overrides = ["lora_dropout=0", f"data.path={data}", "loss_on=all", "max_length=48"]
    fast, fast_eval, _ = train_losses(tmp_path, overrides, padding_free=True)
    slow, slow_eval, _ = train_losses(tmp_path, overrides, padding_free=False)
    assert len(fast) == 6 and fast == pytest.approx(slow, rel=1e-4, abs=1e-5)
    assert fast_eval == pytest.approx(slow_eval, rel=1e-4, abs=1e-5)


def first_batch(tmp_path, overrides: list[str]) -> dict:
    cfg = apply_overrides(StudioConfig(), fast_overrides(max_steps=1) + overrides)
    run = RunStore(tmp_path / "-".join(overrides)).create(cfg)
    trainer, _ = build_trainer(cfg, run, threading.Event())
    return next(iter(trainer.get_train_dataloader()))


def test_a_cpu_run_batches_without_padding_and_prompt_learning_keeps_its_rows(tmp_path):
    """The default plan on a CPU: one row of examples end to end (no attention mask, every
    position a token of some example). Prompt tuning prepends virtual tokens row by row, and
    NEFTune scales its noise by the row's length: their batches keep one row per example."""
    packed = first_batch(tmp_path, [])
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert packed["cu_seq_lens_q"].numel() == 4 + 1  # fast_overrides' batch of 4 examples
    padded = first_batch(tmp_path, ["method=prompt", "num_virtual_tokens=4"])
    assert padded["input_ids"].shape[0] == 4 and "attention_mask" in padded
    noisy = first_batch(tmp_path, ["neftune_alpha=5"])  # NEFTune's noise scales with the row's length
    assert noisy["input_ids"].shape[0] == 4 and "attention_mask" in noisy


def test_lora_inputs_kept_in_bf16_give_the_same_loss_curve(tmp_path):
    """Without dropout the only change is skipping PEFT's bf16 -> fp32 -> bf16 input round trip:
    the same numbers, so the same curve to float noise."""
    overrides = ["precision=bf16", "lora_dropout=0"]
    fast, fast_eval, _ = train_losses(tmp_path, overrides, lora_kernels=True)
    slow, slow_eval, _ = train_losses(tmp_path, overrides, lora_kernels=False)
    assert len(fast) == 6 and fast == pytest.approx(slow, rel=1e-3)
    assert fast_eval == pytest.approx(slow_eval, rel=1e-3)


def test_16_bit_dropout_masks_give_the_curve_within_dropout_noise(tmp_path):
    """Other random masks from the same distribution: the curve moves by dropout's own noise
    (measured: under 1 %), not by a change in the maths (which would show as a drift)."""
    fast, _, _ = train_losses(tmp_path, ["lora_dropout=0.1"], lora_kernels=True)
    slow, _, _ = train_losses(tmp_path, ["lora_dropout=0.1"], lora_kernels=False)
    assert len(fast) == 6 and fast != slow  # the masks did differ
    assert fast == pytest.approx(slow, rel=2e-2)


def test_the_lora_kernels_replace_every_lora_dropout(tmp_path):
    cfg = apply_overrides(StudioConfig(), fast_overrides(max_steps=1) + ["lora_dropout=0.1"])
    run = RunStore(tmp_path / "kernels").create(cfg)
    plan = {**device_plan_for(cfg), "lora_kernels": True}
    trainer, _ = build_trainer(cfg, run, threading.Event(), plan)
    dropouts = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout) and m.p == 0.1]
    assert dropouts and all(isinstance(m, BitDropout) for m in dropouts)
    assert "16-bit dropout masks" in (run.path / "logs.txt").read_text()


def test_the_command_trains_without_bitsandbytes_unless_quantized(tmp_path):
    """`studio train` in its own process (cli.entry) leaves bitsandbytes unimported for a LoRA run;
    the run completes and the process exits 0 with everything saved. The garbage collector, paused
    while the libraries imported, is back on, with the import-time objects frozen (studio.startup)."""
    import subprocess
    import sys

    script = ("import sys; from studio import cli; cli._OWN_PROCESS = True; "
              f"code = cli.main(['--home', {str(tmp_path)!r}, 'train', *{fast_overrides(max_steps=2)!r}]); "
              "print('BNB', sys.modules.get('bitsandbytes') is not None); "
              "import gc; print('GC', gc.isenabled(), gc.get_freeze_count() > 100_000); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "BNB False" in done.stdout
    assert "GC True True" in done.stdout
    assert list(tmp_path.glob("runs/*/adapter/adapter_model.safetensors"))


def test_a_qlora_command_keeps_bitsandbytes(monkeypatch):
    import sys

    from studio import cli

    monkeypatch.delitem(sys.modules, "peft", raising=False)
    before = sys.modules.get("bitsandbytes", "absent")
    cli._skip_bitsandbytes_unless_quantized(apply_overrides(StudioConfig(), ["method=qlora"]))
    assert sys.modules.get("bitsandbytes", "absent") is before
