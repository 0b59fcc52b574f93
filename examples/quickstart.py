"""Python quick-start: the four skills, a stream and a rating through the DreamForge SDK.

    dreamforge sample photo.png                      # an image the default model knows
    DREAMFORGE_API_KEY=df_... python examples/quickstart.py photo.png

Reads DREAMFORGE_URL (default http://127.0.0.1:8080) and DREAMFORGE_API_KEY (a key with scope `app`).
"""

from __future__ import annotations

import json
import os
import sys

from dreamforge import DreamForge


def main(image: str) -> None:
    with DreamForge(api_key=os.environ["DREAMFORGE_API_KEY"], base_url=os.environ.get("DREAMFORGE_URL")) as df:
        caption = df.caption(image, length="short")
        print("caption:", caption["caption"], f"({caption['latency_ms']:.0f} ms, request {caption['request_id']})")
        print("query:", df.query(image, "What colour is the circle?")["answer"])
        print("detect:", json.dumps(df.detect(image, "orange circle")["objects"]))  # normalised boxes
        print("point:", json.dumps(df.point(image, "orange circle")["points"]))
        print("stream:", end=" ")
        for piece in df.query(image, "What colour is the triangle?", stream=True):
            print(piece, end="", flush=True)
        print()
        # a rater's thumbs-up on the caption (needs scope `rater` or `app` on the same tenant)
        rating = df.rate(caption["request_id"], "thumbs", "up")
        print("rated:", rating["kind"], rating["value"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "photo.png")
