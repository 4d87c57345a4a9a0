#!/usr/bin/python3
"""PyTorch eager CPU training-throughput benchmark for a LLaMA-shaped model.

This is the comparison side of `benchmarks/train_throughput.sh`: it builds a
plain LLaMA (pre-norm blocks with RMSNorm, RoPE rotate-half with theta 10000,
causal grouped-query attention, SwiGLU MLP, final RMSNorm, untied LM head) in
torch itself and measures full training steps -- forward, cross-entropy mean,
backward and a torch.optim.AdamW step -- on random token data.

In bf16 mode the parameters and activations are bfloat16 (model.to(bf16));
in fp32 mode everything is float32. Warmup steps are not timed; the median of
the timed steps is reported as one line:

    torch_eager_cpu dtype=bf16 threads=2 tokens_per_s=1234.5 step_ms=678.9

where tokens per step = batch * seq. Needs only torch (>= 1.13) and Python.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * rms * self.weight


def rope_tables(seq, head_dim, theta=10000.0):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    ang = torch.outer(torch.arange(seq).float(), inv_freq)  # [T, hd/2]
    ang = torch.cat([ang, ang], dim=-1)                      # [T, hd]
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    # x: [B, heads, T, hd]; rotate-half convention.
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, dim, heads, kv_heads, ffn):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.attn_norm = RMSNorm(dim)
        self.wq = nn.Linear(dim, heads * self.hd, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.wo = nn.Linear(heads * self.hd, dim, bias=False)
        self.mlp_norm = RMSNorm(dim)
        self.gate = nn.Linear(dim, ffn, bias=False)
        self.up = nn.Linear(dim, ffn, bias=False)
        self.down = nn.Linear(ffn, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.wk(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        v = self.wv(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Query head h reads kv head h // (heads // kv_heads).
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-2, -1)) * (self.hd ** -0.5)
        scores = scores.masked_fill(mask, float("-inf"))
        att = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        o = (att @ v).transpose(1, 2).reshape(B, T, self.heads * self.hd)
        x = x + self.wo(o)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(
            Block(a.dim, a.heads, a.kv_heads, a.ffn) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.lm_head = nn.Linear(a.dim, a.vocab, bias=False)
        cos, sin = rope_tables(a.seq, a.dim // a.heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.ones(a.seq, a.seq, dtype=torch.bool).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, tokens, targets):
        x, T = self.embed(tokens), tokens.shape[1]
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.float().flatten(0, 1), targets)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("vocab", 8192), ("dim", 512), ("layers", 8),
                          ("heads", 8), ("kv-heads", 2), ("ffn", 1408),
                          ("batch", 8), ("seq", 256), ("threads", 2),
                          ("warmup", 2), ("steps", 5), ("seed", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    a = p.parse_args()
    assert a.dim % a.heads == 0 and a.heads % a.kv_heads == 0

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = Llama(a).to(dtype)  # rope tables and activations follow dtype
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:].reshape(-1)

    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"dtype={a.dtype} B={a.batch} T={a.seq} dim={a.dim} L={a.layers} "
          f"H={a.heads} KV={a.kv_heads} ffn={a.ffn} vocab={a.vocab} "
          f"params={sum(t.numel() for t in model.parameters())}")
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(inputs, targets)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
    step_s = statistics.median(times)
    print(f"torch_eager_cpu dtype={a.dtype} threads={a.threads} "
          f"tokens_per_s={a.batch * a.seq / step_s:.1f} "
          f"step_ms={step_s * 1e3:.1f}")


if __name__ == "__main__":
    main()
