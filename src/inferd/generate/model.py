"""Decoder-only causal LMs from a Hugging Face folder, run over a ragged batch with a KV cache.

transformers' models take one padded batch whose sequences start and stop together; continuous
batching needs a step in which some sequences read a whole prompt (prefill) while others add
one token (decode), each against its own cache. So inferd runs the weights of a GPT-2 or
Llama-style checkpoint (config.json + model.safetensors) in its own small forward pass:

- every token of the step is one row: the projections and MLPs run on all rows at once;
- keys and values are written to the cache at (slot, position) of their sequence;
- attention is per group: all decoding sequences in one masked call over their cached
  prefixes, and each prefill over its own prompt with a causal mask;
- logits are computed only for the rows that need them (each sequence's last token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional

from inferd.errors import SpecError


@dataclass(frozen=True)
class ModelShape:
    """What the engine must know about a checkpoint to size its cache and validate requests."""

    architecture: str
    """"gpt2" or "llama"."""
    vocab_size: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    max_positions: int
    """The longest context the checkpoint supports."""
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]


@dataclass
class StepBatch:
    """One engine step's tokens as rows, and how they group into sequences."""

    input_ids: Tensor
    """[rows] token ids."""
    positions: Tensor
    """[rows] each token's position in its sequence."""
    slots: Tensor
    """[rows] each token's cache slot (its sequence's)."""
    decode_rows: Tensor
    """[decodes] rows of the sequences adding one token, all attended to in one call."""
    decode_lengths: Tensor
    """[decodes] context length of each of those sequences, the new token included."""
    prefills: list[tuple[int, int, int]]
    """(first row, row count, slot) of each sequence reading its prompt from position 0."""
    logit_rows: Tensor
    """Rows whose next-token logits are wanted, in the order the caller wants them."""


class KVCache:
    """Preallocated keys and values: [layers][slots, kv_heads, max_positions, head_dim]."""

    def __init__(self, shape: ModelShape, slots: int, dtype: torch.dtype) -> None:
        size = (slots, shape.kv_heads, shape.max_positions, shape.head_dim)
        self.keys = [torch.zeros(size, dtype=dtype) for _ in range(shape.layers)]
        self.values = [torch.zeros(size, dtype=dtype) for _ in range(shape.layers)]
        self.slots = slots

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.exists():
        raise SpecError(f"{folder} has no config.json; a generation model is a Hugging Face folder")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _eos_ids(config: dict[str, Any]) -> tuple[int, ...]:
    eos = config.get("eos_token_id")
    if eos is None:
        return ()
    return tuple(eos) if isinstance(eos, list) else (int(eos),)


def _rope_theta(config: dict[str, Any]) -> float:
    """The RoPE base: transformers 4 writes rope_theta and rope_scaling at the top level,
    transformers 5 nests both in rope_parameters. Scaled RoPE (llama3, yarn, ...) is refused."""
    nested = config.get("rope_parameters") or {}
    for rope in (nested, config.get("rope_scaling") or {}):
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind != "default":
            raise SpecError(f"rope type {kind!r} is not supported; inferd runs plain RoPE")
    return float(config.get("rope_theta") or nested.get("rope_theta") or 10_000.0)


_UNSUPPORTED: dict[str, dict[str, tuple[object, ...]]] = {
    "gpt2": {
        "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
        "scale_attn_by_inverse_layer_idx": (False, None),
        "reorder_and_upcast_attn": (False, None),
    },
    "llama": {"attention_bias": (False, None), "mlp_bias": (False, None)},
}
"""Config options whose other values this forward pass does not implement (refused, never
silently run wrong)."""


def _check_supported(config: dict[str, Any], kind: str, folder: Path) -> None:
    for key, allowed in _UNSUPPORTED[kind].items():
        value = config.get(key, allowed[0])  # absent: the architecture's default
        if value not in allowed:
            raise SpecError(
                f"{folder}/config.json: {key} = {value!r} is not supported by "
                f"inferd's {kind} engine (it runs {allowed[0]!r})"
            )


def read_shape(folder: Path) -> ModelShape:
    config = _config(folder)
    kind = config.get("model_type")
    if kind in _UNSUPPORTED:
        _check_supported(config, kind, folder)
    if kind == "gpt2":
        heads = int(config["n_head"])
        return ModelShape(
            "gpt2",
            int(config["vocab_size"]),
            int(config["n_layer"]),
            heads,
            heads,
            int(config["n_embd"]) // heads,
            int(config["n_positions"]),
            config.get("bos_token_id"),
            _eos_ids(config),
        )
    if kind == "llama":
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        if heads % kv_heads:
            raise SpecError(f"{heads} attention heads do not split into {kv_heads} kv groups")
        _rope_theta(config)  # refuse a RoPE this forward pass would silently get wrong
        return ModelShape(
            "llama",
            int(config["vocab_size"]),
            int(config["num_hidden_layers"]),
            heads,
            kv_heads,
            int(config.get("head_dim") or int(config["hidden_size"]) // heads),
            int(config["max_position_embeddings"]),
            config.get("bos_token_id"),
            _eos_ids(config),
        )
    raise SpecError(
        f"{folder}/config.json: model_type {kind!r} is not supported; inferd runs gpt2 and "
        "llama-style decoder-only models"
    )


def _load_weights(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file  # imported here: only generation models need it

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SpecError(f"{folder} has no .safetensors weights (pickled .bin files are not loaded)")
    weights: dict[str, Tensor] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights


class CausalLM:
    """The forward pass of one checkpoint over a StepBatch (inference only, no autograd)."""

    def __init__(self, folder: Path, dtype: torch.dtype = torch.float32) -> None:
        self.shape = read_shape(folder)
        self.config = _config(folder)
        self.dtype = dtype
        raw = _load_weights(folder)
        self._w = {k: v.to(dtype) for k, v in raw.items()}
        self._check_weights(folder)
        if self.shape.architecture == "llama":
            self._rope_cache = self._rope_tables()

    # --- weights ------------------------------------------------------------------------

    def _get(self, name: str) -> Tensor:
        return self._w[name]

    def _check_weights(self, folder: Path) -> None:
        needed = (
            ["transformer.wte.weight"]
            if self.shape.architecture == "gpt2"
            else ["model.embed_tokens.weight"]
        )
        missing = [n for n in needed if n not in self._w]
        if missing:
            raise SpecError(f"{folder}: weights lack {', '.join(missing)}")

    def _lm_head(self) -> Tensor:
        if "lm_head.weight" in self._w:
            return self._w["lm_head.weight"]
        embedding = (
            "transformer.wte.weight"
            if self.shape.architecture == "gpt2"
            else ("model.embed_tokens.weight")
        )
        return self._w[embedding]  # tied embeddings

    # --- the forward pass ---------------------------------------------------------------

    @torch.inference_mode()
    def forward(self, batch: StepBatch, cache: KVCache) -> Tensor:
        """Logits [len(logit_rows), vocab] for the wanted rows; the cache gains every row."""
        if self.shape.architecture == "gpt2":
            hidden = self._gpt2(batch, cache)
        else:
            hidden = self._llama(batch, cache)
        return hidden[batch.logit_rows] @ self._lm_head().T

    def _attend(
        self, layer: int, q: Tensor, k: Tensor, v: Tensor, batch: StepBatch, cache: KVCache
    ) -> Tensor:
        """q, k, v: [rows, heads(kv_heads), head_dim] → [rows, heads * head_dim]."""
        keys, values = cache.keys[layer], cache.values[layer]
        keys[batch.slots, :, batch.positions] = k
        values[batch.slots, :, batch.positions] = v
        out = torch.empty_like(q)
        gqa = self.shape.heads != self.shape.kv_heads
        if batch.decode_rows.numel():
            out[batch.decode_rows] = self._attend_decodes(q, keys, values, batch, gqa)
        for first, count, slot in batch.prefills:
            q_rows = q[first : first + count].transpose(0, 1)
            out[first : first + count] = functional.scaled_dot_product_attention(
                q_rows,
                keys[slot, :, :count],
                values[slot, :, :count],
                is_causal=True,
                enable_gqa=gqa,
            ).transpose(0, 1)
        return out.reshape(out.shape[0], -1)

    @staticmethod
    def _attend_decodes(
        q: Tensor, keys: Tensor, values: Tensor, batch: StepBatch, gqa: bool
    ) -> Tensor:
        """One masked attention call for every decoding sequence over its cached prefix.

        Slots are handed out lowest first, so the decoding ones are usually a compact run
        from 0: the cache is then read in place (a view) with idle slots masked, instead of
        copying each sequence's keys and values out of it every layer.
        """
        slots = batch.slots[batch.decode_rows]
        longest = int(batch.decode_lengths.max())
        span = int(slots.max()) + 1
        compact = span <= 2 * slots.numel()
        if compact:
            queries = q.new_zeros((span, q.shape[1], 1, q.shape[2]))
            queries[slots] = q[batch.decode_rows].unsqueeze(2)
            lengths = torch.ones(span, dtype=torch.long)  # an idle slot attends to one place
            lengths[slots] = batch.decode_lengths
            k_ctx, v_ctx = keys[:span, :, :longest], values[:span, :, :longest]
        else:
            queries = q[batch.decode_rows].unsqueeze(2)
            lengths = batch.decode_lengths
            k_ctx, v_ctx = keys[slots, :, :longest], values[slots, :, :longest]
        mask = torch.arange(longest)[None, :] < lengths[:, None]
        attended = functional.scaled_dot_product_attention(
            queries, k_ctx, v_ctx, attn_mask=mask[:, None, None, :], enable_gqa=gqa
        ).squeeze(2)
        return attended[slots] if compact else attended

    def _gpt2(self, batch: StepBatch, cache: KVCache) -> Tensor:
        w = self._get
        eps = float(self.config.get("layer_norm_epsilon", 1e-5))
        width = self.shape.heads * self.shape.head_dim
        x = (
            w("transformer.wte.weight")[batch.input_ids]
            + w("transformer.wpe.weight")[batch.positions]
        )
        for i in range(self.shape.layers):
            p = f"transformer.h.{i}."
            h = functional.layer_norm(x, (width,), w(p + "ln_1.weight"), w(p + "ln_1.bias"), eps)
            qkv = torch.addmm(w(p + "attn.c_attn.bias"), h, w(p + "attn.c_attn.weight"))
            q, k, v = (
                t.reshape(-1, self.shape.heads, self.shape.head_dim)
                for t in torch.split(qkv, width, dim=1)
            )
            attended = self._attend(i, q, k, v, batch, cache)
            x = x + torch.addmm(w(p + "attn.c_proj.bias"), attended, w(p + "attn.c_proj.weight"))
            h = functional.layer_norm(x, (width,), w(p + "ln_2.weight"), w(p + "ln_2.bias"), eps)
            h = torch.addmm(w(p + "mlp.c_fc.bias"), h, w(p + "mlp.c_fc.weight"))
            h = functional.gelu(h, approximate="tanh")
            x = x + torch.addmm(w(p + "mlp.c_proj.bias"), h, w(p + "mlp.c_proj.weight"))
        return functional.layer_norm(
            x, (width,), w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), eps
        )

    # --- llama --------------------------------------------------------------------------

    def _rope_tables(self) -> tuple[Tensor, Tensor]:
        theta = _rope_theta(self.config)
        dim = self.shape.head_dim
        inverse = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles = torch.outer(torch.arange(self.shape.max_positions, dtype=torch.float64), inverse)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def _rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        cos, sin = (t[positions][:, None, :] for t in self._rope_cache)
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def _rms(self, x: Tensor, weight: Tensor) -> Tensor:
        eps = float(self.config.get("rms_norm_eps", 1e-6))
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    def _llama(self, batch: StepBatch, cache: KVCache) -> Tensor:
        w = self._get
        heads, kv_heads, dim = self.shape.heads, self.shape.kv_heads, self.shape.head_dim
        x = w("model.embed_tokens.weight")[batch.input_ids]
        for i in range(self.shape.layers):
            p = f"model.layers.{i}."
            h = self._rms(x, w(p + "input_layernorm.weight"))
            q = (h @ w(p + "self_attn.q_proj.weight").T).reshape(-1, heads, dim)
            k = (h @ w(p + "self_attn.k_proj.weight").T).reshape(-1, kv_heads, dim)
            v = (h @ w(p + "self_attn.v_proj.weight").T).reshape(-1, kv_heads, dim)
            q, k = self._rotate(q, batch.positions), self._rotate(k, batch.positions)
            attended = self._attend(i, q, k, v, batch, cache)
            x = x + attended @ w(p + "self_attn.o_proj.weight").T
            h = self._rms(x, w(p + "post_attention_layernorm.weight"))
            gate = functional.silu(h @ w(p + "mlp.gate_proj.weight").T)
            x = x + (gate * (h @ w(p + "mlp.up_proj.weight").T)) @ w(p + "mlp.down_proj.weight").T
        return self._rms(x, w("model.norm.weight"))
