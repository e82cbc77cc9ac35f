"""Imports every pass module so that each registers itself."""

from . import compose_transposes  # noqa: F401
from . import verify_lowered  # noqa: F401
