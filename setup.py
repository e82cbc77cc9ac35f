"""Packages are found, never listed by hand (a hand-written list once left texflow.selection
out of the wheel): every folder with an __init__.py under python/texflow, plus the top-level
dialects/ and passes/ that pyproject.toml's package-dir maps to texflow.dialects / .passes."""
from setuptools import find_packages, setup

setup(packages=find_packages("python", include=["texflow", "texflow.*"])
      + ["texflow.dialects", "texflow.passes"])
