"""Limits that the gateway checks on input and the inference service enforces, kept in one place
so that both answer with the same bound (the image limits live with the image code, `images.py`)."""

#: The most tokens one call may ask the model to generate (`max_tokens` of caption, query and chat).
MAX_TOKENS = 512
