"""Building C modules through cffi, with a content-addressed cache safe under concurrency.

A build is a package folder: the wrapper ``__init__.py``, the C source and the compiled
extension. Its cache key hashes everything that decides the binary (C source, cffi
declarations, wrapper, compiler path and version, flags, this build recipe, cffi, Python ABI,
BLAS version). Each build happens in a private temporary folder renamed into place
atomically, so several processes building the same network all succeed and none loads a
half-written module; an entry whose files no longer match its manifest is rebuilt. Replacing
a damaged entry happens under a lock on the cache folder, so no process ever removes an entry
another one just made.

The extension is three translation units compiled at once by the C compiler itself: the two
halves of the generated C with the optimizing flags, and cffi's glue (Python's C API,
argument conversion) at -O0, as fast to call. All hide their symbols: calls between them are
direct.

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
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from functools import cache, lru_cache
from pathlib import Path

DEFAULT_FLAGS = ("-O3", "-march=native", "-std=gnu99", "-fno-math-errno", "-fopenmp-simd", "-g0")
GLUE_FLAGS = ("-O0", "-g0", "-DNDEBUG")  # cffi's glue: argument conversions, as fast at -O0
INDEX = ".index"  # spec key -> entry, in the cache folder
TEMPLATES = ".templates"  # compiled jinja2 templates (symbp.render), in the cache folder
_RECIPE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # how builds are made


class BuildError(RuntimeError):
    """The C toolchain is missing or failed."""


def cache_dir() -> Path:
    """``SYMBP_CACHE_DIR``, else ``$XDG_CACHE_HOME/symbp``, else ``~/.cache/symbp``."""
    if os.environ.get("SYMBP_CACHE_DIR"):
        return Path(os.environ["SYMBP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "symbp"


def compiler() -> str:
    """The C compiler Python's build tools use (``CC``, else the interpreter's own)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()[0]


@cache
def _compiler_identity(cc: str) -> str:
    path = shutil.which(cc)
    if path is None:
        raise BuildError(
            f"no C compiler found (looked for {cc!r}); install one (e.g. gcc) or use "
            "--backend numpy"
        )
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"the C compiler {path} does not run: {e}") from None
    return f"{path} {' '.join(version)}"


def flags() -> tuple[str, ...]:
    """Compiler flags: ``SYMBP_CFLAGS`` overrides the default -O3 -march=native."""
    extra = os.environ.get("SYMBP_CFLAGS")
    return tuple(extra.split()) if extra is not None else DEFAULT_FLAGS


def _blas() -> tuple[str, str, str]:
    """(include dir, lib dir, library name) of scipy-openblas32."""
    try:
        import scipy_openblas32 as ob
    except ImportError:
        raise BuildError(
            "the C backend needs the scipy-openblas32 package: pip install scipy-openblas32"
        ) from None
    return ob.get_include_dir(), ob.get_lib_dir(), ob.get_library()


@lru_cache(maxsize=1)
def _has_libmvec() -> bool:
    """glibc's vector math library (vectorized exp and log), on x86-64 Linux."""
    import ctypes.util
    import platform

    return (
        platform.system() == "Linux"
        and platform.machine() in ("x86_64", "AMD64")
        and (ctypes.util.find_library("mvec") is not None)
    )


@lru_cache(maxsize=1)
def _cpu_identity() -> str:
    """The CPU the default -march=native builds for: a cache shared by several machines (a
    network home folder) must not hand one machine's binary to another, whose CPU may lack
    its instructions."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def cache_key(files: dict[str, str], cdef: str, module: str) -> str:
    import cffi

    include, libdir, lib = _blas()
    parts = [
        json.dumps(files, sort_keys=True),
        cdef,
        module,
        _compiler_identity(compiler()),
        " ".join(flags()),
        cffi.__version__,
        sys.implementation.cache_tag,
        sysconfig.get_config_var("EXT_SUFFIX") or "",
        libdir,
        lib,
        os.environ.get("SYMBP_SANITIZE", ""),
        str(_has_libmvec()),
        _cpu_identity(),
        _RECIPE,
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _stamp(path: str | None) -> str:
    """A file's real path, size and modification time: any reinstall changes it."""
    if path is None:
        return "none"
    try:
        real = os.path.realpath(path)
        s = os.stat(real)
        return f"{real} {s.st_size} {s.st_mtime_ns}"
    except OSError:
        return f"{path} missing"


def toolchain_stamp() -> str:
    """What ``cache_key`` learns from the toolchain, from cheap looks alone (no subprocess,
    no import of the BLAS): the compiler's file, the flags and settings, the BLAS's files,
    cffi's version, the Python ABI, the CPU and the C library. For the spec index, which
    must miss whenever the cache key could differ."""
    import importlib.util

    try:
        import _cffi_backend

        cffi_version = _cffi_backend.__version__
    except ImportError:
        cffi_version = "none"
    blas = importlib.util.find_spec("scipy_openblas32")
    blas_files = []
    if blas is not None and blas.origin:
        libdir = Path(blas.origin).parent / "lib"
        blas_files = [blas.origin, str(libdir)]
        with contextlib.suppress(OSError):
            blas_files += sorted(str(p) for p in libdir.iterdir() if p.is_file())
    parts = [
        compiler(),
        _stamp(shutil.which(compiler())),
        " ".join(flags()),
        os.environ.get("SYMBP_SANITIZE", ""),
        cffi_version,
        sys.implementation.cache_tag,
        importlib.machinery.EXTENSION_SUFFIXES[0],
        *map(_stamp, blas_files),
        _cpu_identity(),
        os.uname().machine if hasattr(os, "uname") else "",
        _libc(),
        _RECIPE,
    ]
    return "\n".join(parts)


def _libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return ""


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


def _shared_flags(var: str, default: list[str]) -> list[str]:
    """Python's flags for shared objects (CCSHARED, LDSHARED without its compiler)."""
    words = (sysconfig.get_config_var(var) or "").split()
    if var == "LDSHARED":
        words = words[1:]
    return words or default


def _run(commands: list[list[str]], c_file: str) -> None:
    """Run the compiler commands at once (one per core they may use); BuildError if any
    fails."""
    try:
        procs = [
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
            )
            for cmd in commands
        ]
    except OSError as e:
        raise BuildError(f"the C compiler {compiler()!r} does not run: {e}") from None
    failures = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            lines = [line for line in (err + out).splitlines() if line.strip()]
            detail = next((line for line in lines if "error" in line), lines[-1] if lines else "")
            failures.append(f"exit code {proc.returncode}: {detail.strip()[:300]}")
    if failures:
        raise BuildError(
            f"compiling {c_file} with the C compiler {compiler()!r} failed: {failures[0]}; "
            "set CC to a working C compiler or use --backend numpy"
        )


def build_package(dest: Path, files: dict[str, str], cdef: str, module: str, c_file: str) -> None:
    """Compile ``files`` (name -> text; ``c_file`` the C source) into a package at ``dest``."""
    import cffi

    include, libdir, lib = _blas()
    _compiler_identity(compiler())  # a BuildError naming it if there is none
    cc = shutil.which(compiler())
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (dest / name).write_text(text, encoding="utf-8")
    work = Path(tempfile.mkdtemp(prefix="build-", dir=dest))
    try:
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        # the declarations only: the kernels are compiled apart
        ffi.set_source(module, cdef, compiler_verbose=False)
        glue = work / f"{module}.c"
        ffi.emit_c_code(str(glue))
        # -fwrapv as Python builds extensions (gcc vectorizes some kernels better with it)
        both = [*_shared_flags("CCSHARED", ["-fPIC"]), "-fvisibility=hidden", "-fwrapv"]
        kernel = [*flags(), f"-I{include}"]
        link = [f"-L{libdir}", f"-l{lib}", f"-Wl,-rpath,{libdir}"]
        if _has_libmvec():
            kernel.append("-DSYMBP_MVEC")
            link.append("-lmvec")
        sanitize = os.environ.get("SYMBP_SANITIZE")
        last = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"] if sanitize else []
        link += last[:1]
        paths = sysconfig.get_paths()
        python = [f"-I{d}" for d in dict.fromkeys([paths["include"], paths["platinclude"]])]
        objects = [str(work / f"part{k}.o") for k in (1, 2)] + [str(work / "glue.o")]
        _run(
            [
                *(
                    [
                        cc,
                        "-c",
                        *both,
                        *kernel,
                        *last,
                        f"-DSYMBP_PART={k}",
                        str(dest / c_file),
                        "-o",
                        objects[k - 1],
                    ]
                    for k in (1, 2)
                ),
                [cc, "-c", *both, *GLUE_FLAGS, *last, *python, str(glue), "-o", objects[2]],
            ],
            c_file,
        )
        built = dest / f"{module}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        _run(
            [
                [
                    cc,
                    *_shared_flags("LDSHARED", ["-shared"]),
                    *objects,
                    *link,
                    "-o",
                    str(work / built.name),
                ]
            ],
            c_file,
        )
        os.replace(work / built.name, built)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = {p.name: _digest(p) for p in sorted(dest.iterdir()) if p.is_file()}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


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
