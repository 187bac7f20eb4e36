"""On-disk cache of generated numba kernels.

numba can only cache (``cache=True``) functions that live in a real file, so
``exec()`` of generated source cannot be cached.  Instead each generated module
is written to ``<cache_dir>/<environment_key>/k_<hint>_<hash16>.py`` and imported
from there; numba then keeps its index/object files (``.nbi``/``.nbc``) in the
``__pycache__`` folder next to it (or under $NUMBA_CACHE_DIR if set), and a later
process loads the machine code instead of compiling again.

Damage is repaired, not fatal: a .py file whose bytes differ from the source is
rewritten, and an unreadable numba index/object file leads to a recompile.

The file name is a content hash of the source, the caller's flags and the
environment key, so a file is never rewritten with different contents: a new
source gets a new file, and a new numba/LLVM/CPU gets a new sub-directory.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import linecache
import os
import re
import shutil
import sys
import tempfile
import threading
import types
import warnings
from pathlib import Path

# Bump when the layout of cached files, or anything that generated kernels
# import at run time (helper intrinsics, calling conventions), changes in a way
# the generated source text does not show.  numba does not notice changes in
# jitted functions that a cached kernel calls from *another* file.
FORMAT_VERSION = 1

# Prefix of the sys.modules names of loaded kernels.  The name must be the same
# in every process: numba's cached code records its module's ``__name__`` and
# re-imports it by that name (numba.core.environment._rebuild_env) when it loads
# the object code, so a per-process name would break cache hits.
_MODULE_PREFIX = "_tetune_"

_lock = threading.RLock()


def cache_dir() -> Path:
    """Return the cache root: $TETUNE_CACHE_DIR, else $XDG_CACHE_HOME/tetune or ~/.cache/tetune."""
    env = os.environ.get("TETUNE_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        path = base / "tetune"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sanitize_name(hint: str, max_len: int = 40) -> str:
    """Turn an arbitrary (e.g. ONNX node) name into a short ASCII identifier fragment."""
    # re.ASCII is implied by the explicit class; unicode letters become "_" too.
    name = re.sub(r"[^A-Za-z0-9_]+", "_", str(hint))[:max_len]
    return name or "kernel"


@functools.lru_cache(maxsize=None)
def _static_environment() -> tuple:
    # Things that cannot change while the process runs; computed once because
    # asking LLVM for the host features costs about a millisecond.
    import llvmlite
    import llvmlite.binding as ll
    import numba

    try:
        cpu_name = ll.get_host_cpu_name()
        cpu_features = ll.get_host_cpu_features().flatten()
    except Exception:  # some platforms cannot report features; name still helps
        cpu_name, cpu_features = ll.get_host_cpu_name(), ""
    return (
        FORMAT_VERSION,
        numba.__version__,
        llvmlite.__version__,
        sys.version,
        sys.implementation.cache_tag,
        cpu_name,
        cpu_features,
    )


def _config_environment() -> tuple:
    # numba config that changes the generated machine code.  Read every call:
    # numba.core.config.reload_config() can change it inside a process.
    from numba.core import config

    names = (
        "OPT", "SLP_VECTORIZE", "LOOP_VECTORIZE", "ENABLE_AVX", "CPU_NAME",
        "CPU_FEATURES", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "DISABLE_INTEL_SVML",
    )
    return tuple((n, str(getattr(config, n, None))) for n in names)


def environment_key() -> str:
    """Return a short directory-safe key that changes whenever cached machine code may be stale."""
    import numba

    static = _static_environment()
    digest = hashlib.sha256(repr((static, _config_environment())).encode()).hexdigest()[:12]
    vi = sys.version_info
    # Readable prefix so a human can tell which sub-directories are old.
    prefix = sanitize_name(f"v{FORMAT_VERSION}_nb{numba.__version__}_py{vi.major}{vi.minor}")
    return f"{prefix}_{digest}"


def entry_path(source: str, name_hint: str, flags_key: str = "") -> Path:
    """Return the path of the cached .py file for this source (it may not exist yet)."""
    env = environment_key()
    h = hashlib.sha256()
    for part in (source, flags_key, env):
        # Length-prefix each part so ("ab", "c") and ("a", "bc") hash differently.
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    stem = f"k_{sanitize_name(name_hint)}_{h.hexdigest()[:16]}"
    return cache_dir() / env / f"{stem}.py"


def load_module(source: str, name_hint: str, flags_key: str = "") -> types.ModuleType:
    """Import generated source through the on-disk cache and return the module."""
    path = entry_path(source, name_hint, flags_key)
    modname = _MODULE_PREFIX + path.stem
    data = source.encode("utf-8")
    with _lock:
        mod = sys.modules.get(modname)
        if mod is not None and getattr(mod, "__file__", None) == str(path):
            return mod  # already loaded in this process
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_if_needed(path, data)
        # Errors raised here (SyntaxError, NameError, ...) are bugs in the
        # generated code, not cache corruption: the file was just verified.
        mod = _import(modname, path, source)
        # A real file already makes tracebacks work, but registering the text
        # with mtime None keeps it visible to pdb/tracebacks even after purge().
        linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))
        return mod


def _write_if_needed(path: Path, data: bytes) -> None:
    # Verifying the bytes (not just existence) catches files that were
    # truncated by a crash or a full disk; the name is a hash of the expected
    # content, so any difference means corruption.
    try:
        if path.read_bytes() == data:
            return
        corrupt = True
    except FileNotFoundError:
        corrupt = False
    if corrupt:
        warnings.warn(f"tetune: cache entry {path.name} is corrupt; rewriting it",
                      RuntimeWarning, stacklevel=3)
        purge(path)  # drop numba files that were built from the bad text
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            # link() fails if the name exists, so when two processes race the
            # first complete file wins and is never replaced under the other
            # one.  (numba stamps its index with a hash of the file's bytes, so
            # a rewrite would not break hits, but a file that never moves is
            # easier to reason about.)
            os.link(tmp, path)
        except FileExistsError:
            if path.read_bytes() != data:  # the winner's file is bad: replace it
                os.replace(tmp, path)
                tmp = None
        except OSError:
            # Filesystems without hard links: an atomic rename is still safe
            # because every writer writes identical bytes.
            os.replace(tmp, path)
            tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _import(modname: str, path: Path, source: str) -> types.ModuleType:
    # The spec gives the module a real __file__ (numba's cache locator needs
    # it), but we compile the verified in-memory text ourselves instead of
    # letting the loader read the file again or trust a .pyc that could be
    # corrupt; compiling even a long kernel costs milliseconds.
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    # Registered before exec (as a normal import does) so numba can find the
    # module by name when it rebuilds cached code.
    sys.modules[modname] = mod
    try:
        exec(compile(source, str(path), "exec"), mod.__dict__)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    _harden_numba_caches(mod)
    return mod


def _harden_numba_caches(mod: types.ModuleType) -> None:
    # numba reads its cache lazily at the first call of each signature, and a
    # corrupt .nbi/.nbc then raises (e.g. UnpicklingError) from the user's
    # call.  Wrap each dispatcher's cache loader so such a failure empties the
    # index and falls through to a normal compile, which rewrites the entry.
    from numba.core.dispatcher import Dispatcher

    for obj in vars(mod).values():
        if not isinstance(obj, Dispatcher):
            continue
        cache = getattr(obj, "_cache", None)
        load = getattr(cache, "load_overload", None)
        if load is None or getattr(load, "_tetune_guarded", False):
            continue

        name = getattr(obj, "__name__", "?")

        def guarded(sig, target_context, _load=load, _cache=cache, _name=name):
            try:
                return _load(sig, target_context)
            except Exception as exc:
                warnings.warn(f"tetune: numba cache for {_name} is unreadable "
                              f"({type(exc).__name__}: {exc}); recompiling",
                              RuntimeWarning, stacklevel=2)
                try:
                    _cache.flush()  # writes an empty index, so the next save starts clean
                except Exception:
                    pass
                return None

        guarded._tetune_guarded = True
        cache.load_overload = guarded  # instance attribute shadows the method


def purge(path: os.PathLike | str) -> None:
    """Delete one cache entry: its .py file, its bytecode and numba's index/object files."""
    path = Path(path)
    stem = path.stem
    with _lock:
        _purge(path, stem)


def _purge(path: Path, stem: str) -> None:
    # numba names its files "<stem>.<qualname>-<line>.pyXY[.N].nbi/.nbc".
    victims = [path]
    for d in _numba_cache_dirs(path.parent):
        if d.is_dir():
            victims += d.glob(f"{stem}.*")
    for p in victims:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    _forget(lambda mod: getattr(mod, "__file__", None) == str(path))
    linecache.cache.pop(str(path), None)


def _numba_cache_dirs(entry_dir: Path) -> list[Path]:
    # Where numba may keep index/object files for kernels in entry_dir: next to
    # them in __pycache__ by default, under $NUMBA_CACHE_DIR when that is set
    # (CI sets it), or in numba's user-wide dir when __pycache__ is read-only.
    from numba.core import caching, config
    from numba.misc.appdirs import AppDirs

    sub = caching.UserProvidedCacheLocator.get_suitable_cache_subpath(str(entry_dir / "x.py"))
    user_wide = Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)
    dirs = [entry_dir / "__pycache__", user_wide / sub]
    if config.CACHE_DIR:
        dirs.append(Path(config.CACHE_DIR) / sub)
    return dirs


def clear_cache(stale_only: bool = False) -> None:
    """Delete the whole cache (or, with stale_only, only other environments' sub-directories)."""
    root = cache_dir()
    keep = environment_key() if stale_only else None
    with _lock:
        _clear(root, keep)


def _clear(root: Path, keep: str | None) -> None:
    for child in root.iterdir():
        if child.name == keep:
            continue
        if child.is_dir() and not child.is_symlink():
            for d in _numba_cache_dirs(child)[1:]:  # numba files kept outside the entry dir
                shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if keep is None:
        # Loaded kernels keep working (their code is in memory), but the next
        # load_module must re-create the files rather than return the module.
        _forget(lambda mod: True)


def _forget(pred) -> None:
    for name in [n for n in sys.modules if n.startswith(_MODULE_PREFIX)]:
        mod = sys.modules.get(name)
        if mod is not None and pred(mod):
            del sys.modules[name]
