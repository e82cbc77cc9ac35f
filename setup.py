"""Package discovery for the layout pyproject.toml declares (`package-dir`): the importable
package lives in python/texflow, while dialects/ and passes/ sit at the top level (as in MLIR's
out-of-tree template) and install as texflow.dialects and texflow.passes.  Every folder with an
__init__.py under those roots is a package; nothing is listed by hand."""

from setuptools import find_packages, setup

ROOTS = {"texflow": "python/texflow", "texflow.dialects": "dialects", "texflow.passes": "passes"}

setup(packages=sorted({root for root in ROOTS}
                      | {f"{root}.{sub}" for root, path in ROOTS.items() for sub in find_packages(path)}))
