"""JSON field types with Go's decoding rules, shared by the ca.json schemas.

`provisioners.schema` (the provisioner entries) and `appliance.config_schema` (the rest of
ca.json) build on these, so both read a field the way step-ca's Go structs do:
- unknown fields are accepted (step-ca ignores them);
- a JSON `null` leaves a field at its default (Go's decoder skips a null for a non-pointer
  field);
- `""` for a duration or a string also means the default, as the zero value does in Go;
- no coercion: `"yes"` is not true and `5` is not `"5"`.

A validator refuses with `expected(...)` (worded `path: expected <what>, got <value>`) or
`invalid(...)` (worded `path: <message>`); `provisioners.schema.problems` does the wording.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, overload

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from pki.durations import parse_duration

# Error types of our own: EXPECTED messages get ", got <value>" appended, INVALID are whole.
EXPECTED = "stepstone_expected"
INVALID = "stepstone_invalid"


class Schema(BaseModel):
    """A JSON object of ca.json: field names are the file's own (camelCase), so a path in a
    message is the path in the file."""

    # strict: no coercion, as Go's decoder; extra="allow": step-ca ignores fields it does not
    # know, and so do we (they stay in `model_extra`).
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    def as_json(self) -> dict[str, Any]:
        """The fields that are set (unknown ones included) as JSON, for code that takes a
        mapping (claims merging, a key store's `kms` block, the database's `db` block)."""
        return self.model_dump(exclude_none=True)


def expected(what: str) -> PydanticCustomError:
    """An error reading `<path>: expected <what>, got <value>`."""
    return PydanticCustomError(EXPECTED, "expected {what}", {"what": what})


def invalid(message: str) -> PydanticCustomError:
    """An error reading `<path>: <message>`."""
    return PydanticCustomError(INVALID, "{message}", {"message": message})


@overload
def duration_or(value: str | None, default: timedelta) -> timedelta: ...
@overload
def duration_or(value: str | None, default: None) -> timedelta | None: ...
def duration_or(value: str | None, default: timedelta | None) -> timedelta | None:
    """A duration field the schema checked, or `default` when unset."""
    return parse_duration(value) if value else default


def _required_string(value: Any) -> Any:
    if value is None or value == "":
        raise invalid("cannot be empty")
    return value  # the type check (a string) follows


def _go_duration(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError:
            pass
        else:
            return value
    raise expected('a duration such as "24h" or "5m30s"')


def bounded(what: str, holds: Callable[[timedelta], bool]) -> Callable[[str | None], str | None]:
    """An AfterValidator for a GoDuration: `holds` must be true of a set value."""

    def validate(value: str | None) -> str | None:
        if value is not None and not holds(parse_duration(value)):
            raise expected(what)
        return value

    return validate


def _paths(value: Any) -> Any:
    """step-ca's multiString: one path or a list of them, none empty."""
    if isinstance(value, str):
        value = [value]
    if value is None or value == []:
        raise invalid("cannot be empty")
    if not isinstance(value, list):
        raise expected("a path or a list of paths")
    return value


def _non_empty_list(value: list[str] | None) -> list[str] | None:
    if value == []:
        raise invalid("cannot be empty")
    return value


def _non_empty_item(value: str) -> str:
    if not value:
        raise invalid("cannot be empty")
    return value


def _one_or_many(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, str):
        return [value]
    if value is None or isinstance(value, list):
        return value
    raise expected("a string or a list of strings")


def _positive_int(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise expected("a whole number of at least 1")
    return value


Str = str | None
Bool = bool | None
Strings = list[str] | None
Object = dict[str, Any] | None
RequiredStr = Annotated[str, BeforeValidator(_required_string)]
NonEmptyStr = Annotated[str, AfterValidator(_non_empty_item)]
GoDuration = Annotated[str | None, BeforeValidator(_go_duration)]
PositiveDuration = Annotated[
    GoDuration, AfterValidator(bounded("a duration greater than 0", lambda d: d > timedelta(0)))
]
Paths = Annotated[list[NonEmptyStr], BeforeValidator(_paths)]
NonEmptyStrings = Annotated[Strings, AfterValidator(_non_empty_list)]
StrOrStrings = Annotated[Strings, BeforeValidator(_one_or_many)]
PositiveInt = Annotated[int | None, AfterValidator(_positive_int)]
