"""Request-field building blocks every API family shares: ids, numeric ranges, nulls.

A range here both checks the value, with a message that says the allowed range
(``must be in (0, 2]``), and shows the range in ``/openapi.json`` as ``minimum`` /
``exclusiveMinimum`` / ``maximum``, so the documented limits are the enforced ones.
Non-finite numbers (NaN, Infinity) are refused by the request models' ``allow_inf_nan=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from ronghe.db.base import MAX_ID

Id = Annotated[int, Field(ge=1, le=MAX_ID, description="an id (1 to 2^63-1)")]


def drop_nulls(data: Any) -> Any:
    """A ``null`` field means its default (lenient clients send them): drop it before parsing."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Range:
    """A float in ``[low, high]``; ``low_open`` makes it ``(low, high]``; no ``high``: up to ∞."""

    low: float
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        left = "(" if self.low_open else "["
        right = f"{_num(self.high)}]" if self.high is not None else "∞)"
        return f"{left}{_num(self.low)}, {right}"

    def check(self, value: float | None) -> float | None:
        if value is None:
            return None
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or (self.high is not None and value > self.high):
            raise ValueError(f"must be in {self.describe()}")
        return value

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = handler(schema)
        out["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out


@dataclass(frozen=True)
class AtLeast:
    """An integer no smaller than ``low`` (a token count)."""

    low: int

    def check(self, value: int | None) -> int | None:
        if value is not None and value < self.low:
            raise ValueError(f"must be at least {self.low}")
        return value

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "minimum": self.low}


@dataclass(frozen=True)
class Checked:
    """A before-validator (lenient parsing, our own message) that documents what it enforces:
    ``schema`` (``minimum``, ``maxLength`` …) is added to the field's JSON schema."""

    check: Callable[[Any], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), **self.schema}
