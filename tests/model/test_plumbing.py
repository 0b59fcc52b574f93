"""The default model's plumbing: tokenizer, processor, Auto* save/load, generation and streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.arch import DEFAULT_SPEC, TINY_SPEC, build_config, build_model, build_processor  # noqa: E402
from dreamforge.model.data import chat_prompt, training_batch  # noqa: E402
from dreamforge.model.skills import Skills, load  # noqa: E402
from dreamforge.model.tokenizer import EOS, IMAGE, build_tokenizer  # noqa: E402
from dreamforge.world import CAPTION_LENGTHS, get_sample  # noqa: E402
from dreamforge.world.tasks import absent_names, detect_prompt, point_prompt  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def _save(tmp: Path, spec, tokenizer, seed: int = 0) -> Path:
    model = build_model(build_config(spec, tokenizer), seed)
    processor = build_processor(spec, tokenizer)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    return tmp


def test_every_world_text_round_trips_without_unk(tokenizer) -> None:
    unk = tokenizer.unk_token_id
    for i in range(200):
        s = get_sample("validation", i, image_size=16)
        texts = [s.caption(n) for n in CAPTION_LENGTHS]
        texts += [t.prompt for t in s.eval_tasks()] + [t.answer for t in s.eval_tasks()]
        texts += [qa.question for qa in s.questions()] + [qa.answer for qa in s.questions()]
        texts += [detect_prompt(n) for n in absent_names(s.objects)] + [point_prompt(n) for n in s.point_targets()]
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert unk not in ids, text
            assert tokenizer.decode(ids) == text
    coords = tokenizer("0.00 0.37 1.00", add_special_tokens=False)["input_ids"]
    assert len(coords) == 3  # one token per coordinate


def test_processor_expands_image_tokens(tokenizer) -> None:
    processor = build_processor(DEFAULT_SPEC, tokenizer)
    s = get_sample("test", 0)
    prompt = chat_prompt(processor, "what colour is the circle?")
    assert prompt.startswith("<|im_start|>User:<image>") and prompt.endswith("<end_of_utterance>\nAssistant:")
    batch = processor(text=[prompt], images=[[s.image]], return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    assert ids.count(tokenizer.convert_tokens_to_ids(IMAGE)) == DEFAULT_SPEC.image_seq_len == 36
    assert ids.count(tokenizer.convert_tokens_to_ids("<fake_token_around_image>")) == 2
    assert batch["pixel_values"].shape == (1, 1, 3, DEFAULT_SPEC.image_size, DEFAULT_SPEC.image_size)
    # A photo of any size and mode is resized to the model's resolution.
    from PIL import Image

    other = processor(text=[prompt], images=[[Image.new("L", (200, 120), 128)]], return_tensors="pt")
    assert other["pixel_values"].shape[-2:] == (DEFAULT_SPEC.image_size, DEFAULT_SPEC.image_size)


def test_labels_cover_answers_only(tokenizer) -> None:
    processor = build_processor(TINY_SPEC, tokenizer)
    s = get_sample("train", 3, TINY_SPEC.image_size)
    tasks = s.eval_tasks()[:3]
    batch = training_batch(processor, [s.image], [tasks])
    labels = batch["labels"][0]
    kept = labels[labels != -100].tolist()
    expected: list[int] = []
    for t in tasks:
        expected += tokenizer(t.answer, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids(EOS)]
    assert kept == expected


def test_save_and_reload_through_auto_classes(tmp_path: Path, tokenizer) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    spec = TINY_SPEC
    model = build_model(build_config(spec, tokenizer), 0).eval()
    processor = build_processor(spec, tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    processor2 = AutoProcessor.from_pretrained(tmp_path)
    assert type(model2).__name__ == "Idefics3ForConditionalGeneration"
    assert type(processor2).__name__ == "Idefics3Processor"
    s = get_sample("test", 1, spec.image_size)
    prompt = chat_prompt(processor2, "how many shapes are there?")
    a = processor(text=[prompt], images=[[s.image]], return_tensors="pt")
    b = processor2(text=[prompt], images=[[s.image]], return_tensors="pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(**a).logits, model2(**b).logits)


def test_differently_sized_configs_load_through_the_same_code(tmp_path: Path, tokenizer) -> None:
    small = _save(tmp_path / "tiny", TINY_SPEC, tokenizer)
    big = _save(tmp_path / "default", DEFAULT_SPEC, tokenizer)
    sizes = []
    for path in (small, big):
        model, processor = load(path, device="cpu")
        sizes.append(sum(p.numel() for p in model.parameters()))
        skills = Skills(model, processor)
        image = get_sample("test", 2).image  # 96 px: the processor resizes for the tiny model
        assert isinstance(skills.query(image, "what colour is the circle?"), str)
        assert isinstance(skills.detect(image, "red circle"), list)
        assert isinstance(skills.point(image, "circle"), list)
    assert sizes[0] < sizes[1]


def test_generation_batched_equals_single_and_stream_equals_whole(tmp_path: Path, tokenizer) -> None:
    skills = Skills(*load(_save(tmp_path, TINY_SPEC, tokenizer, seed=3), device="cpu"))
    samples = [get_sample("test", i, TINY_SPEC.image_size) for i in range(3)]
    prompts = ["describe the image.", "is there a red circle?", "detect blue square."]
    batched = skills.generate([s.image for s in samples], prompts, max_new_tokens=12)
    single = [skills.generate([s.image], [p], max_new_tokens=12)[0] for s, p in zip(samples, prompts, strict=True)]
    assert batched == single
    streamed = "".join(skills.stream(samples[0].image, prompts[0], max_new_tokens=12))
    assert streamed.strip() == single[0]
    with pytest.raises(ValueError):
        skills.caption(samples[0].image, "medium")


def test_a_processor_that_splits_images_serves_like_a_real_smolvlm(tmp_path: Path, tokenizer) -> None:
    """Real SmolVLM checkpoints split large images into tiles plus a global view, so one image can take many
    times the default model's image tokens; images of different sizes must still batch together."""
    path = _save(tmp_path, TINY_SPEC, tokenizer, seed=5)
    processor = build_processor(TINY_SPEC, tokenizer)
    processor.image_processor.do_image_splitting = True
    processor.image_processor.size = {"longest_edge": TINY_SPEC.image_size * 4}  # up to 4x4 tiles
    processor.save_pretrained(path)
    skills = Skills(*load(path, device="cpu"))
    assert skills.processor.image_processor.do_image_splitting
    square, wide = get_sample("test", 0).image, get_sample("test", 1).image.resize((200, 60))
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    tokens = [int((skills._inputs([im], ["q"])["input_ids"] == image_id).sum()) for im in (square, wide)]
    assert tokens[0] == (16 + 1) * TINY_SPEC.image_seq_len  # 4x4 tiles and the global view
    assert TINY_SPEC.image_seq_len < tokens[1] < tokens[0]  # fewer tiles for a short, wide image
    prompts = ["what colour is the circle?", "detect red circle."]
    batched = skills.generate([square, wide], prompts, max_new_tokens=6)
    single = [skills.generate([im], [p], max_new_tokens=6)[0] for im, p in zip([square, wide], prompts, strict=True)]
    assert batched == single
