"""What `rebuild --verify` reports: every differing key, and where inside it values differ."""

from __future__ import annotations

from streams import wire
from streams.ops.rebuild import differing_paths, table_differences


def test_only_keys_that_differ_are_reported_with_the_paths_inside_them() -> None:
    rebuilt = {"a": wire.dumps({"x": 1, "y": [1, {"z": 2}]}), "b": wire.dumps({"x": 1}),
               "c": wire.dumps({"x": 3})}
    live = {"a": wire.dumps({"x": 1, "y": [1, {"z": 5}]}), "b": wire.dumps({"x": 1}),
            "d": wire.dumps({"x": 4})}
    found = table_differences("order-state", rebuilt, live)
    assert [(d.key, d.fields) for d in found] == [
        ("a", ["y[1].z"]), ("c", ["(whole value)"]), ("d", ["(whole value)"])]
    [c] = [d for d in found if d.key == "c"]
    assert (c.rebuilt, c.live) == ({"x": 3}, None)


def test_paths_name_missing_fields_and_lists_of_another_length() -> None:
    assert differing_paths({"a": 1}, {"a": 1, "b": 2}) == ["b"]
    assert differing_paths({"l": [1]}, {"l": [1, 2]}) == ["l"]
    assert differing_paths({"a": {"b": 1}}, {"a": {"b": 1}}) == []
