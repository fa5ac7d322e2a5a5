"""Log lines a filter wrote (proxy_log, and WASI stdout/stderr), by level."""

from __future__ import annotations

from .abi import LOG_LEVELS

_ALIASES = {"warning": "warn", "err": "error", "crit": "critical"}


def level_name(level: str | int) -> str:
    if isinstance(level, int):
        return LOG_LEVELS[level]
    name = _ALIASES.get(level.lower(), level.lower())
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    return name


class Logs(list[tuple[str, str]]):
    """A list of (level, message); `at(level)` lists the messages at one level."""

    def at(self, level: str) -> list[str]:
        name = level_name(level)
        return [msg for lvl, msg in self if lvl == name]

    def at_least(self, level: str) -> list[tuple[str, str]]:
        floor = LOG_LEVELS.index(level_name(level))
        return [(lvl, msg) for lvl, msg in self if LOG_LEVELS.index(lvl) >= floor]

    def messages(self) -> list[str]:
        return [msg for _, msg in self]
