"""Precision passes: texflow-demote-f16 computes a model in half precision behind an f32 interface."""
