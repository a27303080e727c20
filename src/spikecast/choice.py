"""String enums for every mode option: accept their values, reject others by listing them."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A string enum that accepts its values case-insensitively and lists them on error."""

    @classmethod
    def _missing_(cls, value: object) -> Choice:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"invalid {cls.__name__} {value!r}; allowed: {allowed}")
