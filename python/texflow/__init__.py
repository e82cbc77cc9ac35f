"""texflow: layout-transformation elimination and weight streaming on IREE.

Data flows one way: import (ONNX -> MLIR) -> layout passes -> streaming plan
-> IREE -> runtime.  See README.md for the tour.
"""

from .errors import TexflowError

__all__ = ["TexflowError"]
__version__ = "0.1.0"
