"""Model runtimes behind one interface: `torch` in-process (the embedded default) and
`triton` (a Triton Inference Server called with tritonclient). See `base.py`."""
