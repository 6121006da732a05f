"""The shared field types read JSON as Go's decoder does: no coercion, null and "" as unset,
unknown fields kept; their refusals are worded by path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import Field, ValidationError

from provisioners.fields import (
    Bool,
    GoDuration,
    Paths,
    PositiveDuration,
    PositiveInt,
    RequiredStr,
    Schema,
    Str,
    StrOrStrings,
    duration_or,
)
from provisioners.schema import problems


class _Block(Schema):
    name: RequiredStr = "x"
    flag: Bool = None
    text: Str = None
    age: GoDuration = None
    timeout: PositiveDuration = None
    count: PositiveInt = None
    paths: Paths = Field(default_factory=lambda: ["a"])
    names: StrOrStrings = None


def _refused(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as err:
        _Block.model_validate(fields)
    return problems(err.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name: cannot be empty"),
        ({"name": None}, "name: cannot be empty"),
        ({"flag": "true"}, 'flag: expected true or false, got "true"'),
        ({"flag": 1}, "flag: expected true or false, got 1"),
        ({"text": 5}, "text: expected a string, got 5"),
        ({"age": "1d"}, 'age: expected a duration such as "24h" or "5m30s", got "1d"'),
        ({"age": 60}, 'age: expected a duration such as "24h" or "5m30s", got 60'),
        ({"timeout": "0s"}, 'timeout: expected a duration greater than 0, got "0s"'),
        ({"timeout": "-1s"}, 'timeout: expected a duration greater than 0, got "-1s"'),
        ({"count": 0}, "count: expected a whole number of at least 1, got 0"),
        ({"count": "3"}, 'count: expected a whole number, got "3"'),
        ({"paths": []}, "paths: cannot be empty"),
        ({"paths": ["a", ""]}, "paths[1]: cannot be empty"),
        ({"paths": 5}, "paths: expected a path or a list of paths, got 5"),
        ({"names": 5}, "names: expected a string or a list of strings, got 5"),
    ],
)
def test_refusals_name_the_field(fields: dict[str, Any], message: str) -> None:
    assert _refused(**fields) == [message]


def test_null_and_empty_mean_unset() -> None:
    block = _Block.model_validate(
        {"flag": None, "text": None, "age": "", "timeout": None, "count": None, "names": ""}
    )
    assert block.age is None and block.names is None and block.flag is None
    assert duration_or(block.age, timedelta(minutes=1)) == timedelta(minutes=1)
    assert duration_or(block.age, None) is None


def test_one_value_or_many() -> None:
    block = _Block.model_validate({"paths": "root.crt", "names": "a"})
    assert block.paths == ["root.crt"] and block.names == ["a"]
    assert _Block.model_validate({"names": ["a", "b"]}).names == ["a", "b"]


def test_unknown_fields_are_kept_and_set_fields_dumped() -> None:
    block = _Block.model_validate({"age": "90s", "future": {"a": 1}, "gone": None})
    assert block.model_extra == {"future": {"a": 1}, "gone": None}
    assert duration_or(block.age, None) == timedelta(seconds=90)
    assert block.as_json() == {"name": "x", "age": "90s", "paths": ["a"], "future": {"a": 1}}
