"""Where the supervised heads are told to look (`AttentionTargets`), checked token by token on one scene."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from dreamforge.model.arch import DEFAULT_SPEC, build_config, build_processor
from dreamforge.model.aux import AttentionTargets
from dreamforge.model.data import training_batch
from dreamforge.model.tokenizer import build_tokenizer
from dreamforge.world import PLURALS, Task, caption_prompt, detect_prompt, format_boxes, get_sample


@pytest.fixture(scope="module")
def setup():
    tokenizer = build_tokenizer()
    processor = build_processor(DEFAULT_SPEC, tokenizer)
    image_id = build_config(DEFAULT_SPEC, tokenizer).image_token_id
    sample = next(s for s in (get_sample("train", i) for i in range(200)) if _repeated_name(s) and len(s.objects) >= 4)
    return tokenizer, processor, image_id, sample


def _repeated_name(sample) -> str | None:
    names = [o.name for o in sample.objects]
    return next((n for n in names if names.count(n) > 1), None)


def _targets(setup, tasks):
    tokenizer, processor, image_id, sample = setup
    batch = training_batch(processor, [sample.image], [tasks])
    grid = DEFAULT_SPEC.image_size // DEFAULT_SPEC.patch_size
    out = AttentionTargets(tokenizer, image_id, grid)(batch, [sample], [tasks])
    seq = batch["input_ids"][0].tolist()
    image_pos = [j for j, t in enumerate(seq) if t == image_id]
    cell = {
        id(o): image_pos[min(int(o.centre[1] * grid), grid - 1) * grid + min(int(o.centre[0] * grid), grid - 1)]
        for o in sample.objects
    }
    words = tokenizer.convert_ids_to_tokens(seq)
    return out, words, cell


def test_caption_items_look_at_their_object_back_at_the_previous_and_ahead_at_the_next(setup) -> None:
    sample = setup[3]
    objs = sample.objects
    out, words, cell = _targets(setup, [Task("caption", "normal", caption_prompt("normal"), sample.caption("normal"))])
    # Each item `a <size> <colour> <shape>`: the three positions that predict size, colour and shape look at its
    # object, left to right, and bring back its rank.
    locate = out["locate"]
    assert len(locate) == 3 * len(objs)
    for m, o in enumerate(objs):
        for _, _, cells, named, ranks in locate[3 * m : 3 * m + 3]:
            assert cells == [cell[id(o)]] and named == [o] and ranks == [m + 1]
        assert words[locate[3 * m][1] + 1] == o.size and words[locate[3 * m + 2][1] + 1] == o.shape
    # The article that starts item m recalls the previous item's colour word.
    recall = out["recall"]
    assert len(recall) == len(objs) - 1
    for m, (_, pos, cells, _, ranks) in enumerate(recall, start=1):
        assert words[pos] == "a" and cells == [locate[3 * (m - 1) + 2][1]] and words[cells[0]] == objs[m - 1].colour
        assert ranks == [m]
    # The shape word, which predicts `,` / `and` / the end of the list, looks at the next object; after the last
    # one at the sequence start.
    ahead = out["next"]
    assert [words[pos + 1] for _, pos, *_ in ahead] == [","] * (len(objs) - 2) + ["and", "on"]
    assert [c for _, _, c, *_ in ahead] == [[cell[id(o)]] for o in objs[1:]] + [[0]]
    assert ahead[-1][3] == [] and words[0] == "<|im_start|>"


def test_detect_boxes_chain_from_match_to_match_and_end_at_the_sequence_start(setup) -> None:
    sample = setup[3]
    name = _repeated_name(sample)
    refs = tuple(i for i, o in enumerate(sample.objects) if o.name == name)
    answer = format_boxes(sample.detect_targets()[name])
    absent = next(f"{c} {s}" for c in ("red", "blue", "green") for s in ("star", "cross", "circle")
                  if f"{c} {s}" not in {o.name for o in sample.objects})  # fmt: skip
    tasks = [
        Task("detect", "present", detect_prompt(name), answer, refs),
        Task("detect", "absent", detect_prompt(absent), "none"),
    ]
    out, words, cell = _targets(setup, tasks)
    matches = [sample.objects[i] for i in refs]
    # Four positions per box, each looking at that box's object.
    assert [c for _, _, c, *_ in out["locate"] if len(c) == 1][-4 * len(refs) :] == [
        [cell[id(o)]] for o in matches for _ in range(4)
    ]
    ahead = out["next"]
    # Present: the answer's start looks at the first match, each box's last token at the next match, then at the
    # start; absent: the answer's start looks at the sequence start (it predicts `none`).
    assert [c for _, _, c, *_ in ahead] == [[cell[id(o)]] for o in matches] + [[0], [0]]
    assert words[ahead[-1][1] + 1] == "none"
    assert [words[pos + 1] for _, pos, *_ in ahead[1:-1]] == [","] * (len(refs) - 1) + ["<end_of_utterance>"]
    assert [r for *_, r in out["recall"]] == [[i + 1] for i in refs[:-1]]


def test_counting_questions_route_one_noun_per_head_and_every_noun_is_counted(setup) -> None:
    sample = setup[3]
    name = _repeated_name(sample)
    colour, shape = name.split()
    n_colour = sum(o.colour == colour for o in sample.objects)
    n_shape = sum(o.shape == shape for o in sample.objects)
    shapes_here = {o.shape for o in sample.objects}
    absent = next(s for s in ("star", "cross", "circle", "square", "triangle") if s not in shapes_here)
    more = "yes" if n_shape > 0 else "no"
    tasks = [
        Task("query", "count", f"how many {colour} shapes are there?", str(n_colour)),
        Task("query", "comparison", f"are there more {PLURALS[shape]} than {PLURALS[absent]}?", more),
    ]
    out, words, _ = _targets(setup, tasks)
    # Every referring noun is counted, the absent one as zero.
    assert [(words[pos], len(named)) for _, pos, _, named, _ in out["count"]] == [
        ("shapes", n_colour), (PLURALS[shape], n_shape), (PLURALS[absent], 0)
    ]  # fmt: skip
    nouns = [pos for _, pos, *_ in out["count"]]
    # The answer's first position looks at one noun per head: the count question's, the comparison's first ...
    route, compare = out["route"], out["compare"]
    assert [(c, len(named)) for _, _, c, named, _ in route] == [([nouns[0]], n_colour), ([nouns[1]], n_shape)]
    assert [words[pos + 1] for _, pos, *_ in route] == [str(n_colour), more]
    # ... and, through the compare head, the comparison's second one (which names nothing here).
    assert [(c, named) for _, _, c, named, _ in compare] == [([nouns[2]], [])]
    assert compare[0][1] == route[1][1]
