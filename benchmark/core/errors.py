"""One exception type for bad user input.

The CLI turns a ``UserError`` into a single line on stderr and exit status 2, so a user sees
which key, file or value is wrong instead of a traceback. Anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """Bad input from the user (config, command line, data files): the message names it."""
