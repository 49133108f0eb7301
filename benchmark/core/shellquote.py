"""Shell quoting for the few config values that reach a ``shell:`` command of the workflow.

``shlex.quote`` leaves a safe string bare (``data`` stays ``data``), while the rules used to
write Python's ``repr`` (``'data'``), which is not shell quoting: a value with a single quote
makes ``repr`` switch to double quotes, inside which ``$(...)`` runs. :func:`quote_always`
always single-quotes, so it is a correct shell quoting of every string and gives the same
text as the old ``repr`` for every ordinary path (no quote, backslash or unprintable
character): the rules' params, and so Snakemake's params rerun trigger, do not change for
existing studies.
"""

from __future__ import annotations


def quote_always(value: object) -> str:
    """``value`` as one shell word in single quotes (a ``'`` inside becomes ``'"'"'``)."""
    text = str(value)
    if "\x00" in text:
        raise ValueError(f"a NUL byte cannot reach a shell command: {text!r}")
    return "'" + text.replace("'", "'\"'\"'") + "'"
