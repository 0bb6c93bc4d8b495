"""Speed options do not change the maths: the same per-step train loss and eval loss with and
without each one, on the demo model (benchmarks/train_speed.py measures what they gain)."""

import threading

import pytest
import torch

from helpers import fast_overrides
from studio.answer_loss import answer_loss_applies
from studio.config import StudioConfig, apply_overrides
from studio.runs import RunStore
from studio.train import build_trainer


def train_losses(tmp_path, overrides: list[str], answer_loss: bool | None = None, threads: int | None = None):
    """(per-step train losses, eval losses, whether the fast loss ran) of a short demo run, in fp32
    unless the overrides say otherwise: `auto` is bf16 on CPUs with native bf16, where rounding alone
    moves the losses by ~1e-3 and would hide a real difference in the maths."""
    cfg = apply_overrides(StudioConfig(), fast_overrides(max_steps=6, eval_every=3, **{"save_every": 100})
                          + ["precision=fp32"] + overrides)
    run = RunStore(tmp_path / f"home-{answer_loss}-{threads}").create(cfg)
    trainer, _ = build_trainer(cfg, run, threading.Event())
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
