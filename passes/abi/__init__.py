"""Passes on the module's calling interface (IREE's ABI functions)."""
