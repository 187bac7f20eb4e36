"""The cuda target without running anything: what lowering makes of GPU schedules, the kernels
and launch configurations the code generator derives, its errors, and the errors of a
machine without a GPU.  None of this imports numba.cuda (except in subprocesses)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import matmul

import te
from runtime import ArgumentError, BuildError
from runtime.codegen_cuda import CudaOptions, generate
from schedules import create_schedule, ir, lower, replay, steps_from_json, steps_to_json

BX, BY = te.thread_axis("blockIdx.x"), te.thread_axis("blockIdx.y")
TX, TY = te.thread_axis("threadIdx.x"), te.thread_axis("threadIdx.y")
ROOT = Path(__file__).resolve().parents[1]


def elementwise(n=64, factor=32):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=factor)
    s[B].bind(bx, BX)
    s[B].bind(tx, TX)
    return s, [A, B], (bx, tx)


def shared_tile_matmul(n=16, tile=8, threads=4, kt=4):
    A, B, C = matmul(n, n, n)
    s = create_schedule(C.op)
    AA = s.cache_read(A, "shared", [C])
    by, yi = s[C].split(C.op.axis[0], factor=tile)
    bx, xi = s[C].split(C.op.axis[1], factor=tile)
    ty, yi = s[C].split(yi, nparts=threads)
    tx, xi = s[C].split(xi, nparts=threads)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=kt)
    s[C].reorder(by, bx, ty, tx, ko, yi, xi, ki)
    for ax, t in ((by, BY), (bx, BX), (ty, TY), (tx, TX)):
        s[C].bind(ax, t)
    s[AA].compute_at(s[C], ko)
    a0, a1 = s[AA].op.axis
    s[AA].bind(s[AA].split(a0, nparts=threads)[0], TY)
    s[AA].bind(s[AA].split(a1, nparts=threads)[0], TX)
    return s, [A, B, C]


def kinds(stmt):
    return [type(s).__name__ for s in ir.walk_stmts(stmt)]


# --- lowering ---------------------------------------------------------------------------------

def test_shared_region_covers_the_block_tile_not_one_thread():
    s, args = shared_tile_matmul()
    f = lower(s, args)
    (alloc,) = [x for x in ir.walk_stmts(f.body) if isinstance(x, ir.Allocate)]
    assert alloc.buffer.scope == "shared"
    assert [str(d) for d in alloc.buffer.shape] == ["8", "4"]  # tile rows x k.inner


def test_barriers_after_the_shared_write_and_before_the_next_one():
    s, args = shared_tile_matmul()
    text = str(lower(s, args))
    body = text[text.index("for (k.outer"):]
    # In the k loop: wait for the last readers, fill the tile, wait for the fill, compute.
    assert body.index("barrier(shared)") < body.index("A.shared[")
    assert body.count("barrier(shared)") == 2
    assert body.index("+ A.shared[") > body.rindex("barrier(shared)")


def test_double_buffer_loads_the_next_tile_before_computing():
    s, args = shared_tile_matmul()
    s.stage_by_name("A.shared").double_buffer()
    text = str(lower(s, args))
    assert "allocate A.shared[float32 * 2, 8, 4]" in text
    loop = text[text.index("for (k.outer"):]
    assert loop.index("if (k.outer + 1 < 4)") < loop.index("A.shared[(k.outer + 1) % 2,") \
        < loop.index("A.shared[k.outer % 2,") < loop.index("barrier(shared)")
    assert text.count("barrier(shared)") == 2


def test_gpu_schedules_replay_from_their_steps():
    s, args = shared_tile_matmul()
    s.stage_by_name("A.shared").double_buffer()
    again = replay([args[-1]], steps_from_json(steps_to_json(s.steps)))
    assert str(lower(again, args)) == str(lower(s, args))


def test_double_buffer_needs_a_shared_stage_in_a_serial_loop():
    A, B, C = matmul(8, 8, 8)
    s = create_schedule(C.op)
    AA = s.cache_read(A, "local", [C])
    s[C].bind(C.op.axis[0], TX)
    s[AA].compute_at(s[C], C.op.reduce_axis[0])
    s[AA].double_buffer()
    with pytest.raises(Exception, match="double_buffer of A.local needs a shared stage"):
        lower(s, [A, B, C])


def test_cpu_schedules_get_no_barriers():
    # The same cache in "shared" scope without thread bindings lowers as before.
    A, B, C = matmul(8, 8, 8)
    s = create_schedule(C.op)
    AA = s.cache_read(A, "shared", [C])
    s[AA].compute_at(s[C], C.op.axis[0])
    assert "Barrier" not in kinds(lower(s, [A, B, C]).body)


def test_stage_attached_under_threads_defaults_to_local_and_under_blocks_to_shared():
    A, B, C = matmul(8, 8, 8)
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    s[C].bind(C.op.axis[0], BX)
    s[C].bind(C.op.axis[1], TX)
    s[CC].compute_at(s[C], C.op.axis[1])
    scopes = {x.buffer.name: x.buffer.scope for x in ir.walk_stmts(lower(s, [A, B, C]).body)
              if isinstance(x, ir.Allocate)}
    assert scopes == {"C.global": "local"}
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    s[C].bind(C.op.axis[0], BX)
    s[CC].compute_at(s[C], C.op.axis[0])
    scopes = {x.buffer.name: x.buffer.scope for x in ir.walk_stmts(lower(s, [A, B, C]).body)
              if isinstance(x, ir.Allocate)}
    assert scopes == {"C.global": "shared"}


def test_cross_thread_reduction_lowers_to_partials_and_a_tree():
    A = te.placeholder((4, 16), name="A")
    k = te.reduce_axis((0, 16), name="k")
    B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = create_schedule(B.op)
    s[B].bind(B.op.axis[0], BX)
    ko, _ = s[B].split(k, nparts=8)
    s[B].bind(ko, TX)
    text = str(lower(s, [A, B]))
    assert "allocate B.red0[float32 * 8], storage_scope = shared" in text
    assert text.count("barrier(shared)") == 4  # after the partials, then after 3 tree steps
    assert "if (k.outer.out == 0) {" in text


@pytest.mark.parametrize("bind, message", [
    (lambda s, B, ko, ki: (s[B].bind(ki, TX)),
     r"it must be the outermost reduction axis"),
    (lambda s, B, ko, ki: (s[B].reorder(ko, B.op.axis[0]), s[B].bind(ko, TX)),
     r"with every data axis outside it"),
])
def test_cross_thread_reduction_errors(bind, message):
    A = te.placeholder((4, 16), name="A")
    k = te.reduce_axis((0, 16), name="k")
    B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = create_schedule(B.op)
    ko, ki = s[B].split(k, nparts=4)
    bind(s, B, ko, ki)
    with pytest.raises(Exception, match=message):
        lower(s, [A, B])


# --- kernels and launch configuration ---------------------------------------------------------

def test_launch_configuration_from_bound_extents():
    s, args = shared_tile_matmul(n=20)
    source, p, fn, names = generate(lower(s, args))
    (k,) = p.kernels
    assert k.block == (4, 4, 1)
    assert [str(g) for g in k.grid] == ["3", "3", "1"]
    assert k.shared_bytes == 8 * 4 * 4
    assert names == ["main_kernel0"] and fn == "main"
    compile(source, "<cuda>", "exec")  # it is Python


def test_symbolic_grid_is_computed_by_the_host_function():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=32)
    s[B].bind(bx, BX)
    s[B].bind(tx, TX)
    source, *_ = generate(lower(s, [A, B]))
    assert "launch(main_kernel0, ((n + 31) // 32, 1, 1), (32, 1, 1), A, B, n)" in source


def test_float32_constants_stay_float32():
    s, args, _ = elementwise()
    source, *_ = generate(lower(s, args))
    assert "FLOAT32_2p0 = np.float32(2.0)" in source
    assert "A[u64(i_outer * 32 + i_inner)] * FLOAT32_2p0" in source


def test_options_parse_tvm_flags():
    assert CudaOptions.parse(["-arch=sm_80", "-fastmath=1"]).fastmath is True
    with pytest.raises(BuildError, match="unknown cuda target flag"):
        CudaOptions.parse(["-vectorize=4"])


def unbound():
    A, B, C = matmul(8, 8, 8)
    return create_schedule(C.op), [A, B, C]


def too_many_threads():
    s, args, _ = elementwise(n=4096, factor=2048)
    return s, args


def too_much_shared_memory():
    s, args = shared_tile_matmul(n=256, tile=128, threads=16, kt=128)
    return s, args


def symbolic_thread_extent():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], nparts=4)
    s[B].bind(bx, BX)
    s[B].bind(tx, TX)
    return s, [A, B]


def parallel_inside_a_kernel():
    A, B, C = matmul(8, 8, 8)
    s = create_schedule(C.op)
    s[C].bind(C.op.axis[0], BX)
    s[C].parallel(C.op.axis[1])
    return s, [A, B, C]


@pytest.mark.parametrize("make, message", [
    (unbound, r"main: the kernel of C is not bound to GPU threads: bind its outer axes"),
    (too_many_threads, r"2048 threads per block \(threadIdx.x=2048\) > the limit of 1024"),
    (too_much_shared_memory, (r"65536 bytes of shared memory per block > the limit of 49152 "
                              r"\(A.shared \(65536 B\)\)")),
    (symbolic_thread_extent, r"threadIdx.x is bound to a loop of symbolic extent"),
    (parallel_inside_a_kernel, r"loop j is 'parallel', a cpu annotation"),
])
def test_launch_errors(make, message):
    s, args = make()
    with pytest.raises(BuildError, match=message):
        generate(lower(s, args))


# --- machines without a GPU or without numba-cuda ---------------------------------------------

def run_python(code: str, env_drop=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


BUILD = """
    import te
    from runtime import BuildError, build
    from schedules import create_schedule
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
    s = create_schedule(B.op)
    s[B].bind(B.op.axis[0], te.thread_axis("threadIdx.x"))
    try:
        build(s, [A, B], target="cuda")
        print("BUILT")
    except BuildError as err:
        print("ERROR", err)
"""


def test_without_a_gpu_cuda_is_a_clear_error():
    proc = run_python(BUILD, env_drop=("NUMBA_ENABLE_CUDASIM",))
    assert proc.returncode == 0, proc.stderr
    if "BUILT" in proc.stdout:
        pytest.skip("this machine has a CUDA GPU")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "ERROR target 'cuda'" in proc.stdout
    assert ("no usable CUDA GPU" in proc.stdout and "NUMBA_ENABLE_CUDASIM=1" in proc.stdout) \
        or "needs numba's CUDA support" in proc.stdout


def test_without_numba_cuda_the_error_says_what_to_install():
    proc = run_python("import sys; sys.modules['numba.cuda'] = None\n" + textwrap.dedent(BUILD),
                      env_drop=("NUMBA_ENABLE_CUDASIM",))
    assert proc.returncode == 0, proc.stderr
    assert "needs numba's CUDA support" in proc.stdout
    assert "pip install 'tetune[cuda]'" in proc.stdout


def test_the_cuda_benchmark_stops_clearly_without_a_gpu():
    if "BUILT" in run_python(BUILD, env_drop=("NUMBA_ENABLE_CUDASIM",)).stdout:
        pytest.skip("this machine has a CUDA GPU")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "benchmarks/cuda.py", "--only", "elementwise"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "benchmarks/cuda.py needs a CUDA GPU: target 'cuda'" in proc.stderr
    assert "Traceback" not in proc.stderr


class FakeDeviceArray:
    """Just the ``__cuda_array_interface__`` of a GPU array (as CuPy and torch expose it)."""

    def __init__(self, shape, typestr="<f4", strides=None):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0, False),
                                         "strides": strides, "version": 3}


def test_device_arrays_are_checked_through_their_interface_and_passed_as_they_are():
    from runtime.codegen_cuda import CudaOptions
    from runtime.cuda_module import CudaModule
    from runtime.cuda_passes import plan

    s, args, _ = elementwise()
    func = lower(s, args)
    module = CudaModule(func, "", None, plan(func, CudaOptions()), [])
    a, b = FakeDeviceArray((64,)), FakeDeviceArray((64,))
    assert module.bind([a, b]) == [a, b]
    with pytest.raises(ArgumentError, match="A must have dtype float32, got float64"):
        module.bind([FakeDeviceArray((64,), "<f8"), b])
    with pytest.raises(ArgumentError, match=r"must have shape \(64\), got \(32,\)"):
        module.bind([FakeDeviceArray((32,)), b])
    with pytest.raises(ArgumentError, match="C-contiguous device array"):
        module.bind([FakeDeviceArray((64,), strides=(8,)), b])
