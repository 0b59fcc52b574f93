"""DreamForge: serve small vision-language models and improve them from human feedback.

This package holds what every service shares (settings, event bus, tracing, logs,
storage, the service runtime), the generated protobuf contracts (`dreamforge.v1`)
and the `dreamforge` CLI. Service code lives in `services/<name>/`.

The Python SDK is importable from here: `from dreamforge import DreamForge`
(`dreamforge.client`; loaded on first use, so the services do not import the HTTP client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dreamforge.client import DreamForge, DreamForgeError

__version__ = "0.1.0"
__all__ = ["DreamForge", "DreamForgeError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("DreamForge", "DreamForgeError"):
        from dreamforge import client

        return getattr(client, name)
    raise AttributeError(f"module 'dreamforge' has no attribute {name!r}")
