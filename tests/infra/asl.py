"""Test helpers: walk an ASL definition and render a state's JSONPath parameters for a given input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those inside Map item processors and Parallel branches."""
    for name, state in definition["States"].items():
        yield name, state
        for nested in [state.get("ItemProcessor") or state.get("Iterator"), *state.get("Branches", [])]:
            if nested:
                yield from all_states(nested)


def lookup(path: str, document: Any) -> Any:
    """A simple JSONPath (``$.a.b``) into ``document``; KeyError when absent."""
    value = document
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            value = value[part]
    return value


def render(parameters: Any, state_input: dict[str, Any], context: dict[str, Any]) -> Any:
    """Parameters with every ``"key.$": "$.path"`` / ``"$$.path"`` resolved, as Step Functions does."""
    if isinstance(parameters, list):
        return [render(item, state_input, context) for item in parameters]
    if not isinstance(parameters, dict):
        return parameters
    rendered = {}
    for key, value in parameters.items():
        if key.endswith(".$"):
            source = context if value.startswith("$$") else state_input
            rendered[key[:-2]] = lookup(value.removeprefix("$"), source)
        else:
            rendered[key] = render(value, state_input, context)
    return rendered


def references(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(location, path)`` where a parameter takes a JSONPath value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(".$") and isinstance(item, str):
                yield f"{prefix}{key}", item
            else:
                yield from references(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, f"{prefix}{index}.")
