"""Imports every pass module so that each registers itself."""

from . import compose_transposes  # noqa: F401
from . import verify_lowered  # noqa: F401
from . import layout_verify  # noqa: F401
from . import layout_raise  # noqa: F401
from . import layout_lower  # noqa: F401
from . import layout_classify  # noqa: F401
from . import layout_eliminate  # noqa: F401
from . import wstream_stages  # noqa: F401
from . import wstream_plan  # noqa: F401
from . import wstream_lower  # noqa: F401
from . import wstream_outline  # noqa: F401
from . import wstream_split  # noqa: F401
from . import layout_select  # noqa: F401
from . import demote_f16  # noqa: F401
from . import pack_matmul  # noqa: F401
from . import softmax  # noqa: F401
