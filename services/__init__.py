"""The six DreamForge services; each runs as `python -m services.<name>`."""
