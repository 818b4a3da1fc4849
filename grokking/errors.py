"""The one error a user sees for a config that cannot run, and the two checks that raise it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line meant for the user."""


def choice(key: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(map(str, choices))}")


def require(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value} is not valid; expected {expected}")
