"""studio.cpu_speed computes what the kernels it replaces compute: dropout's distribution and
scaling, and attention's output and gradients (benchmarks/train_speed.py measures the gain)."""

import pytest
import torch

from studio.cpu_speed import EAGER_MAX_KEYS, BitDropout, packed_attention, packed_segments, short_eager_attention


def test_bit_dropout_keeps_1_minus_p_and_scales_what_it_keeps():
    torch.manual_seed(0)
    x = torch.randn(1_000_003)  # not a multiple of four: the last random word is partly used
    out = BitDropout(0.1).train()(x)
    kept = out != 0
    share = kept.double().mean().item()
    assert abs(share - 0.9) < 5 * (0.9 * 0.1 / x.numel()) ** 0.5  # five standard deviations
    assert torch.equal(out[kept], x[kept] * (1 / 0.9))
    assert abs(out.mean().item() - x.mean().item()) < 0.01  # inverted dropout leaves the mean alone


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_bit_dropout_mask_is_uniform_across_the_16_bit_slices(p):
    """Each random 64-bit word serves four neighbouring values: all four positions drop alike."""
    torch.manual_seed(1)
    kept = BitDropout(p).train()(torch.ones(400_000)).ne(0).view(-1, 4).double().mean(0)
    assert torch.allclose(kept, torch.full((4,), 1 - p, dtype=torch.float64), atol=5 * (p * (1 - p) / 100_000) ** 0.5)


def test_bit_dropout_follows_torch_seed_and_is_off_in_eval_and_at_zero():
    x = torch.randn(4, 33, 7)
    torch.manual_seed(5)
    a = BitDropout(0.3).train()(x)
    torch.manual_seed(5)
    b = BitDropout(0.3).train()(x)
    c = BitDropout(0.3).train()(x)
    assert torch.equal(a, b) and not torch.equal(b, c)
    assert torch.equal(BitDropout(0.3).eval()(x), x)
    assert torch.equal(BitDropout(0.0).train()(x), x)
    assert torch.equal(BitDropout(1.0).train()(x), torch.zeros_like(x))


def test_bit_dropout_gradient_is_the_mask_times_the_scale():
    x = torch.randn(64, 48, requires_grad=True)
    out = BitDropout(0.25).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float() / 0.75)


def test_bit_dropout_in_bf16_rounds_once_as_the_fp32_product_would():
    x = torch.randn(256, 64).bfloat16()
    out = BitDropout(0.05).train()(x)
    kept = out != 0
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[kept], (x[kept].float() * (1 / 0.95)).bfloat16())


class Attn(torch.nn.Module):
    def __init__(self, groups=1):
        super().__init__()
        self.num_key_value_groups, self.is_causal = groups, True


def qkv(batch, heads, kv_heads, length, dim=16, dtype=torch.float32):
    torch.manual_seed(0)
    q = torch.randn(batch, heads, length, dim, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(batch, kv_heads, length, dim, dtype=dtype, requires_grad=True) for _ in range(2))
    return q, k, v


def padding_mask(batch, length, pad):
    """SDPA's boolean mask: causal, the first row's last `pad` keys are padding."""
    mask = torch.ones(batch, 1, length, length, dtype=torch.bool).tril()
    mask[0, :, :, length - pad:] = False
    return mask


def both(module, q, k, v, mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    results = []
    for fn in (short_eager_attention, sdpa_attention_forward):
        for t in (q, k, v):
            t.grad = None
        out, _ = fn(module, q, k, v, mask, scaling=q.shape[-1] ** -0.5, **kwargs)
        out.square().sum().backward()
        results.append((out.detach(), [t.grad.clone() for t in (q, k, v)]))
    return results


@pytest.mark.parametrize("case", ["causal", "padding", "additive", "gqa"])
def test_short_attention_equals_sdpa_output_and_gradients(case):
    groups = 3 if case == "gqa" else 1
    q, k, v = qkv(3, 6, 6 // groups, 40)
    mask = None if case in ("causal", "gqa") else padding_mask(3, 40, 7)
    if case == "additive":  # eager-style masks: 0 where attended, a large negative elsewhere
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    (eager, eager_grads), (sdpa, sdpa_grads) = both(Attn(groups), q, k, v, mask)
    keep = slice(None) if case != "padding" else slice(0, 40 - 7)  # padded query rows are never trained
    assert torch.allclose(eager[:, keep], sdpa[:, keep], atol=1e-5)
    for mine, theirs in zip(eager_grads, sdpa_grads):
        assert torch.allclose(mine, theirs, atol=1e-4)


def test_short_attention_in_bf16_stays_within_rounding():
    q, k, v = qkv(2, 4, 4, 64, dtype=torch.bfloat16)
    (eager, _), (sdpa, _) = both(Attn(), q, k, v, None)
    assert torch.allclose(eager.float(), sdpa.float(), atol=3e-2, rtol=2e-2)


def test_long_batches_go_to_sdpa_itself():
    q, k, v = qkv(1, 2, 2, EAGER_MAX_KEYS + 1)
    (eager, eager_grads), (sdpa, sdpa_grads) = both(Attn(), q, k, v, None)
    assert torch.equal(eager, sdpa) and all(torch.equal(a, b) for a, b in zip(eager_grads, sdpa_grads))


def packed_rows(lengths, heads=6, kv_heads=2, dim=16, dtype=torch.float32):
    """q, k, v of examples laid end to end in one row, and cu_seq_lens marking where each starts."""
    q, k, v = qkv(1, heads, kv_heads, sum(lengths), dim, dtype)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


@pytest.mark.parametrize("fn", [short_eager_attention, packed_attention])
def test_a_padding_free_row_is_attended_example_by_example(fn):
    """Output and gradients equal SDPA run on each example alone (causal), as in a padded batch."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = [40, 17, 1, 29]
    q, k, v, cu = packed_rows(lengths)
    module = Attn(groups=3)
    out, _ = fn(module, q, k, v, None, scaling=0.25, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=40,
                max_length_k=40, position_ids=torch.cat([torch.arange(n) for n in lengths])[None])
    out.square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    parts = [sdpa_attention_forward(module, q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], None, scaling=0.25)[0]
             for s, e in zip(cu[:-1].tolist(), cu[1:].tolist())]
    reference = torch.cat(parts, dim=1)
    reference.square().sum().backward()
    assert out.shape == reference.shape == (1, sum(lengths), 6, 16)
    assert torch.allclose(out, reference, atol=1e-5)
    for mine, theirs in zip(grads, (q.grad, k.grad, v.grad)):
        assert torch.allclose(mine, theirs, atol=1e-4)


def test_examples_in_a_padding_free_row_do_not_see_each_other():
    q, k, v, cu = packed_rows([12, 9])
    first, _ = packed_attention(Attn(groups=3), q, k, v, None, cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    with torch.no_grad():
        v[:, :, :12] += 100.0  # change the first example's values only
    second, _ = packed_attention(Attn(groups=3), q, k, v, None, cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    assert not torch.allclose(first[:, :12], second[:, :12])
    assert torch.equal(first[:, 12:], second[:, 12:])


def test_a_row_the_split_cannot_serve_keeps_the_whole_row_mask():
    """Sliding windows shorter than an example, batches of several rows, a KV cache (queries
    shorter than keys): the batch is attended whole, with the mask transformers built."""
    q, k, v, cu = packed_rows([30, 10])
    assert packed_segments(q, k, {"cu_seq_lens_q": cu}) == [(0, 30), (30, 40)]
    assert packed_segments(q, k, {"cu_seq_lens_q": cu, "sliding_window": 32}) == [(0, 30), (30, 40)]
    assert packed_segments(q, k, {"cu_seq_lens_q": cu, "sliding_window": 16}) is None
    assert packed_segments(q, k, {}) is None
    assert packed_segments(q[:, :, :1], k, {"cu_seq_lens_q": cu}) is None
    two_rows = torch.cat([q, q])
    assert packed_segments(two_rows, torch.cat([k, k]), {"cu_seq_lens_q": cu}) is None
