"""Tests for runtime.kernel_cache (the on-disk cache of generated kernels)."""

import json
import linecache
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from runtime import kernel_cache as kc

REPO = Path(__file__).resolve().parents[1]

PY_SOURCE = textwrap.dedent("""
    def scale(x, k):
        return x * k

    def boom():
        raise ValueError("generated line 6")
""")

NUMBA_SOURCE = textwrap.dedent("""
    import numba

    @numba.njit(cache=True)
    def axpy(a, x, y):
        for i in range(x.shape[0]):
            y[i] += a * x[i]
""")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(root))
    yield root
    kc.clear_cache()  # also drops loaded kernel modules from sys.modules


def forget(mod):
    """Simulate a fresh process for this module: the next load_module re-imports it."""
    del sys.modules[mod.__name__]


# --- names and locations ---------------------------------------------------

@pytest.mark.parametrize("hint, expected", [
    ("conv2d", "conv2d"),
    ("/model/layer.0/Conv", "_model_layer_0_Conv"),
    ("naïve 'ops' \"x\"", "na_ve_ops_x_"),
    ("卷积/层", "_"),
    ("", "kernel"),
])
def test_sanitize_name(hint, expected):
    assert kc.sanitize_name(hint) == expected


def test_sanitize_name_caps_length():
    assert kc.sanitize_name("a" * 100) == "a" * 40


def test_cache_dir_respects_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(tmp_path / "a" / "b"))
    assert kc.cache_dir() == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_cache_dir_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("TETUNE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kc.cache_dir() == tmp_path / "xdg" / "tetune"


def test_environment_key_is_stable_and_tracks_numba_config(monkeypatch):
    from numba.core import config

    key = kc.environment_key()
    assert key == kc.environment_key()
    assert key == kc.sanitize_name(key, max_len=1000)  # safe as a directory name
    monkeypatch.setattr(config, "SLP_VECTORIZE", not config.SLP_VECTORIZE)
    assert kc.environment_key() != key


# --- load_module with plain Python source ------------------------------------

def test_load_module_writes_hashed_file_and_reuses_it(cache):
    mod = kc.load_module(PY_SOURCE, "model/scale.0")
    path = Path(mod.__file__)
    assert path.parent == cache / kc.environment_key()
    prefix = "k_model_scale_0_"
    assert path.name.startswith(prefix) and len(path.stem) == len(prefix) + 16
    assert path.read_text() == PY_SOURCE
    assert mod.scale(3, 2) == 6
    assert kc.load_module(PY_SOURCE, "model/scale.0") is mod  # in-process memo

    stat = path.stat()
    forget(mod)
    mod2 = kc.load_module(PY_SOURCE, "model/scale.0")
    assert mod2 is not mod and mod2.scale(1, 5) == 5
    after = path.stat()  # an intact file is never rewritten
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_flags_key_and_source_change_the_file(cache):
    a = kc.load_module(PY_SOURCE, "k")
    b = kc.load_module(PY_SOURCE, "k", flags_key="fastmath")
    c = kc.load_module(PY_SOURCE + "\n# v2\n", "k")
    assert len({a.__file__, b.__file__, c.__file__}) == 3
    assert kc.entry_path(PY_SOURCE, "k", "fastmath") == Path(b.__file__)


def test_tracebacks_and_linecache_show_generated_source(cache):
    mod = kc.load_module(PY_SOURCE, "tb")
    with pytest.raises(ValueError) as info:
        mod.boom()
    text = "".join(traceback.format_exception(info.value))
    assert 'raise ValueError("generated line 6")' in text


def test_linecache_survives_deleting_the_file(cache):
    mod = kc.load_module(PY_SOURCE, "lc")
    Path(mod.__file__).unlink()
    linecache.checkcache()
    assert "return x * k" in linecache.getline(mod.__file__, 3)


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],   # truncated mid-write
    lambda text: "\x00garbage(((\n",        # overwritten
    lambda text: "",                        # empty
])
def test_corrupt_source_file_is_rebuilt(cache, damage):
    mod = kc.load_module(PY_SOURCE, "corrupt")
    path = Path(mod.__file__)
    path.write_text(damage(PY_SOURCE))
    forget(mod)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        mod2 = kc.load_module(PY_SOURCE, "corrupt")
    assert path.read_text() == PY_SOURCE
    assert mod2.scale(2, 2) == 4


def test_bug_in_generated_code_is_raised_not_cached_as_module(cache):
    with pytest.raises(SyntaxError):
        kc.load_module("def broken(:\n    pass\n", "bad")
    with pytest.raises(NameError):
        kc.load_module("undefined_name\n", "bad2")
    assert not [m for m in sys.modules if m.startswith("_tetune_k_bad")]


def test_purge_and_clear_cache(cache):
    mod = kc.load_module(PY_SOURCE, "p")
    path = Path(mod.__file__)
    assert mod.__name__ in sys.modules
    (path.parent / "__pycache__").mkdir(exist_ok=True)
    fake_nbi = path.parent / "__pycache__" / f"{path.stem}.scale-2.py311.nbi"
    fake_nbi.write_bytes(b"x")
    kc.purge(path)
    assert not path.exists() and not fake_nbi.exists()
    assert kc.load_module(PY_SOURCE, "p") is not mod  # re-created after purge

    old_env = cache / "v0_old_environment"
    old_env.mkdir()
    kc.clear_cache(stale_only=True)
    assert not old_env.exists() and path.exists()
    kc.clear_cache()
    assert list(cache.iterdir()) == []


# --- numba's own cache ---------------------------------------------------------

def _axpy_once(mod):
    import numpy as np

    x = np.arange(4.0)
    y = np.ones(4)
    mod.axpy(2.0, x, y)
    assert y.tolist() == [1.0, 3.0, 5.0, 7.0]
    stats = mod.axpy.stats
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


def test_numba_cache_hit_and_corrupt_index_recovery(cache):
    mod = kc.load_module(NUMBA_SOURCE, "axpy")
    assert _axpy_once(mod) == (0, 1)  # compiled and saved
    # __pycache__ next to the file, or under $NUMBA_CACHE_DIR when that is set (as in CI).
    numba_dir = Path(mod.axpy.stats.cache_path)
    assert list(numba_dir.glob("k_axpy_*.nbi")) and list(numba_dir.glob("k_axpy_*.nbc"))

    forget(mod)
    assert _axpy_once(kc.load_module(NUMBA_SOURCE, "axpy")) == (1, 0)  # loaded from disk

    for f in numba_dir.glob("k_axpy_*.nb[ic]"):
        f.write_bytes(b"\x80\x04garbage")  # a crash or disk error mid-save
    forget(sys.modules[mod.__name__])
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert _axpy_once(kc.load_module(NUMBA_SOURCE, "axpy")) == (0, 1)  # recompiled, not fatal

    forget(sys.modules[mod.__name__])
    assert _axpy_once(kc.load_module(NUMBA_SOURCE, "axpy")) == (1, 0)  # and the rewrite is good

    kc.purge(mod.__file__)
    assert not list(numba_dir.glob("k_axpy_*"))


# --- fresh processes -----------------------------------------------------------

WORKER = textwrap.dedent("""
    import json, os, sys, time
    t0 = time.perf_counter()
    import numpy as np, numba
    t1 = time.perf_counter()
    from runtime import kernel_cache as kc
    barrier = os.environ.get("BARRIER")
    if barrier:  # line both workers up so they really build at the same time
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        deadline = time.time() + 60
        while len(os.listdir(barrier)) < 2 and time.time() < deadline:
            time.sleep(0.005)
    t2 = time.perf_counter()
    mod = kc.load_module(sys.argv[1], "axpy")
    x = np.arange(4.0); y = np.ones(4)
    mod.axpy(2.0, x, y)
    t3 = time.perf_counter()
    print(json.dumps(dict(
        ok=y.tolist() == [1.0, 3.0, 5.0, 7.0], file=mod.__file__,
        hits=sum(mod.axpy.stats.cache_hits.values()),
        misses=sum(mod.axpy.stats.cache_misses.values()),
        import_s=t1 - t0, load_and_first_call_s=t3 - t2)))
""")


def _spawn(cache, source, barrier=None):
    env = dict(os.environ, TETUNE_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if barrier:
        env["BARRIER"] = str(barrier)
    return subprocess.Popen([sys.executable, "-c", WORKER, source], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_concurrent_cold_builds_then_warm_load_in_fresh_process(cache, tmp_path):
    # A marker no other test uses, so this entry starts cold.
    source = NUMBA_SOURCE + "\n# concurrent\n"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [_spawn(cache, source, barrier) for _ in range(2)]
    cold = [_result(p) for p in procs]
    assert all(r["ok"] for r in cold)
    assert cold[0]["file"] == cold[1]["file"]
    entry_dir = Path(cold[0]["file"]).parent
    written = [p.name for p in entry_dir.iterdir() if p.suffix in (".py", ".tmp")]
    assert written == [Path(cold[0]["file"]).name]  # one file, no leftover temp files
    assert Path(cold[0]["file"]).read_text() == source

    warm = _result(_spawn(cache, source))
    assert warm["ok"] and warm["hits"] == 1 and warm["misses"] == 0
    for name, r in [("cold A", cold[0]), ("cold B", cold[1]), ("warm", warm)]:
        print(f"{name}: import numpy+numba {r['import_s']:.2f} s, "
              f"load_module + first call {r['load_and_first_call_s']:.2f} s "
              f"(hits={r['hits']}, misses={r['misses']})")
