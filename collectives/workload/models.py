"""Transformer workloads: :class:`Model` and the published configurations in :data:`PRESETS`.

A :class:`Model` is a decoder-only transformer, dense or mixture-of-experts,
described by the numbers its paper or model card publishes. From them come the
parameter counts (what the data-parallel gradient collectives move) and the
FLOPs per token (what the accelerators compute):

Parameters (per layer; ``h`` hidden, ``a`` heads, ``g`` KV heads, ``d`` head
dimension, ``f`` FFN size, ``E`` experts, ``f_e`` expert FFN size):

* attention, grouped-query (Ainslie et al. 2023): ``h*d*(2a + 2g)`` (Q and O
  are ``h x a*d``, K and V ``h x g*d``); multi-head latent attention
  (DeepSeek-AI 2024, section 2.1.1) with ranks ``r_q``, ``r_kv``, rotary dim
  ``d_r`` and value dim ``d_v``: ``h*r_q + r_q*a*(d + d_r) + h*(r_kv + d_r)
  + r_kv*a*(d + d_v) + a*d_v*h``;
* FFN: ``3*h*f`` when gated (SwiGLU, Shazeer 2020), else ``2*h*f``;
* mixture of experts: ``E`` routed and ``S`` shared experts of
  ``3*h*f_e`` (or ``2*h*f_e``) each, and the router ``h*E``;
* embedding ``V*h``, and the output head ``V*h`` unless tied.

FLOPs per token in the forward pass: ``2`` per weight a token meets (the
matmuls: attention projections, the dense FFN or the ``k`` routed plus ``S``
shared experts of a MoE layer, the router, the output head) plus the
attention core, ``2*s*a*(d_qk + d_v)`` for the score and value products over
the full ``s x s`` matrix, as Narayanan et al. (SC 2021, section 5.1) and
PaLM's MFU (Chowdhery et al. 2022, appendix B) count it. The backward pass
costs twice the forward (Narayanan et al. 2021). Layer norms, activations and
softmax are left out (well under 1%).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Integral

from ..errors import InvalidArgument

__all__ = ["Model", "PRESETS", "preset"]


def _positive_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise InvalidArgument(f"Model {name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Model:
    """A dense or mixture-of-experts decoder-only transformer.

    Parameters
    ----------
    name : str
    layers : int
        Transformer blocks.
    hidden : int
        Model (residual stream) width ``h``.
    ffn : int
        FFN inner size of the dense layers ``f``.
    heads, kv_heads : int
        Attention (query) heads and key/value heads (``kv_heads == heads``:
        multi-head attention; fewer: grouped-query attention).
    vocab : int
        Vocabulary size ``V``.
    seq_len : int
        Training sequence length ``s`` (tokens per sample).
    experts : int
        Routed experts per MoE layer (1: a dense model).
    experts_per_token : int
        Routed experts each token goes to (top-k).
    moe_every : int
        A MoE layer every ``moe_every`` layers after the first ``first_dense``.
    moe_ffn : int, optional
        FFN inner size of one expert (default ``ffn``).
    shared_experts : int
        Experts every token goes to besides its routed ones (DeepSeekMoE).
    first_dense : int
        Leading layers that keep a dense FFN.
    head_dim : int, optional
        Query/key dimension per head (default ``hidden // heads``).
    gated_ffn : bool
        SwiGLU-style FFN with three matrices (True) or two (GELU, False).
    tied_embeddings : bool
        The output head shares the embedding matrix.
    q_lora_rank, kv_lora_rank, rope_head_dim, v_head_dim : int, optional
        Multi-head latent attention: query and key/value compression ranks,
        the decoupled rotary key dimension and the value head dimension. With
        ``kv_lora_rank`` unset the attention is grouped-query.
    source : str
        Where the numbers come from.
    """

    name: str
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    seq_len: int
    experts: int = 1
    experts_per_token: int = 1
    moe_every: int = 1
    moe_ffn: int | None = None
    shared_experts: int = 0
    first_dense: int = 0
    head_dim: int | None = None
    gated_ffn: bool = True
    tied_embeddings: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    rope_head_dim: int = 0
    v_head_dim: int | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise InvalidArgument(f"Model name must be a string, got {self.name!r}")
        for k in ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "seq_len", "experts",
                  "experts_per_token", "moe_every"):
            _positive_int(k, getattr(self, k))
        for k in ("shared_experts", "first_dense", "rope_head_dim"):
            _positive_int(k, getattr(self, k), 0)
        for k in ("moe_ffn", "head_dim", "q_lora_rank", "kv_lora_rank", "v_head_dim"):
            if getattr(self, k) is not None:
                _positive_int(k, getattr(self, k))
        if self.heads % self.kv_heads:
            raise InvalidArgument(f"Model kv_heads={self.kv_heads} must divide heads={self.heads}")
        if self.experts_per_token > self.experts:
            raise InvalidArgument(f"Model experts_per_token={self.experts_per_token} exceeds "
                                  f"experts={self.experts}")
        if self.head_dim is None and self.hidden % self.heads:
            raise InvalidArgument(f"Model hidden={self.hidden} is not a multiple of heads="
                                  f"{self.heads}: give head_dim")

    # ------------------------------------------------------------------ shape
    @property
    def d_head(self) -> int:
        """Query/key (non-rotary) dimension per head."""
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads

    @property
    def d_value(self) -> int:
        return self.v_head_dim if self.v_head_dim is not None else self.d_head

    @property
    def expert_ffn(self) -> int:
        return self.moe_ffn if self.moe_ffn is not None else self.ffn

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer ``i`` (0-based) has a mixture-of-experts FFN."""
        return (self.is_moe and i >= self.first_dense
                and (i - self.first_dense) % self.moe_every == 0)

    @property
    def moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.layers))

    def with_(self, **changes) -> "Model":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ parameters
    @property
    def attention_params(self) -> int:
        h, a, g, d = self.hidden, self.heads, self.kv_heads, self.d_head
        if self.kv_lora_rank is None:
            return h * d * a + 2 * h * g * d + a * self.d_value * h
        dr, dv, rkv = self.rope_head_dim, self.d_value, self.kv_lora_rank
        q = (h * self.q_lora_rank + self.q_lora_rank * a * (d + dr)
             if self.q_lora_rank is not None else h * a * (d + dr))
        return q + h * (rkv + dr) + rkv * a * (d + dv) + a * dv * h

    def _ffn_params(self, f: int) -> int:
        return (3 if self.gated_ffn else 2) * self.hidden * f

    @property
    def dense_ffn_params(self) -> int:
        return self._ffn_params(self.ffn)

    @property
    def expert_params(self) -> int:
        """Parameters of one expert."""
        return self._ffn_params(self.expert_ffn)

    def layer_params(self, i: int) -> tuple[int, int]:
        """``(dense, expert)`` parameters of layer ``i``: expert weights apart, since
        they are sharded over expert-parallel ranks and reduced over fewer."""
        if self.is_moe_layer(i):
            dense = (self.attention_params + self.shared_experts * self.expert_params
                     + self.hidden * self.experts)
            return dense, self.experts * self.expert_params
        return self.attention_params + self.dense_ffn_params, 0

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def params(self) -> int:
        """Total parameters."""
        return (sum(sum(self.layer_params(i)) for i in range(self.layers))
                + self.embedding_params + self.head_params)

    @property
    def active_params(self) -> int:
        """Parameters a token meets (routed experts counted ``experts_per_token`` times)."""
        total = self.embedding_params + self.head_params
        for i in range(self.layers):
            dense, _ = self.layer_params(i)
            total += dense + (self.experts_per_token * self.expert_params
                              if self.is_moe_layer(i) else 0)
        return total

    # ------------------------------------------------------------------ FLOPs
    @property
    def attention_core_flops(self) -> float:
        """Forward FLOPs per token of the score and value products (full s x s)."""
        return 2.0 * self.seq_len * self.heads * (self.d_head + self.rope_head_dim + self.d_value)

    def layer_flops(self, i: int) -> tuple[float, float]:
        """Forward FLOPs per token of layer ``i``: ``(attention, ffn)``."""
        attn = 2.0 * self.attention_params + self.attention_core_flops
        if self.is_moe_layer(i):
            ffn = 2.0 * ((self.experts_per_token + self.shared_experts) * self.expert_params
                         + self.hidden * self.experts)
        else:
            ffn = 2.0 * self.dense_ffn_params
        return attn, ffn

    @property
    def head_flops(self) -> float:
        """Forward FLOPs per token of the output head (the logits)."""
        return 2.0 * self.vocab * self.hidden

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token: 3x the forward (forward + backward), no recomputation."""
        fwd = sum(sum(self.layer_flops(i)) for i in range(self.layers)) + self.head_flops
        return 3.0 * fwd


# ---------------------------------------------------------------------- presets
PRESETS: dict[str, Model] = {
    # Brown et al., "Language Models are Few-Shot Learners", NeurIPS 2020, table 2.1
    # (96 layers, d_model 12288, 96 heads of 128, context 2048; FFN 4*d_model as in GPT-2;
    # the GPT-2 byte-level BPE vocabulary of 50257 tokens, embeddings tied).
    "gpt3-175b": Model("gpt3-175b", layers=96, hidden=12288, ffn=49152, heads=96, kv_heads=96,
                       vocab=50257, seq_len=2048, gated_ffn=False, tied_embeddings=True,
                       source="Brown et al. 2020 (GPT-3), table 2.1"),
    # Llama Team, "The Llama 3 Herd of Models", arXiv:2407.21783 (2024), table 3; vocabulary
    # and context from the Meta-Llama-3.1-70B model card configuration (128256, 8192).
    "llama3-70b": Model("llama3-70b", layers=80, hidden=8192, ffn=28672, heads=64, kv_heads=8,
                        vocab=128256, seq_len=8192,
                        source="Llama Team 2024 (Llama 3), table 3; model card config"),
    "llama3-405b": Model("llama3-405b", layers=126, hidden=16384, ffn=53248, heads=128,
                         kv_heads=8, vocab=128256, seq_len=8192,
                         source="Llama Team 2024 (Llama 3), table 3; model card config"),
    # Jiang et al., "Mixtral of Experts", arXiv:2401.04088 (2024), table 1: every layer is a
    # MoE layer of 8 experts, top-2; context 32768.
    "mixtral-8x7b": Model("mixtral-8x7b", layers=32, hidden=4096, ffn=14336, heads=32,
                          kv_heads=8, vocab=32000, seq_len=32768, experts=8,
                          experts_per_token=2,
                          source="Jiang et al. 2024 (Mixtral of Experts), table 1"),
    # DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437 (2024), section 4.2:
    # 61 layers, hidden 7168, MLA with 128 heads of 128, KV rank 512, query rank 1536,
    # rotary dim 64; MoE in every layer but the first three, 1 shared + 256 routed experts
    # of FFN size 2048, 8 routed per token; sequence 4096 in pre-training. Dense FFN size
    # 18432 and vocabulary 129280 from the released configuration. (The multi-token
    # prediction module is left out.)
    "deepseek-v3": Model("deepseek-v3", layers=61, hidden=7168, ffn=18432, heads=128,
                         kv_heads=128, vocab=129280, seq_len=4096, experts=256,
                         experts_per_token=8, moe_ffn=2048, shared_experts=1, first_dense=3,
                         head_dim=128, q_lora_rank=1536, kv_lora_rank=512, rope_head_dim=64,
                         v_head_dim=128,
                         source="DeepSeek-AI 2024 (DeepSeek-V3), section 4.2; released config"),
}


def preset(name: str) -> Model:
    """The published configuration ``name`` (one of :data:`PRESETS`).

    Raises
    ------
    collectives.errors.InvalidArgument
        For a name not in :data:`PRESETS`.
    """
    if not isinstance(name, str) or name.strip().lower() not in PRESETS:
        raise InvalidArgument(f"unknown workload preset {name!r}: accepted are "
                              f"{', '.join(PRESETS)}")
    return PRESETS[name.strip().lower()]
