"""Plain data (JSON, TOML, a form) checked against a dataclass field's type hint: the JSON-natural conversions
(int -> float, "a,b" -> ["a", "b"]) and one clear error per wrong value."""

from __future__ import annotations

import types
import typing
from typing import Any

from core.config import TransferLabError


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a value against a field's type hint, allowing the JSON-natural conversions (int -> float)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except TransferLabError as exc:
                errors.append(str(exc))
        raise TransferLabError(errors[0])
    if typing.get_origin(hint) is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TransferLabError(f"{where}: expected a list of names, got {value!r}.")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise TransferLabError(f"{where}: expected {hint.__name__}, got {value!r}.")
