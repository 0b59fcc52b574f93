"""DreamForge: serve small vision-language models and improve them from human feedback.

This package holds what every service shares (settings, event bus, tracing, logs,
storage, the service runtime), the generated protobuf contracts (`dreamforge.v1`)
and the `dreamforge` CLI. Service code lives in `services/<name>/`.
"""

__version__ = "0.1.0"
