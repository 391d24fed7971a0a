"""The jinja2 environment over ``templates/``: file structure lives there, not in strings."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2


def _template_dir() -> Path:
    try:
        return Path(str(resources.files("symbp.templates")))
    except ModuleNotFoundError:  # a source checkout that is not installed
        return Path(__file__).resolve().parent.parent / "templates"


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept next to the C builds (jinja2 keys them by the template's
    source, so an edited template is compiled again): a fresh process renders in a few
    milliseconds instead of compiling every template. A cache that cannot be read or
    written is no cache, never an error."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a damaged or unreadable entry is a miss
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    from ..backends.c.build import TEMPLATES, cache_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_BytecodeCache(str(cache_dir() / TEMPLATES)),
    )
    env.filters["pyrepr"] = repr
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
