"""`dreamforge sample`: an image of the world to try the default model on, with its ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from dreamforge.cli import main
from dreamforge.world import get_sample


def test_sample_writes_the_image_and_prints_its_truth(tmp_path: Path) -> None:
    out = tmp_path / "photo.png"
    result = CliRunner().invoke(main, ["sample", str(out), "--split", "validation", "--index", "7"])
    assert result.exit_code == 0, result.output
    truth = json.loads(result.output)
    expected = get_sample("validation", 7)
    with Image.open(out) as image:
        assert image.format == "PNG" and list(image.convert("RGB").getdata()) == list(expected.image.getdata())
    assert [o["name"] for o in truth["objects"]] == [o.name for o in expected.objects]
    assert truth["caption"] == expected.caption()
    assert truth["questions"][0] == {"question": expected.questions()[0].question,
                                     "answer": expected.questions()[0].answer}
    refused = CliRunner().invoke(main, ["sample", str(out), "--split", "holdout"])
    assert refused.exit_code == 2 and "holdout" in refused.output
    nowhere = CliRunner().invoke(main, ["sample", str(tmp_path / "no-such-dir" / "x.png")])
    assert nowhere.exit_code == 1 and "cannot write" in nowhere.output and "No such file" in nowhere.output
