"""Trainer: buffers reward events per tenant and model (training jobs come with the trainer issue)."""
