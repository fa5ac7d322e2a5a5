"""The one exception type users see as a single-line error."""


class WirelabError(Exception):
    """A user-facing failure: the message names the cause and the fix.

    The CLI prints it as one line and exits non-zero, without a traceback.
    """

    exit_code = 1


class BuildError(WirelabError):
    """Compilation or module validation failed."""


class EnvoyError(WirelabError):
    """Envoy refused a configuration or did not become ready."""
