"""Generated from proto/dreamforge/v1 by scripts/gen_proto.py. Do not edit."""
