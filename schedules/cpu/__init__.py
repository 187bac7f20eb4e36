"""Default CPU schedules of the operator library, one module per op family. Importing a
module registers its op schedules (``register_schedule(anchor, "cpu")``) for
``schedule_for`` and the tuning templates of its anchors (``schedules.library``)."""

from . import conv2d, gemm  # noqa: F401
from . import norm  # noqa: F401
from . import pool  # noqa: F401
