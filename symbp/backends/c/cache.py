"""The C backend's build cache: built package folders by content, safe under concurrency.

A build is a package folder: the wrapper ``__init__.py``, the C source and the compiled
extension. Its cache key hashes everything that decides the binary (C source, cffi
declarations, wrapper, the toolchain's identity). Each build happens in a private temporary
folder renamed into place atomically, so several processes building the same network all
succeed and none loads a half-written module; an entry whose files no longer match its
manifest is rebuilt. Replacing a damaged entry happens under a lock on the cache folder, so
no process ever removes an entry another one just made.

Beside the entries, the folder ``.index`` maps spec keys (see ``symbp.compiler``) to entries,
so that a spec compiled before is found without parsing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

from . import toolchain
from .toolchain import BuildError, build_package

INDEX = ".index"  # spec key -> entry, in the cache folder


def cache_dir() -> Path:
    """``SYMBP_CACHE_DIR``, else ``$XDG_CACHE_HOME/symbp``, else ``~/.cache/symbp``."""
    if os.environ.get("SYMBP_CACHE_DIR"):
        return Path(os.environ["SYMBP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "symbp"


def cache_key(files: dict[str, str], cdef: str, module: str) -> str:
    parts = [json.dumps(files, sort_keys=True), cdef, module, *toolchain.identity()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _valid(entry: Path, module: str, c_file: str) -> bool:
    """Does the entry hold the wrapper, the C source and the extension, each matching the
    digest its manifest records? (A missing, truncated, replaced or garbled file: no.)"""
    try:
        expected = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        names = set(expected)
        extension = any(
            name.startswith(f"{module}.") and name.endswith(suffix)
            for name in names
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
        )
        return (
            extension
            and {"__init__.py", c_file} <= names
            and all(
                isinstance(digest, str)
                and name == Path(name).name
                and _digest(entry / name) == digest
                for name, digest in expected.items()
            )
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return False


@contextlib.contextmanager
def _locked(path: Path, create: bool = False, patience: float = 600.0):
    """Hold an exclusive lock on ``path`` (a folder, or a lock file made if ``create``).

    A process that dies releases its locks. After ``patience`` seconds of waiting the body
    runs anyway: the locks spare work or order renames, and every rename is atomic.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: renames alone must do
        yield
        return
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if create:
            raise
        yield  # a folder we may write but not open: renames alone must do
        return
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def cached_package(files: dict[str, str], cdef: str, module: str, c_file: str) -> Path:
    """The cache entry for these files, built if missing or damaged.

    Processes wanting the same missing entry take turns on its lock file: one builds, the
    others find its entry when their turn comes.
    """
    root = cache_dir()
    key = cache_key(files, cdef, module)
    entry = root / key
    if entry.is_dir() and _valid(entry, module, c_file):
        return entry
    with contextlib.ExitStack() as stack:
        try:
            if root.exists() and not root.is_dir():
                raise NotADirectoryError(20, "exists and is not a folder")
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_locked(root / f".{key}.lock", create=True))
            if entry.is_dir() and _valid(entry, module, c_file):  # built while we waited
                return entry
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        except OSError as e:
            raise BuildError(
                f"cannot write the build cache {root}: {e.strerror or e}; set "
                "SYMBP_CACHE_DIR to a writable folder"
            ) from None
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)  # gone once renamed
        build_package(tmp, files, cdef, module, c_file)
        manifest = {p.name: _digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        with _locked(root):  # no other process checks, discards or renames in between
            if not (entry.is_dir() and _valid(entry, module, c_file)):  # else another won
                if os.path.lexists(entry):
                    _discard(entry)
                os.rename(tmp, entry)  # atomic: readers see the whole entry or none
    return entry


def _discard(entry: Path) -> None:
    """Move a damaged entry aside (rename is atomic), then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=entry.parent))
    with contextlib.suppress(FileNotFoundError):
        os.rename(entry, trash / "entry")
    shutil.rmtree(trash, ignore_errors=True)


def indexed(key: str) -> Path | None:
    """The entry the spec index records under ``key``, if its files still match its
    manifest; else None (no record, a garbled one, a missing or damaged entry)."""
    root = cache_dir()
    try:
        record = json.loads((root / INDEX / f"{key}.json").read_text(encoding="utf-8"))
        names = [record["entry"], record["module"], record["c_file"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(
        isinstance(n, str) and n and n == Path(n).name and not n.startswith(".") for n in names
    ):
        return None
    entry = root / names[0]
    return entry if entry.is_dir() and _valid(entry, names[1], names[2]) else None


def remember(key: str, entry: Path, module: str, c_file: str) -> None:
    """Record ``entry`` under the spec key ``key`` (atomically; not at all in a cache folder
    this process may not write)."""
    folder = cache_dir() / INDEX
    tmp = None
    try:
        folder.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"entry": entry.name, "module": module, "c_file": c_file}, f)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def load_package(path: Path, name: str) -> types.ModuleType:
    """Import the package folder at ``path`` under a unique module name."""
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def cache_info() -> dict:
    root = cache_dir()
    entries = (
        [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if root.is_dir()
        else []
    )
    size = sum(f.stat().st_size for e in entries for f in e.rglob("*") if f.is_file())
    return {"path": str(root), "entries": len(entries), "bytes": size}


def cache_clear() -> int:
    root = cache_dir()
    if not root.is_dir():
        return 0
    count = 0
    for p in list(root.iterdir()):
        if p.name.startswith(".") and p.name.endswith(".lock") and p.is_file():
            p.unlink(missing_ok=True)
        elif p.is_dir():
            _discard(p) if not p.name.startswith(".") else shutil.rmtree(p, ignore_errors=True)
            count += not p.name.startswith(".")
    return count
