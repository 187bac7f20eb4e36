"""The operator library: compute definitions (no schedules) of the neural-network operators,
one module per family. Every op checks its arguments (a bad one raises ``te.TEValueError`` or
``te.TETypeError`` naming the op and the argument), returns a tensor or a tuple built with
``te.compute``, and tags its stages with the vocabulary of ``te.ops.tags``.

=============  ================================================================
module         ops
=============  ================================================================
``nn``         matmul, dense, batch_matmul, conv2d (NCHW, grouped, depthwise, NCHW{c}c)
``layout``     layout_transform (NCHW <-> NCHW{c}c, OIHW -> OIHW{i}i{o}o, ...)
``pooling``    max_pool2d, avg_pool2d, global_avg_pool2d, lrn
``norm``       softmax, log_softmax, layer_norm, batch_norm_inference
``elemwise``   add, subtract, ..., relu, gelu, clip, where, cast (numpy broadcasting)
``reduce``     reduce_sum/mean/max/min/prod, argmax, argmin
``transform``  transpose, reshape, flatten, concat, split, pad, slice, gather, expand, ...
``image``      resize (nearest, linear; ONNX coordinate modes)
=============  ================================================================
"""

from . import elemwise, extra, image, layout, nn, norm, pooling, reduce, tags, transform
from .elemwise import *  # noqa: F401,F403
from .extra import *  # noqa: F401,F403
from .image import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .transform import *  # noqa: F401,F403
