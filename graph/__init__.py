"""Network front end: ONNX import, shape inference and graph passes (constant folding,
simplification, operator fusion, layout).

Each fused group becomes a tensor expression that is compiled with its best tuned config and
run by the runtime's graph executor.
"""
