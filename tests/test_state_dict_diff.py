"""common.state_dict_diff: the one comparison behind every strict checkpoint loader."""
from __future__ import annotations

import torch

from common.state_dict_diff import listing, state_dict_diff


def test_names_missing_unexpected_and_misshaped_in_the_models_order():
    expected = {"a.weight": (2, 3), "a.bias": (2,), "b.weight": (4,)}
    state = {"a.weight": torch.zeros(3, 2), "b.weight": torch.zeros(4), "c.extra": torch.zeros(1)}
    diff = state_dict_diff(expected, state, prefix="m.")
    assert diff and diff.missing == ["m.a.bias"] and diff.unexpected == ["m.c.extra"]
    assert diff.misshaped == ["m.a.weight: file [3, 2] vs model [2, 3]"]
    assert diff.parts(("missing keys", "unexpected keys", "shape mismatches")) == [
        "missing keys: m.a.bias", "unexpected keys: m.c.extra", "shape mismatches: m.a.weight: file [3, 2] vs model [2, 3]"]
    assert state_dict_diff(expected, state, shape=tuple).misshaped == ["a.weight: file (3, 2) vs model (2, 3)"]


def test_a_matching_state_is_empty_and_long_lists_are_counted():
    assert not state_dict_diff({"w": (1,)}, {"w": torch.zeros(1)})
    assert state_dict_diff({"w": (1,)}, {"w": torch.zeros(1)}).parts() == []
    assert listing([str(i) for i in range(10)], limit=3) == "0, 1, 2 ... (10 in all)"
