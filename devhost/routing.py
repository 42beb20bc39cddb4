"""Azure Functions (ASP.NET-style) route templates: `items/{id:int}`, `files/{*path}`, `{name?}`.

Literal segments match case-insensitively. Constraints that can be expressed as a pattern (int,
long, bool, guid, alpha, double, ...) are honoured; others accept any segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PARAMETER = re.compile(r"\{([^{}]+)\}")

_CONSTRAINT_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?:true|false)",
    "guid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    "alpha": r"[A-Za-z]+",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}


@dataclass(frozen=True)
class _Parameter:
    name: str
    group: str
    optional: bool
    catch_all: bool
    default: str | None
    pattern: str


def _parse_parameter(text: str, group: str) -> _Parameter:
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    default: str | None = None
    if "=" in text:
        text, default = text.split("=", 1)
    optional = text.endswith("?")
    text = text.rstrip("?")
    name, *constraints = text.split(":")
    pattern = r".*" if catch_all else r"[^/]+"
    for constraint in constraints:
        optional = optional or constraint.endswith("?")
        known = _CONSTRAINT_PATTERNS.get(constraint.rstrip("?").split("(")[0].lower())
        if known and not catch_all:
            pattern = known
    return _Parameter(name, group, optional or default is not None, catch_all, default, pattern)


@dataclass
class Route:
    template: str
    methods: frozenset[str] | None
    regex: re.Pattern[str] = field(init=False)
    parameters: list[_Parameter] = field(init=False, default_factory=list)
    literal_segments: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        fragments: list[str] = []
        segments = [s for s in self.template.strip("/").split("/") if s]
        for segment in segments:
            fragments.append(self._segment_fragment(segment))
        self.regex = re.compile("^" + "".join(fragments) + "/?$", re.IGNORECASE)

    def _segment_fragment(self, segment: str) -> str:
        pieces: list[str] = []
        position = 0
        lone: _Parameter | None = None
        for match in _PARAMETER.finditer(segment):
            pieces.append(re.escape(segment[position : match.start()]))
            parameter = _parse_parameter(match.group(1), f"p{len(self.parameters)}")
            self.parameters.append(parameter)
            lone = parameter if match.group(0) == segment else None
            # Inside a segment with literals the value must stop at the next literal.
            pattern = parameter.pattern if lone else parameter.pattern.replace("+", "+?")
            pieces.append(f"(?P<{parameter.group}>{pattern})")
            position = match.end()
        pieces.append(re.escape(segment[position:]))
        if lone is None:
            self.literal_segments += 1
        if lone is not None and (lone.optional or lone.catch_all):
            return f"(?:/{''.join(pieces)})?"
        return "/" + "".join(pieces)

    @property
    def has_catch_all(self) -> bool:
        return any(p.catch_all for p in self.parameters)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for parameter in self.parameters:
            value = found.group(parameter.group)
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            values[parameter.name] = value
        return values

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


def precedence(route: Route) -> tuple[int, int, int]:
    """More literal segments first, catch-alls last, then fewer parameters."""
    return (-route.literal_segments, int(route.has_catch_all), len(route.parameters))
