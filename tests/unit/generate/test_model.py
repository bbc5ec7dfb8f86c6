"""The ragged forward pass against transformers: prefills and decodes of different lengths, in
different cache slots and in one step, give each sequence the logits of its own full forward."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from inferd.errors import SpecError
from inferd.generate.model import CausalLM, KVCache, StepBatch, read_shape

VOCAB = 64
POSITIONS = 32
SLOTS = 3
PROMPT_A = [5, 17, 3, 60, 22, 9, 41]
PROMPT_B = [12, 7, 33, 2]
PROMPT_C = [50, 1, 28, 8, 19]
KINDS = [("gpt2", True), ("gpt2", False), ("llama", True), ("llama", False)]


@dataclass
class _Pair:
    reference: Any
    """transformers' model, in eval mode."""
    model: CausalLM
    folder: Path


def _reference(architecture: str, tied: bool) -> Any:
    options: dict[str, Any] = {"vocab_size": VOCAB, "tie_word_embeddings": tied}
    if architecture == "gpt2":
        options |= {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": POSITIONS}
        model: Any = GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0, **options))
    else:
        # Grouped-query attention (4 query heads share 2 kv heads), and a RoPE base that is
        # not the default (transformers 5 writes it under rope_parameters, 4 at the top).
        options |= {
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": POSITIONS,
            "rope_theta": 500_000.0,
        }
        model = LlamaForCausalLM(LlamaConfig(bos_token_id=1, eos_token_id=2, **options))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights large enough that the logits spread well past the tolerance
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.fixture(
    scope="module", params=KINDS, ids=[f"{a}-{'tied' if t else 'untied'}" for a, t in KINDS]
)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _Pair:
    architecture, tied = request.param
    reference = _reference(architecture, tied)
    folder = tmp_path_factory.mktemp(architecture)
    reference.save_pretrained(folder)
    return _Pair(reference, CausalLM(folder), folder)


def _batch(prefills: list[tuple[int, list[int]]], decodes: list[tuple[int, int, int]]) -> StepBatch:
    """prefills: (slot, prompt); decodes: (slot, token, position). Logits for every row."""
    ids: list[int] = []
    positions: list[int] = []
    slots: list[int] = []
    ranges: list[tuple[int, int, int]] = []
    for slot, prompt in prefills:
        ranges.append((len(ids), len(prompt), slot))
        ids += prompt
        positions += range(len(prompt))
        slots += [slot] * len(prompt)
    decode_rows = list(range(len(ids), len(ids) + len(decodes)))
    for slot, token, position in decodes:
        ids.append(token)
        positions.append(position)
        slots.append(slot)
    return StepBatch(
        input_ids=torch.tensor(ids),
        positions=torch.tensor(positions),
        slots=torch.tensor(slots),
        decode_rows=torch.tensor(decode_rows, dtype=torch.long),
        decode_lengths=torch.tensor([p + 1 for _, _, p in decodes], dtype=torch.long),
        prefills=ranges,
        logit_rows=torch.arange(len(ids)),
    )


def _expected(pair: _Pair, tokens: list[int]) -> torch.Tensor:
    """transformers' logits for every position of one sequence, run alone without a cache."""
    with torch.no_grad():
        logits: torch.Tensor = pair.reference(torch.tensor([tokens])).logits[0]
    return logits


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def _cache(pair: _Pair) -> KVCache:
    return KVCache(pair.model.shape, SLOTS, torch.float32)


def test_two_prefills_in_one_step_match_each_alone(pair: _Pair) -> None:
    """Prompts of different lengths share the step's rows but attend only to themselves."""
    logits = pair.model.forward(_batch([(2, PROMPT_A), (0, PROMPT_B)], []), _cache(pair))
    _close(logits[: len(PROMPT_A)], _expected(pair, PROMPT_A))
    _close(logits[len(PROMPT_A) :], _expected(pair, PROMPT_B))


def test_decodes_of_different_context_lengths_match_full_forwards(pair: _Pair) -> None:
    """Each decode attends to its own slot's cached prefix, masked to its own length."""
    cache = _cache(pair)
    a, b = list(PROMPT_A), list(PROMPT_B)
    pair.model.forward(_batch([(2, a), (0, b)], []), cache)
    for a_token, b_token in [(11, 40), (3, 3)]:
        step = _batch([], [(2, a_token, len(a)), (0, b_token, len(b))])
        a.append(a_token)
        b.append(b_token)
        logits = pair.model.forward(step, cache)
        _close(logits[0], _expected(pair, a)[-1])
        _close(logits[1], _expected(pair, b)[-1])


def test_decodes_beside_a_new_prefill_match_full_forwards(pair: _Pair) -> None:
    """Continuous batching's mixed step: a prompt read in the same pass as two decodes."""
    cache = _cache(pair)
    pair.model.forward(_batch([(2, PROMPT_A), (0, PROMPT_B)], []), cache)
    step = _batch([(1, PROMPT_C)], [(2, 13, len(PROMPT_A)), (0, 21, len(PROMPT_B))])
    logits = pair.model.forward(step, cache)
    rows = len(PROMPT_C)
    _close(logits[:rows], _expected(pair, PROMPT_C))
    _close(logits[rows], _expected(pair, [*PROMPT_A, 13])[-1])
    _close(logits[rows + 1], _expected(pair, [*PROMPT_B, 21])[-1])


def test_a_reused_slot_ignores_what_its_last_sequence_left(pair: _Pair) -> None:
    """A shorter sequence in a freed slot must not attend to the stale keys beyond it."""
    cache = _cache(pair)
    pair.model.forward(_batch([(0, PROMPT_A)], []), cache)
    pair.model.forward(_batch([(0, PROMPT_B)], []), cache)
    logits = pair.model.forward(_batch([], [(0, 30, len(PROMPT_B))]), cache)
    _close(logits[0], _expected(pair, [*PROMPT_B, 30])[-1])


def test_logit_rows_pick_and_order_the_rows(pair: _Pair) -> None:
    """Only the wanted rows are projected to the vocabulary, in the order asked for."""
    step = _batch([(2, PROMPT_A), (0, PROMPT_B)], [])
    step.logit_rows = torch.tensor([len(PROMPT_A) + len(PROMPT_B) - 1, len(PROMPT_A) - 1])
    logits = pair.model.forward(step, _cache(pair))
    assert logits.shape == (2, VOCAB)
    _close(logits[0], _expected(pair, PROMPT_B)[-1])
    _close(logits[1], _expected(pair, PROMPT_A)[-1])


def test_the_head_is_the_embedding_only_when_tied(pair: _Pair) -> None:
    """An untied checkpoint ships its own lm_head, different from the embedding (so the logit
    tests above would fail if it were ignored); a tied one ships none."""
    with safe_open(str(pair.folder / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
    tied = pair.reference.config.tie_word_embeddings
    assert ("lm_head.weight" in names) is not tied
    head = pair.reference.get_output_embeddings().weight
    embedding = pair.reference.get_input_embeddings().weight
    assert torch.equal(head, embedding) is tied


def test_read_shape_sizes_the_cache_from_kv_heads(pair: _Pair) -> None:
    """The cache is sized from kv heads, not query heads."""
    shape = read_shape(pair.folder)
    config = pair.reference.config
    assert shape.architecture == config.model_type
    assert (shape.vocab_size, shape.layers, shape.max_positions) == (VOCAB, 2, POSITIONS)
    assert shape.heads * shape.head_dim == config.hidden_size
    assert shape.kv_heads == (2 if config.model_type == "llama" else shape.heads)
    assert shape.eos_token_ids == (config.eos_token_id,)


# --- refusals ---------------------------------------------------------------------------


def _folder(tmp_path: Path, **config: Any) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


_LLAMA = {
    "model_type": "llama",
    "vocab_size": VOCAB,
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": POSITIONS,
}


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"model_type": "mamba"}, "model_type 'mamba' is not supported"),
        ({**_LLAMA, "num_key_value_heads": 3}, "4 attention heads do not split into 3 kv"),
        (
            {**_LLAMA, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}},
            "rope type 'llama3' is not supported",
        ),
        ({**_LLAMA, "rope_scaling": {"type": "linear", "factor": 2.0}}, "rope type 'linear'"),
    ],
)
def test_read_shape_refuses_what_it_cannot_run(
    tmp_path: Path, config: dict[str, Any], words: str
) -> None:
    with pytest.raises(SpecError, match=words):
        read_shape(_folder(tmp_path, **config))


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"no config\.json"):
        read_shape(tmp_path)


def test_weights_must_be_safetensors(tmp_path: Path) -> None:
    """Pickled .bin weights can run code when loaded, so they are refused, not read."""
    folder = _folder(tmp_path, **_LLAMA)
    with pytest.raises(SpecError, match=r"no \.safetensors weights"):
        CausalLM(folder)
    torch.save({"model.embed_tokens.weight": torch.zeros(VOCAB, 32)}, folder / "model.bin")
    with pytest.raises(SpecError, match=r"\.bin files are not loaded"):
        CausalLM(folder)


@pytest.mark.parametrize(
    ("kind", "option"),
    [
        ("gpt2", {"activation_function": "relu"}),
        ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
        ("llama", {"attention_bias": True}),
        ("llama", {"mlp_bias": True}),
    ],
)
def test_config_options_the_engine_does_not_run_are_refused(
    tmp_path: Path, kind: str, option: dict[str, object]
) -> None:
    config = {
        "model_type": kind,
        "vocab_size": 10,
        "n_head": 2,
        "n_layer": 1,
        "n_embd": 4,
        "n_positions": 8,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "hidden_size": 4,
        "max_position_embeddings": 8,
        **option,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match=f"{next(iter(option))} = .* is not supported"):
        read_shape(tmp_path)
