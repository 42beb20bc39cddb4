"""Reading the Bicep templates (parsed with pycep) and the app settings they set."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

PROJECT_DIR = Path(__file__).resolve().parents[2]
INFRA_DIR = PROJECT_DIR / "infra"
MAIN_TEMPLATE = INFRA_DIR / "main.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA_DIR.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


def main_template() -> dict[str, Any]:
    return parse(MAIN_TEMPLATE)


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("resources", {}).items()
        if resource["type"].lower() == resource_type.lower()
    }


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The object a resource declares, through a loop or condition if it has one."""
    config: dict[str, Any] = resource["config"]
    if "loop_type" in config or ("condition" in config and "config" in config):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def object_keys(expression: Any, template: dict[str, Any], seen: frozenset[str] = frozenset()) -> set[str]:
    """Every key an object expression can have: object literals, variables naming one, and every
    branch of union() and of conditionals (so optional settings count too)."""
    if isinstance(expression, dict):
        if "function" in expression:
            function = expression["function"]
            if function["type"] == "union":
                return set().union(
                    *(object_keys(arg, template, seen) for arg in function["parameters"].values())
                )
            raise AssertionError(f"cannot list the keys of {function['type']}(...)")
        if "operator" in expression:
            operator = expression["operator"]
            if operator["type"] == "conditional":
                operands = operator["operands"]
                return object_keys(operands["true_value"], template, seen) | object_keys(
                    operands["false_value"], template, seen
                )
            raise AssertionError(f"cannot list the keys of a {operator['type']} expression")
        return set(expression)
    if isinstance(expression, str) and expression in template.get("variables", {}) and expression not in seen:
        return object_keys(template["variables"][expression]["value"], template, seen | {expression})
    raise AssertionError(f"not an object expression: {expression!r}")


def object_values(expression: Any, template: dict[str, Any]) -> dict[str, list[Any]]:
    """Like object_keys, with the value expressions each key can take."""
    values: dict[str, list[Any]] = {}
    if isinstance(expression, dict) and "function" in expression:
        for arg in expression["function"]["parameters"].values():
            for key, found in object_values(arg, template).items():
                values.setdefault(key, []).extend(found)
    elif isinstance(expression, dict) and "operator" in expression:
        operands = expression["operator"]["operands"]
        for branch in (operands["true_value"], operands["false_value"]):
            for key, found in object_values(branch, template).items():
                values.setdefault(key, []).extend(found)
    elif isinstance(expression, dict):
        for key, value in expression.items():
            values.setdefault(key, []).append(value)
    elif isinstance(expression, str) and expression in template.get("variables", {}):
        return object_values(template["variables"][expression]["value"], template)
    return values


def app_settings_expression(template: dict[str, Any]) -> Any:
    """The `properties` of the one `Microsoft.Web/sites/config` resource named appsettings."""
    configs = [
        resource_body(resource)
        for resource in resources_of_type(template, "Microsoft.Web/sites/config").values()
        if resource_body(resource)["name"] == "appsettings"
    ]
    assert len(configs) == 1, "expected exactly one sites/config 'appsettings' resource"
    return configs[0]["properties"]


def template_app_settings(template: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """Every app setting the template can set (any branch), with the value expressions."""
    template = main_template() if template is None else template
    expression = app_settings_expression(template)
    keys = object_keys(expression, template)
    values = object_values(expression, template)
    assert keys == set(values)
    return values


def text(expression: Any) -> str:
    """A value expression flattened to text, for 'does it mention X' checks."""
    return expression if isinstance(expression, str) else json.dumps(expression, sort_keys=True)


def evaluate(expression: Any, template: dict[str, Any], arguments: dict[str, Any]) -> Any:
    """The value of an expression for the given parameter values (others take their defaults), in
    the small language the conditional settings use: empty, concat, union, contains, ?: and !.
    Object values stay unevaluated (only which keys exist matters), as do other functions."""
    if isinstance(expression, list):
        return [evaluate(item, template, arguments) for item in expression]
    if isinstance(expression, str):
        if expression in arguments:
            return arguments[expression]
        if expression in template["parameters"]:
            return template["parameters"][expression].get("default")
        if expression in template["variables"]:
            return evaluate(template["variables"][expression]["value"], template, arguments)
        return expression
    if isinstance(expression, dict) and "function" in expression:
        function = expression["function"]
        kind = function["type"]
        if kind not in {"empty", "concat", "union", "contains"}:
            return expression
        values = [evaluate(value, template, arguments) for value in function["parameters"].values()]
        if kind == "empty":
            return not values[0]
        if kind == "contains":
            return values[1] in values[0]
        if all(isinstance(value, dict) for value in values):
            merged: dict[str, Any] = {}
            for value in values:
                merged.update(value)
            return merged
        items = [item for value in values for item in value]
        return items if kind == "concat" else list(dict.fromkeys(items))
    if isinstance(expression, dict) and "operator" in expression:
        operator = expression["operator"]
        operands = operator["operands"]
        if operator["type"] == "conditional":
            branch = "true_value" if evaluate(operands["condition"], template, arguments) else "false_value"
            return evaluate(operands[branch], template, arguments)
        if operator["type"] == "not":
            return not evaluate(operands["bool_value"], template, arguments)
        return expression
    return expression


def deployed_app_settings(**arguments: Any) -> dict[str, Any]:
    """The app settings a deployment with these parameter values sets (others take their
    defaults), each with its value expression, unevaluated."""
    template = main_template()
    value = evaluate(app_settings_expression(template), template, arguments)
    assert isinstance(value, dict)
    return value
