"""ARCHITECTURE.md's event catalogue must say what dreamforge/events.py does."""

from __future__ import annotations

from pathlib import Path

from dreamforge.events import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"


def render_catalogue() -> str:
    lines = ["| event | subject | payload | stream | producer | consumers | meaning |",
             "|---|---|---|---|---|---|---|"]
    for e in CATALOGUE:
        lines.append(f"| {e.name} | `dreamforge.v1.{e.name}.<tenant>` | `{e.payload.__name__}` | {e.stream} | "
                     f"{e.producer} | {', '.join(e.consumers)} | {e.description} |")
    return "\n".join(lines)


def test_architecture_doc_lists_the_catalogue() -> None:
    text = DOC.read_text()
    block = text.split("<!-- catalogue:start -->\n", 1)[1].split("\n<!-- catalogue:end -->", 1)[0]
    assert block == render_catalogue(), "ARCHITECTURE.md's event table is stale; paste render_catalogue()"
