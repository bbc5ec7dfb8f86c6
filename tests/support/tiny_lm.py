"""A tiny GPT-2-style checkpoint in the Hugging Face layout, for engine tests without a hub.

The weights are random (seeded) and the tokenizer is a byte-level BPE trained on a few
standard-library sources, so the text is gibberish but every mechanism is real: safetensors
loading, byte-level detokenization, an end-of-text token.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"


def byte_level_tokenizer(vocab: int = 400) -> Tokenizer:
    """A GPT-2-style byte-level BPE: any text encodes, characters outside ASCII as several
    byte tokens (it is trained on Python sources)."""
    import json as json_module
    import textwrap as textwrap_module

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    sources = [inspect.getsource(module) for module in (json_module, textwrap_module)]
    tokenizer.train_from_iterator(sources, trainer)
    return tokenizer


def gpt2_folder(
    folder: Path,
    *,
    layers: int = 2,
    width: int = 32,
    heads: int = 4,
    positions: int = 64,
    vocab: int = 400,
    seed: int = 0,
) -> Path:
    """Write config.json, model.safetensors and tokenizer.json of a random tiny GPT-2."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_level_tokenizer(vocab)
    tokenizer.save(str(folder / "tokenizer.json"))
    size = tokenizer.get_vocab_size()
    eos = tokenizer.token_to_id(EOS)
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.3

    weights = {
        "transformer.wte.weight": normal(size, width),
        "transformer.wpe.weight": normal(positions, width),
    }
    for i in range(layers):
        p = f"transformer.h.{i}."
        weights |= {
            p + "ln_1.weight": torch.ones(width),
            p + "ln_1.bias": torch.zeros(width),
            p + "attn.c_attn.weight": normal(width, 3 * width),
            p + "attn.c_attn.bias": normal(3 * width),
            p + "attn.c_proj.weight": normal(width, width),
            p + "attn.c_proj.bias": normal(width),
            p + "ln_2.weight": torch.ones(width),
            p + "ln_2.bias": torch.zeros(width),
            p + "mlp.c_fc.weight": normal(width, 4 * width),
            p + "mlp.c_fc.bias": normal(4 * width),
            p + "mlp.c_proj.weight": normal(4 * width, width),
            p + "mlp.c_proj.bias": normal(width),
        }
    weights |= {
        "transformer.ln_f.weight": torch.ones(width),
        "transformer.ln_f.bias": torch.zeros(width),
    }
    save_file(weights, str(folder / "model.safetensors"))
    config = {
        "model_type": "gpt2",
        "vocab_size": size,
        "n_layer": layers,
        "n_embd": width,
        "n_head": heads,
        "n_positions": positions,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder
