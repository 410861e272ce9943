"""Errors that are the user's to fix: the command line prints one line and exits 2."""


class UserError(Exception):
    """Bad input: unknown task, bad parameter, unreadable file, unreachable endpoint."""
