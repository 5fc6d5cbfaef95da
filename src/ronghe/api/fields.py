"""Request-field building blocks every API family shares: ids, ranges, text, flags, nulls.

The one way a request field is checked, in every family: each block here raises
``ValueError("must be <what is allowed>")`` and shows the same limits in ``/openapi.json``
(``minimum`` / ``exclusiveMinimum`` / ``maximum`` / ``maxLength``), so the documented limits
are the enforced ones; the envelope layer (``envelopes.describe_validation_error``) names the
field and the value: ``n_images: must be an integer 1-8 (got 9)``, ``temperature: must be in
(0, 2] (got 3)``, ``name: must be 1-128 characters (got 0)``.

- ``Range`` / ``AtLeast``: a number pydantic has parsed (the chat and OpenAI families);
- ``int_range`` / ``number_range`` / ``text`` / ``flag`` / ``choice``: lenient parsing of
  what real clients send (``"8"``, ``"false"``, ``null``) for the Miaohua image, training
  and account endpoints;
- ``Checked``: a field's own check (a cursor, a versionid) with the schema it enforces.

Non-finite numbers (NaN, Infinity) are refused by the request models' ``allow_inf_nan=False``
(and by ``number_range``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from ronghe.db.base import MAX_ID


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


# eq=False: hashed by identity (``schema`` is a dict), so ``Annotated[int, Checked] | None``
# can be formed.
@dataclass(frozen=True, eq=False)
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


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _span(lo: float, hi: float) -> str:
    return f"{_shown(lo)}-{_shown(hi)}" if lo >= 0 else f"from {_shown(lo)} to {_shown(hi)}"


def int_range(lo: int, hi: int, bools: bool = False) -> Checked:
    """An integer in ``[lo, hi]``; ``"8"`` and ``8.0`` are 8: ``must be an integer 1-8``.
    ``bools``: true and false are 1 and 0 (a 0/1 flag some clients send as a boolean)."""

    def check(value: Any) -> int:
        if isinstance(value, bool) and bools:
            value = int(value)
        if isinstance(value, bool):
            raise ValueError(f"must be an integer {_span(lo, hi)}")
        if isinstance(value, str):
            value = value.strip()
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"must be an integer {_span(lo, hi)}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer {_span(lo, hi)}")
        return value

    return Checked(check, {"minimum": lo, "maximum": hi})


def number_range(lo: float, hi: float) -> Checked:
    """A finite number in ``[lo, hi]``; ``"0.5"`` is 0.5: ``must be a number 0-1``."""

    def check(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"must be a number {_span(lo, hi)}")
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number {_span(lo, hi)}") from None
        if not math.isfinite(number) or not lo <= number <= hi:
            raise ValueError(f"must be a number {_span(lo, hi)}")
        return number

    return Checked(check, {"minimum": lo, "maximum": hi})


def text(limit: int, at_least: int = 0, strip: bool = False) -> Checked:
    """A string of at most ``limit`` characters (``null`` is ""); ``at_least`` sets the
    fewest; ``strip`` counts (and keeps) it without surrounding whitespace."""
    allowed = (f"must be {at_least}-{limit} characters" if at_least
               else f"must be at most {limit} characters")

    def check(value: Any) -> str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if strip:
            value = value.strip()
        if not at_least <= len(value) <= limit:
            raise ValueError(f"{allowed} (got {len(value)})")
        return value

    schema: dict[str, Any] = {"maxLength": limit}
    if at_least:
        schema["minLength"] = at_least
    return Checked(check, schema)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ValueError("must be true or false")


# true/false, also as 1/0 and "true"/"false" (some clients send add_prompt as "false").
flag = BeforeValidator(_flag)


def choice(choices: tuple[str, ...], empty_ok: bool) -> BeforeValidator:
    """One of ``choices`` (any case; ``""`` too when ``empty_ok``), lower-cased."""

    def check(value: Any) -> str:
        allowed = ", ".join(choices) + (' or "" (any)' if empty_ok else "")
        if not isinstance(value, str) or (value.strip().lower() not in choices
                                          and not (empty_ok and not value.strip())):
            raise ValueError(f"must be one of {allowed}")
        return value.strip().lower()

    return BeforeValidator(check)


Id = Annotated[int, int_range(1, MAX_ID), Field(description="an id (1 to 2^63-1)")]
