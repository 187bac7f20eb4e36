"""Default CPU schedules of the operator library, one module per op family. Importing a
module registers its op schedules (``register_schedule(anchor, "cpu")``) for
``schedule_for`` and the tuning templates of its anchors (``schedules.library``)."""

from . import (  # noqa: F401
    conv2d,
    gemm,
    norm,  # noqa: F401
    pool,  # noqa: F401
)
