"""The SFT loss with the LM head run on the trained tokens only (the CPU speed path).

    trainer = AnswerLossSFTTrainer(...)         # an SFTTrainer; same arguments, same loss
    trainer.answer_loss = answer_loss_applies(trainer.model, "cpu", "lora")   # whether it may

TRL's SFTTrainer scores every position with its fused LM head on CPUs (it compacts to the
labelled positions only where Triton runs, i.e. on GPUs) and also computes entropy and token
accuracy over the whole vocabulary at each step. For a small model with a large vocabulary the
head is most of the work: SmolLM2-135M's 49,152 x 576 head is a fifth of its forward FLOPs, and
the softmax over the vocabulary is memory-bound on a CPU. Prompt tokens, padding and masked
answers do not change the loss, so this trainer runs the backbone, keeps the hidden states whose
next token is trained, and applies the head and the cross-entropy to those alone. The loss and its
normalisation are TRL's (sum of token NLL over `num_items_in_batch`, or over the batch's trained
tokens), so the curve is the same to float rounding; benchmarks/train_speed.py measures the gain.

Where the model's forward does more than backbone + head (prompt learning prepends virtual tokens
inside PEFT's forward; Gemma's logit soft-capping, Cohere's logit scale; MoE aux losses) it defers
to TRL's own loss, as it does for label smoothing, a custom loss function and evaluation outputs.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from trl import SFTTrainer

# Positions scored per head call. One batch of a CPU run fits in one chunk; above it, each chunk's
# logits are recomputed in the backward pass so at most CHUNK x vocab floats are alive at once.
CHUNK = 4096
_HEAD_CHANGING_CONFIG = ("final_logit_softcapping", "logit_scale", "output_router_logits")


def answer_loss_applies(model, device: str, method: str, processes: int = 1) -> bool:
    """The fast path is for single-process CPU runs of a plain causal LM (GPU runs get TRL's
    compacted head). With several processes the model is wrapped (DDP): calling its backbone
    directly would skip the wrapper's forward, and with it the gradient all-reduce."""
    if device != "cpu" or method in ("prefix", "prompt") or processes > 1:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config.get_text_config()
    if any(getattr(config, name, None) for name in _HEAD_CHANGING_CONFIG):
        return False
    return callable(getattr(base, "get_decoder", None)) and base.get_output_embeddings() is not None


def _chunk_nll(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    logits = head(hidden).float()  # the loss in fp32 whatever the compute dtype, as TRL does
    return F.cross_entropy(logits, labels, reduction="sum")


def answer_token_nll(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL of the trained tokens, their count): backbone once, the head on those only."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    backbone_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    hidden = base.get_decoder()(**backbone_inputs, use_cache=False).last_hidden_state
    # Position t predicts token t+1 (TRL's fused head shifts the same way, padding-free rows too).
    hidden, labels = hidden[:, :-1], labels[:, 1:]
    mask = labels != -100
    picked, targets = hidden[mask], labels[mask]
    head = base.get_output_embeddings()
    if picked.shape[0] <= CHUNK:
        nll = _chunk_nll(picked, targets, head) if picked.shape[0] else hidden.sum() * 0.0
    else:
        from torch.utils.checkpoint import checkpoint

        nll = sum(checkpoint(_chunk_nll, picked[i:i + CHUNK], targets[i:i + CHUNK], head, use_reentrant=False)
                  for i in range(0, picked.shape[0], CHUNK))
    return nll, mask.sum()


class AnswerLossSFTTrainer(SFTTrainer):
    """SFTTrainer whose training and evaluation loss run the LM head on trained tokens only."""

    answer_loss = True  # build_sft_trainer turns it off where `answer_loss_applies` says no

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if (not self.answer_loss or return_outputs or self.compute_loss_func is not None
                or self.label_smoother is not None or self.args.loss_type != "nll"):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Accelerate autocasts the model's own forward (bf16 runs); the backbone called directly
        # gets the same autocast here, so both loss paths compute in the same precision.
        with self.accelerator.autocast():
            nll, n_tokens = answer_token_nll(model, inputs)
        loss = nll / (torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else n_tokens)
                      .clamp(min=1))
        # TRL's bookkeeping that the run recorder reads: tokens trained so far (padding excluded).
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        if self.model.training:
            if "attention_mask" in inputs:
                seen = inputs["attention_mask"].sum()
            else:  # padding-free rows carry position ids instead
                seen = torch.tensor(inputs["position_ids"].size(1), device=inputs["position_ids"].device)
            self._total_train_tokens += self.accelerator.gather_for_metrics(seen).sum().item() // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss
