"""The base of every error a user can cause and fix (bad input, missing files, wrong device),
and of every warning about a result that may mislead.

Error messages name the problem and the fix; the CLI prints them without a traceback. Anything
else escaping a command is a bug in interp and keeps its traceback."""


class InterpError(Exception):
    """A user-facing error; subclasses also derive from ValueError or RuntimeError."""


class InterpWarning(UserWarning):
    """A run that works but whose result may mislead (an agent on another game, effects within
    noise); the CLI prints it as one ``warning:`` line."""
