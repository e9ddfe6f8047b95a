"""JSON's own types for pydantic fields: a number is a JSON number, a boolean a JSON boolean.

Pydantic's lax mode would store `"kwh": "904"` as 904.0 and `"publish": "true"` as True. For a
wire contract (OCPI, the admin API) the JSON type is part of the field: the wrong one is refused
with the field named, as the spec's 2001 asks. An integral number is an integer (`230.0` is
`230`; JSON has no separate integer type), a fraction where an integer is due is refused.
"""

from __future__ import annotations

import numbers
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict
from pydantic_core import PydanticCustomError

__all__ = ["Boolean", "Integer", "Number"]


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PydanticCustomError(
            "json_number", "a JSON number expected, got {type_name}", {"type_name": type(value).__name__}
        )
    return value


Number = Annotated[float, BeforeValidator(_json_number)]
Integer = Annotated[int, BeforeValidator(_json_number)]
Boolean = Annotated[bool, Strict()]
