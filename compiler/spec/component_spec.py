"""What a `generate_code` task generates: a Python module described by its API."""

from __future__ import annotations

from .base import Model, PythonName


class ExampleSpec(Model):
    call: str
    """A Python expression calling the function, such as `greet('Ada')`."""
    returns: str
    """A Python expression for the expected result, such as `'Hello, Ada!'`."""


class FunctionSpec(Model):
    name: PythonName
    signature: str = "()"
    """Parameters and return annotation, such as `(name: str) -> str`."""
    docstring: str = ""
    body: str | None = None
    """The function body; without one, the generator derives it or escalates."""
    examples: list[ExampleSpec] = []
    """Calls and expected results; they become tests."""


class FieldSpec(Model):
    name: PythonName
    type: str = "str"
    default: str | None = None
    """A Python expression."""


class DataclassSpec(Model):
    name: PythonName
    docstring: str = ""
    fields: list[FieldSpec] = []


class ComponentSpec(Model):
    module: str | None = None
    """Module name; defaults to the component's name."""
    description: str = ""
    functions: list[FunctionSpec] = []
    dataclasses: list[DataclassSpec] = []
    imports: list[str] = []
    """Extra import lines for the generated module."""
