"""Text preprocessing: one text → token ids (and masks) with a `tokenizers` tokenizer.json.

Each item is tokenized alone and truncated to `max_length` (the prediction then says so);
padding happens when the model stage stacks a batch, to the longest item in it, with the
pad values this stage declares — so a short text never pays for a long neighbour's length
beyond its own batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inferd.datatypes import numpy_dtype
from inferd.errors import BadRequestError, SpecError
from inferd.spec import TextStage
from inferd.stages import Item, Preprocess, only_value

_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")


def _load(path: Path) -> Any:
    from tokenizers import Tokenizer  # imported here: only text models need it

    if not path.exists():
        raise SpecError(f"tokenizer file {path} does not exist; put the tokenizer.json there")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # the Rust side raises plain Exceptions for bad files
        raise SpecError(f"{path} is not a tokenizers tokenizer.json: {error}") from None


def _pad_id(stage: TextStage, tokenizer: Any) -> int:
    if stage.pad_id is not None:
        return stage.pad_id
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    for token in _PAD_TOKENS:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0


def _text(value: Any, name: str) -> str:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise BadRequestError(f"input {name!r} takes one text per item; got {value.size}")
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(f"input {name!r} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise BadRequestError(f"input {name!r} takes text; got {type(value).__name__}")
    if not value.strip():
        raise BadRequestError(f"input {name!r} is empty; send some text")
    return value


def build(
    stage: TextStage, input_name: str, model_dir: Path | None
) -> tuple[Preprocess, dict[str, int]]:
    """The preprocess function and the pad value of each tensor it writes."""
    if model_dir is None:
        raise SpecError("the text stage needs the model folder to find its tokenizer")
    tokenizer = _load(model_dir / stage.tokenizer)
    tokenizer.no_padding()
    tokenizer.enable_truncation(stage.max_length)
    dtype = numpy_dtype(stage.datatype)
    names = stage.outputs
    pads = {names["input_ids"]: _pad_id(stage, tokenizer)}
    pads.update({names[k]: 0 for k in ("attention_mask", "token_type_ids") if k in names})

    def preprocess(item: Item) -> None:
        text = _text(only_value(item.values, input_name, "the text stage"), input_name)
        # encode_batch releases the GIL while it works (encode holds it: seconds for a
        # few MB), so a long text never stalls the event loop from its worker thread.
        [encoding] = tokenizer.encode_batch([text])
        out = {k: v for k, v in item.values.items() if k != input_name}
        fields = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        for key, model_input in names.items():
            out[model_input] = np.asarray(fields[key], dtype=dtype)
        if encoding.overflowing:
            item.notes["truncated_to_tokens"] = stage.max_length
        item.values = out

    return preprocess, pads
