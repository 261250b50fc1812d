"""The one registry helper."""

from __future__ import annotations

import pytest

from influence_patterns.errors import InputError
from influence_patterns.registry import Registry


def test_register_lookup_and_messages():
    reg: Registry[int] = Registry("colour")
    reg.register("red", 1, "warm")
    reg.decorator("blue")(2)
    assert reg.lookup("red") == 1 and list(reg) == ["red", "blue"]
    assert reg.check("blue") == "blue"
    with pytest.raises(InputError, match=r"unknown colour 'green'; choose one of red, blue"):
        reg.lookup("green")
    with pytest.raises(InputError, match="already registered"):
        reg.register("red", 3)
    reg.register("red", 3, "warm", replace=True)
    assert reg["red"] == 3
    assert reg.help("The colour:") == "The colour: red (warm); blue."


def test_unhashable_name_is_one_line():
    reg: Registry[int] = Registry("rule")
    with pytest.raises(InputError, match="unknown rule"):
        reg.lookup(["x"])  # type: ignore[arg-type]
