"""Plain PyTorch reference of llamatron's ops and of a LLaMA model.

Every function works in whatever dtype it is given; the test-case generator
calls them with float64 tensors and gets gradients from autograd.
Layouts: activations are [B, T, H, D] (batch, time, head, head_dim).
"""
import math
from dataclasses import dataclass

import torch


# --------------------------------------------------------------------- ops

def rmsnorm(x, w, eps):
    """y = x * rsqrt(mean(x^2 over the last dim) + eps) * w."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def rope_angles(T, D, theta, offset, dtype=torch.float64, positions=None):
    """cos, sin of angle(p, i) = p * theta^(-2i/D), p = t + offset; shape [T, D/2]
    (or [B, T, D/2] for explicit position ids [B, T])."""
    i = torch.arange(D // 2, dtype=dtype)
    inv_freq = theta ** (-2.0 * i / D)
    pos = torch.arange(T, dtype=dtype) + offset if positions is None else positions.to(dtype)
    angle = pos[..., None] * inv_freq
    return angle.cos(), angle.sin()


def rope(x, theta, offset=0, positions=None):
    """Rotary embedding, "rotate half" convention, x: [B, T, H, D]; positions [B, T] or None."""
    T, D = x.shape[1], x.shape[3]
    cos, sin = rope_angles(T, D, theta, offset, x.dtype, positions)
    cos = cos[..., None, :] if positions is not None else cos[None, :, None, :]
    sin = sin[..., None, :] if positions is not None else sin[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def documents(tokens, eod, reset_attention_mask, reset_position_ids):
    """Megatron's rule (get_ltor_masks_and_position_ids) on inputs tokens [B, T]:
    allowed [B, T, T] (query i may read key j) and position ids [B, T]. Every i
    with tokens[b, i] == eod ends a document: later queries lose keys <= i, and
    positions after i count again from 0."""
    B, T = tokens.shape
    allowed = torch.ones(T, T, dtype=torch.bool).tril().repeat(B, 1, 1)
    position_ids = torch.arange(T).repeat(B, 1)
    for b in range(B):
        prev = 0
        for i in (tokens[b] == eod).nonzero().flatten().tolist():
            if reset_attention_mask:
                allowed[b, i + 1:, : i + 1] = False
            if reset_position_ids:
                position_ids[b, i + 1:] -= i + 1 - prev
                prev = i + 1
    return allowed, position_ids


def attention(q, k, v, allowed=None):
    """Causal grouped-query attention.

    q: [B, T, H, D]; k, v: [B, T, KV, D]; query head h reads KV head h // (H // KV).
    allowed: optional [B, T, T] mask (packed documents); default causal.
    Returns y [B, T, H, D] and lse [B, H, T] (log-sum-exp of the scaled,
    masked scores of each query row).
    """
    T, H, D = q.shape[1], q.shape[2], q.shape[3]
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)  # head h -> KV head h // group
    v = v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * (1.0 / math.sqrt(D))
    if allowed is None:
        allowed = torch.ones(T, T, dtype=torch.bool).tril()  # key j <= query i
    scores = scores.masked_fill(~allowed[:, None] if allowed.dim() == 3 else ~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.softmax(scores, dim=-1)
    y = torch.einsum("bhij,bjhd->bihd", probs, v)
    return y, lse


def silu(x):
    return x * torch.sigmoid(x)


def swiglu(gate, up):
    return silu(gate) * up


def embedding(ids, table):
    return table[ids.long()]


def linear(x, w):
    """y = x @ w^T with w stored [out, in] like torch.nn.Linear."""
    return x @ w.transpose(0, 1)


def cross_entropy(logits, targets, ignore_index=-100):
    """Mean over rows with target != ignore_index of logsumexp(row) - row[target]."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1).long()
    keep = targets != ignore_index
    safe_targets = torch.where(keep, targets, torch.zeros_like(targets))
    picked = logits.gather(1, safe_targets[:, None])[:, 0]
    per_row = torch.logsumexp(logits, dim=-1) - picked
    return per_row[keep].mean()


# ------------------------------------------------------------------- model

@dataclass
class LlamaConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = False

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    @classmethod
    def from_meta(cls, meta):
        """Build from string metadata (the keys written into the case files)."""
        return cls(
            vocab_size=int(meta["vocab_size"]),
            dim=int(meta["dim"]),
            n_layers=int(meta["n_layers"]),
            n_heads=int(meta["n_heads"]),
            n_kv_heads=int(meta["n_kv_heads"]),
            ffn_dim=int(meta["ffn_dim"]),
            norm_eps=float(meta["norm_eps"]),
            rope_theta=float(meta["rope_theta"]),
            tie_embeddings=meta["tie_embeddings"] == "true",
        )


def param_shapes(cfg):
    """Hugging Face parameter names -> shapes, in a fixed order."""
    V, C, F = cfg.vocab_size, cfg.dim, cfg.ffn_dim
    HD, KVD = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    shapes = {"model.embed_tokens.weight": (V, C)}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (HD, C)
        shapes[p + "self_attn.k_proj.weight"] = (KVD, C)
        shapes[p + "self_attn.v_proj.weight"] = (KVD, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, HD)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
    shapes["model.norm.weight"] = (C,)
    if not cfg.tie_embeddings:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def is_norm_weight(name):
    return "norm" in name


def forward(params, tokens, cfg, allowed=None, positions=None):
    """Logits [B, T, V] for tokens [B, T]; params: HF name -> tensor; allowed /
    positions: packed documents (see documents), default causal, 0..T-1."""
    B, T = tokens.shape
    H, KV, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    h = embedding(tokens, params["model.embed_tokens.weight"])
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        a = rmsnorm(h, params[p + "input_layernorm.weight"], cfg.norm_eps)
        q = linear(a, params[p + "self_attn.q_proj.weight"]).reshape(B, T, H, D)
        k = linear(a, params[p + "self_attn.k_proj.weight"]).reshape(B, T, KV, D)
        v = linear(a, params[p + "self_attn.v_proj.weight"]).reshape(B, T, KV, D)
        q = rope(q, cfg.rope_theta, positions=positions)
        k = rope(k, cfg.rope_theta, positions=positions)
        o, _ = attention(q, k, v, allowed)
        h = h + linear(o.reshape(B, T, H * D), params[p + "self_attn.o_proj.weight"])
        m = rmsnorm(h, params[p + "post_attention_layernorm.weight"], cfg.norm_eps)
        gate = linear(m, params[p + "mlp.gate_proj.weight"])
        up = linear(m, params[p + "mlp.up_proj.weight"])
        h = h + linear(swiglu(gate, up), params[p + "mlp.down_proj.weight"])
    h = rmsnorm(h, params["model.norm.weight"], cfg.norm_eps)
    head = params["model.embed_tokens.weight" if cfg.tie_embeddings else "lm_head.weight"]
    return linear(h, head)


def loss_and_logits(params, tokens, cfg, eod=None, reset_attention_mask=False,
                    reset_position_ids=False, eod_mask_loss=False):
    """Next-token loss on tokens [B, T+1]: inputs tokens[:, :-1], targets
    tokens[:, 1:]; with the document switches (Megatron's), masks and position
    ids from documents(), and with eod_mask_loss the targets of eod inputs are
    not counted (the mean is over the others)."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    allowed, positions = None, None
    if reset_attention_mask or reset_position_ids:
        allowed, positions = documents(inputs, eod, reset_attention_mask, reset_position_ids)
    logits = forward(params, inputs, cfg, allowed, positions)
    if eod_mask_loss:
        targets = torch.where(inputs == eod, torch.full_like(targets, -100), targets)
    return cross_entropy(logits, targets), logits
