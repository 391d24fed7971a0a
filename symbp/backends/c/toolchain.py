"""The C toolchain: compiling a package folder's C source through cffi into an extension.

The extension is three translation units compiled at once by the C compiler itself: the two
halves of the generated C with the optimizing flags, and cffi's glue (Python's C API,
argument conversion) at -O0, as fast to call. All hide their symbols: calls between them are
direct. ``identity`` and ``toolchain_stamp`` sum up what decides the binary (compiler,
flags, BLAS, CPU) for the build cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from functools import cache, lru_cache
from pathlib import Path

DEFAULT_FLAGS = ("-O3", "-march=native", "-std=gnu99", "-fno-math-errno", "-fopenmp-simd", "-g0")

GLUE_FLAGS = ("-O0", "-g0", "-DNDEBUG")  # cffi's glue: argument conversions, as fast at -O0

RECIPE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # how builds are made


class BuildError(RuntimeError):
    """The C toolchain is missing or failed."""


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


# A unit longer than this (an unrolled loop of many steps) builds at -O2: gcc's -O3 took 12 s
# on the 16-step char-RNN's 2,900 lines, -O2 3.4 s for a step 12 % slower.
LARGE_UNIT = 2000


def kernel_flags(lines: int) -> tuple[str, ...]:
    """``flags()``, with -O2 for the default -O3 for a source of more than LARGE_UNIT lines."""
    if lines <= LARGE_UNIT or os.environ.get("SYMBP_CFLAGS") is not None:
        return flags()
    return tuple("-O2" if flag == "-O3" else flag for flag in DEFAULT_FLAGS)


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


def identity() -> list[str]:
    """What decides a binary besides its sources: the compiler, its flags, cffi, the Python
    ABI, the BLAS, the CPU, and this recipe."""
    import cffi

    include, libdir, lib = _blas()
    return [
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
        RECIPE,
    ]


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
        RECIPE,
    ]
    return "\n".join(parts)


def _libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return ""


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

    _compiler_identity(compiler())  # a BuildError naming it if there is none
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
        lines = files[c_file].count("\n")
        compile_parts, link = _commands(dest / c_file, lines, glue, work)
        _run(compile_parts, c_file)
        built = dest / f"{module}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        _run([[*link, "-o", str(work / built.name)]], c_file)
        os.replace(work / built.name, built)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _commands(
    source: Path, lines: int, glue: Path, work: Path
) -> tuple[list[list[str]], list[str]]:
    """The compiler's commands: the two halves of ``source`` (of ``lines`` lines) and cffi's
    ``glue``, each to an object file in ``work`` (run at once); and the link of the three,
    without its output."""
    include, libdir, lib = _blas()
    cc = shutil.which(compiler())
    # -fwrapv as Python builds extensions (gcc vectorizes some kernels better with it)
    both = [*_shared_flags("CCSHARED", ["-fPIC"]), "-fvisibility=hidden", "-fwrapv"]
    kernel = [*kernel_flags(lines), f"-I{include}"]
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
    parts = [
        [cc, "-c", *both, *kernel, *last, f"-DSYMBP_PART={k}", str(source), "-o", objects[k - 1]]
        for k in (1, 2)
    ]
    parts.append([cc, "-c", *both, *GLUE_FLAGS, *last, *python, str(glue), "-o", objects[2]])
    return parts, [cc, *_shared_flags("LDSHARED", ["-shared"]), *objects, *link]


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the C backend cannot build here (None when it can), checked once per process: cffi
    and scipy-openblas32 import, and the C compiler builds a small C file."""
    try:
        import cffi  # noqa: F401

        _blas()
        cc = _compiler_identity(compiler()).split()[0]
    except ImportError as e:
        return f"{e.name} is not installed"
    except BuildError as e:
        return str(e).split(";")[0]
    with tempfile.TemporaryDirectory(prefix="symbp-probe-") as folder:
        source = Path(folder, "probe.c")
        source.write_text("double symbp_probe(double x) { return 2 * x; }\n")
        try:
            done = subprocess.run(
                [cc, "-c", str(source), "-o", str(source.with_suffix(".o"))],
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"the C compiler {cc} does not run: {e}"
    return None if done.returncode == 0 else f"the C compiler {cc} cannot build a small C file"
