"""Passes for GPU code generation: configurations IREE's SPIR-V path gets for texflow's ops."""
