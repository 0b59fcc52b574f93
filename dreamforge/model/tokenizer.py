"""The default model's tokenizer: a word-level vocabulary over the synthetic world, built locally.

Every word, number and punctuation mark the world's prompts and answers use is one token; coordinates
(`0.00` ... `1.00`) are one token each, so a box is four tokens. Text is lower-cased (NFKC first), split
into words, numbers and single punctuation marks; decoding joins with spaces and removes the space before
`.`, `,`, `?` and `!`, so every answer text the world produces round-trips exactly.

Special tokens follow SmolVLM (Idefics3): `<|im_start|>` (bos), `<end_of_utterance>` (eos, ends every
turn), `<|im_end|>` (pad), `<fake_token_around_image>`, `<image>`, `<global-img>` and the
`<row_i_col_j>` tokens Idefics3Processor looks up (unused without image splitting).
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dreamforge.world import (
    CAPTION_LENGTHS,
    COLOURS,
    PLURALS,
    SHAPES,
    SIZES,
    caption_prompt,
    detect_prompt,
    get_sample,
    point_prompt,
)
from dreamforge.world import tasks as world_tasks
from dreamforge.world.scene import TEXTURES, TINTS

BOS, EOS, PAD, UNK = "<|im_start|>", "<end_of_utterance>", "<|im_end|>", "<unk>"
FAKE_IMAGE, IMAGE, GLOBAL_IMAGE = "<fake_token_around_image>", "<image>", "<global-img>"
ROW_COL = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, FAKE_IMAGE, IMAGE, GLOBAL_IMAGE, *ROW_COL]
EXTRA_SPECIAL = [FAKE_IMAGE, IMAGE, GLOBAL_IMAGE, EOS]

# SmolVLM's chat template, verbatim.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPLIT_PATTERN = r"<[xywh]_\d+>|\d+\.\d+|\d+|[a-z]+|[^\sa-z\d]"
# Words a user is likely to type around the world's vocabulary (kept so they are not <unk>).
EXTRA_WORDS = (
    "user assistant system what which where how many is are there the a an of in on at to and or this that image "
    "picture photo colour color shape shapes object objects thing things any more fewer than left right top bottom "
    "centre center middle yes no none describe detail briefly detect point find locate count show me please big "
    "tiny large small size background it its one"
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")]
    )


def world_vocabulary(n_samples: int = 400) -> list[str]:
    """Every token the world's texts use (plus numbers and common words), in a fixed order."""
    words: set[str] = set(EXTRA_WORDS.split()) | set(COLOURS) | set(SHAPES) | set(PLURALS.values()) | set(SIZES)
    words |= set(TINTS) | set(TEXTURES) | set(world_tasks.NUMBER_WORDS) | {".", ",", "?", "!", ":", "'", "-"}
    words |= {f"{i / 100:.2f}" for i in range(101)} | {str(i) for i in range(21)} | set(world_tasks.LOCATION_TOKENS)
    texts = [caption_prompt(n) for n in CAPTION_LENGTHS]
    for i in range(n_samples):
        s = get_sample("train", i, image_size=16)
        texts += [s.caption(n) for n in CAPTION_LENGTHS]
        texts += [qa.question + " " + qa.answer for qa in s.questions()]
        texts += [detect_prompt(n) + " " + point_prompt(n) for n in world_tasks.absent_names(s.objects)[:3]]
    pre = _pre_tokenizer()
    for text in texts:
        words |= {w for w, _ in pre.pre_tokenize_str(text.lower())}
    return sorted(words)


def build_tokenizer(n_samples: int = 400) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in world_vocabulary(n_samples):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=EXTRA_SPECIAL,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
        padding_side="left",
    )
    fast.add_special_tokens({"additional_special_tokens": [*EXTRA_SPECIAL, *ROW_COL]})
    fast.chat_template = CHAT_TEMPLATE
    return fast
