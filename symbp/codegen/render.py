"""The jinja2 environment over ``templates/``: file structure lives there, not in strings."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import jinja2


def template_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if (checkout / "numpy_module.py.j2").is_file():  # the templates beside these sources
        return checkout
    try:
        return Path(str(resources.files("symbp.templates")))
    except ModuleNotFoundError:  # a source checkout that is not installed
        return Path(__file__).resolve().parents[2] / "templates"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = repr
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
