"""Errors that reach the user as one line, and the exit codes they map to."""


class OlivepressError(Exception):
    """A problem with the user's input or environment; its message is one line shown without a traceback."""

    exit_code = 2


class RunFailedError(Exception):
    """The run started and failed (a pass raised, a remote job ended without completing); its message is one
    line shown without a traceback."""

    exit_code = 1


class PassFailedError(RunFailedError):
    """A pass raised while running; the run stops with a non-zero exit naming the pass."""

    def __init__(self, pass_name: str, reason: str):
        super().__init__(f"pass '{pass_name}' failed: {reason}")
        self.pass_name = pass_name
        self.reason = reason
