"""Inference: follows which version each alias serves (the model runtime comes with the inference issue)."""
