"""The default model's architecture: an Idefics3 (SmolVLM) configuration sized for the synthetic world.

`ModelSpec` names the few numbers that matter; `build_config` turns a spec into a standard
`Idefics3Config` (SigLIP-style vision tower, pixel-shuffle connector, Llama text model) and
`build_processor` makes the matching `Idefics3Processor` (image processor at the spec's resolution, no
image splitting, SmolVLM chat template). Everything saved from these loads with
`AutoModelForImageTextToText` / `AutoProcessor`, exactly like a real SmolVLM checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    LlamaConfig,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

from dreamforge.model.tokenizer import CHAT_TEMPLATE, EOS, IMAGE


@dataclass(frozen=True)
class ModelSpec:
    image_size: int = 96
    patch_size: int = 16
    scale_factor: int = 1
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 6
    vision_mlp: int = 576
    text_hidden: int = 192
    text_layers: int = 4
    text_heads: int = 6
    text_kv_heads: int = 2
    text_mlp: int = 512
    max_positions: int = 512
    tie_embeddings: bool = True

    @property
    def image_seq_len(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# The default model, and a smaller spec the tests use to prove one code path loads differently sized models.
DEFAULT_SPEC = ModelSpec()
TINY_SPEC = ModelSpec(
    image_size=32, patch_size=8, scale_factor=2, vision_hidden=32, vision_layers=1, vision_heads=2, vision_mlp=64,
    text_hidden=32, text_layers=1, text_heads=2, text_kv_heads=1, text_mlp=64, max_positions=256,
)  # fmt: skip


def build_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> Idefics3Config:
    if spec.image_size % (spec.patch_size * spec.scale_factor):
        raise ValueError("image_size must be a multiple of patch_size * scale_factor")
    pad, bos, eos = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids(EOS)
    vision = Idefics3VisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_mlp,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_mlp,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads,
        max_position_embeddings=spec.max_positions,
        rms_norm_eps=1e-5,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=spec.tie_embeddings,
    )
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        scale_factor=spec.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),  # type: ignore[arg-type]  # one token in, one id out
        pad_token_id=pad,  # type: ignore[call-arg]  # accepted through PretrainedConfig's **kwargs
        tie_word_embeddings=spec.tie_embeddings,
    )
    config.bos_token_id, config.eos_token_id = bos, eos
    return config


def build_processor(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> Idefics3Processor:
    image_processor = Idefics3ImageProcessor(
        do_resize=True,
        size={"longest_edge": spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
        do_image_splitting=False,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pad=True,
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=spec.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(config: Idefics3Config, seed: int) -> Idefics3ForConditionalGeneration:
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    gen = model.generation_config
    text_config = config.text_config  # a LlamaConfig here (the stubs allow a dict or None)
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id = config.eos_token_id, text_config.pad_token_id, None  # type: ignore[union-attr]
    gen.do_sample, gen.max_new_tokens = False, 64
    return model
