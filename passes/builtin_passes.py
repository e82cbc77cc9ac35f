"""Imports every pass module so that each registers itself, phase by phase."""

from .layout import compose_transposes  # noqa: F401
from .wstream import verify_lowered  # noqa: F401
from .layout import verify  # noqa: F401
from .layout import raise_layout  # noqa: F401
from .layout import lower  # noqa: F401
from .layout import classify  # noqa: F401
from .layout import eliminate  # noqa: F401
from .wstream import form_stages  # noqa: F401
from .wstream import plan  # noqa: F401
from .wstream import lower as _wstream_lower  # noqa: F401
from .wstream import outline  # noqa: F401
from .wstream import fence  # noqa: F401
from .wstream import split_weights  # noqa: F401
from .layout import select  # noqa: F401
from .precision import demote_f16  # noqa: F401
from .cpu import pack_matmul  # noqa: F401
from .cpu import rewrite_softmax  # noqa: F401
from .cpu import fuse_attention  # noqa: F401
from .abi import output_storage  # noqa: F401
from .gpu import configure_kernels  # noqa: F401
from .precision import widen_accumulators  # noqa: F401
from .layout import slice_contractions  # noqa: F401
from .layout import split_grouped_convs  # noqa: F401
from .layout import fold_weight_math  # noqa: F401
