"""Fill a README template of ``templates/`` (package data) with named fields.

Templates are Markdown with ``${field}`` placeholders (:class:`string.Template`);
tables and lists whose length depends on the design are built in Python and
passed in as one field.
"""

from importlib.resources import files
from string import Template

__all__ = ["render"]


def render(template, **fields):
    """The text of ``templates/<template>`` with every ``${field}`` replaced by ``str(fields[field])``.

    The fields given must be exactly those the template names (a
    :class:`ValueError` lists the difference), so template and code cannot drift apart."""
    text = (files(__package__) / "templates" / template).read_text(encoding="utf-8")
    tmpl = Template(text)
    named = set(tmpl.get_identifiers())
    if not tmpl.is_valid() or named != set(fields):
        raise ValueError(f"template {template}: fields missing {sorted(named - set(fields))}, "
                         f"not in the template {sorted(set(fields) - named)}, or a malformed '$'")
    return tmpl.substitute({k: str(v) for k, v in fields.items()})
