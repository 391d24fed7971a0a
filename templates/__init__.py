"""jinja2 templates of the generated code, shipped as package data ``symbp.templates``."""
