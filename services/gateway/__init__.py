"""The gateway: DreamForge's public front door (REST, WebSocket relay, public gRPC)."""
