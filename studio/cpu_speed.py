"""CPU training speed-ups that keep the maths: LoRA dropout masks drawn 16 bits at a time, no
dtype round trips for LoRA inputs under bf16 autocast, plain attention for short bf16 batches, and
padding-free batches attended example by example.

    speed_up_lora(trainer.model, autocast_bf16=plan["bf16"])   # after the trainer wrapped the model
    model.set_attn_implementation(register_cpu_attention(plan["attention"]))   # CPU runs

Measured with torch's profiler on a LoRA run of a 7.3M-parameter Llama on 2 Zen 4 cores (bf16):
PEFT's `nn.Dropout` on each LoRA input was a fifth of the step. Torch's CPU `bernoulli_` draws one
32-bit Mersenne-Twister number per element (1.4 ms for 8 x 128 x 256 values); `BitDropout` draws
one 64-bit number per four elements and compares each 16-bit slice with p (0.5 ms), which is the
same Bernoulli(1 - p) mask to 1/65,536 in p, from torch's own seeded generator (so a seed still
fixes a run, and resuming restores it). Inputs: PEFT casts each LoRA layer's input to its fp32
weights and autocast casts it back to bf16 for the matmul, two copies of every activation a layer;
under autocast skipping both is exact (bf16 -> fp32 -> bf16 is the identity, the dropout's product
rounds once either way).

Attention: torch's fused CPU kernel (SDPA's flash path) is slow in bf16 on short sequences; timed
forward + backward on 2 Zen 4 cores, batch 8, SmolLM2-135M's heads: 20 ms at 128 keys against
10 ms for the plain matmul-softmax-matmul, about even at 192, 37 against 63 ms at 256 (and the plain
path's memory grows with the square of the length). `CPU_ATTENTION` runs the plain path up to
EAGER_MAX_KEYS keys and hands longer batches, and anything else, to transformers' SDPA function,
batch by batch, so the kernel follows each padded batch's real length, not the max length.
`PACKED_ATTENTION` (fp32 runs, where the fused kernel is the faster one) is SDPA alone.

Padding-free batches (device_plan's `padding_free`: TRL's collator lays a batch's examples end to
end in one row, with `cu_seq_lens_q` marking where each starts): both attentions attend each
example on its own, causally, rather than the whole row under transformers' block-diagonal mask,
whose cost grows with the square of the row. The linear layers then skip the padding, a fifth of
the tokens on the benchmark's rows: measured on SmolLM2-135M's shape, 8 examples of 64-120 tokens,
2 Zen 4 cores, a training step took 3.5-3.7 s padding-free against 4.3-4.5 s padded in fp32, and
2.45-2.55 s against 2.85-2.98 s in bf16.
"""

from __future__ import annotations

import torch

CPU_ATTENTION = "studio_cpu"  # the attention implementation names registered below: bf16 runs
PACKED_ATTENTION = "studio_cpu_packed"  # fp32 runs (SDPA, padding-free batches example by example)
EAGER_MAX_KEYS = 160  # measured crossover: plain attention is faster up to here in bf16
# Attention variants that only transformers' SDPA path (with its mask) computes right.
_SPECIAL_KEYS = ("softcap", "position_bias", "s_aux", "sinks")
_SLICES = 4  # int16 slices per random int64
_LEVELS = 1 << 16


class BitDropout(torch.nn.Dropout):
    """nn.Dropout (inverted: kept values scaled by 1 / (1 - p)) with a cheaper random mask on CPUs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        if self.p >= 1.0:
            return x * 0.0
        n = x.numel()
        words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-n // _SLICES),), dtype=torch.int64)
        slices = words.view(torch.int16)[:n].view(x.shape)  # each uniform on [-32768, 32767]
        keep = slices >= round(self.p * _LEVELS) - _LEVELS // 2  # P(keep) = 1 - p (to 2**-17)
        return x * keep * (1.0 / (1.0 - self.p))  # the scale multiplies in fp32 and rounds once


def speed_up_lora(model, autocast_bf16: bool) -> int:
    """Swap the LoRA layers' dropouts for BitDropout and, under bf16 autocast, keep their inputs in
    bf16; returns how many LoRA layers changed. A no-op for models without LoRA layers."""
    changed = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is torch.nn.Dropout:
                dropouts[name] = BitDropout(dropout.p)
        # Plain LoRA only: DoRA and the other variants do more with the input than one matmul.
        plain = hasattr(module, "cast_input_dtype_enabled") and not getattr(module, "lora_variant", None)
        if autocast_bf16 and plain:
            module.cast_input_dtype_enabled = False
        changed += 1
    return changed


def short_eager_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                          eager_max_keys=EAGER_MAX_KEYS, **kwargs):
    """Matmul-softmax-matmul for short CPU batches (as transformers' eager attention computes it),
    transformers' SDPA function for everything else. Takes SDPA's masks (bool, or additive floats).
    A padding-free batch (one row of several examples, `cu_seq_lens_q` marking where each starts)
    is attended example by example, see `packed_segments`."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if (segments := packed_segments(query, key, kwargs)) is not None:
        rest = {k: v for k, v in kwargs.items() if k not in _PACKED_KEYS}
        parts = [short_eager_attention(module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None, dropout,
                                       scaling, is_causal, eager_max_keys, **rest)[0] for s, e in segments]
        return torch.cat(parts, dim=1), None
    q_len, kv_len = query.shape[2], key.shape[2]
    causal = (is_causal if is_causal is not None else getattr(module, "is_causal", True)) and q_len > 1
    special = any(kwargs.get(name) is not None for name in _SPECIAL_KEYS)
    if (query.device.type != "cpu" or kv_len > eager_max_keys or special
            or (attention_mask is None and causal and q_len != kv_len)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    if attention_mask is None and causal:  # SDPA would have used is_causal
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril()
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def packed_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA, with a padding-free batch attended example by example (the fp32 implementation:
    plain attention is not faster than the fused kernel there)."""
    return short_eager_attention(module, query, key, value, attention_mask, eager_max_keys=0, **kwargs)


_PACKED_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx", "position_ids")


def packed_segments(query, key, kwargs: dict) -> list[tuple[int, int]] | None:
    """[(start, end)] of each example in a padding-free CPU batch, or None to attend the batch whole.

    Transformers keeps packed examples apart with a block-diagonal mask over the whole row, so
    attention costs the square of the row's length: 8 examples of 100 tokens, 64 times the work of
    one. Attended one by one with a causal mask, it is 8 times one, the same as the padded batch
    without its padding. Sliding-window and the other special attentions keep the whole-row mask."""
    cu = kwargs.get("cu_seq_lens_q")
    if (cu is None or query.device.type != "cpu" or query.shape[0] != 1 or query.shape[2] != key.shape[2]
            or any(kwargs.get(name) is not None for name in _SPECIAL_KEYS)):
        return None
    bounds = cu.tolist()
    if len(bounds) < 3 or bounds[0] != 0 or bounds[-1] != query.shape[2]:
        return None
    window = kwargs.get("sliding_window")
    if window and max(e - s for s, e in zip(bounds, bounds[1:])) > window:
        return None
    return list(zip(bounds, bounds[1:]))


def register_cpu_attention(kind: str = "short_eager") -> str:
    """Register the studio's CPU attentions (with SDPA's mask format) with transformers; returns the
    name of the one the device plan's `attention` names ("short_eager" for bf16, "packed" for fp32)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(CPU_ATTENTION, short_eager_attention)
    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    for name in (CPU_ATTENTION, PACKED_ATTENTION):
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    return CPU_ATTENTION if kind == "short_eager" else PACKED_ATTENTION
