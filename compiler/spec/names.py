"""The names that become files and package metadata: module names, distribution names, versions,
requirements and console scripts.

The compiler checks them in a plan (P2F109) and the agents check them again at run time, where a
template may have supplied them: a name that is not what it claims to be (``../../x`` as a module,
``1.0/../..`` as a version) would otherwise turn into a path outside the task's directory. Each
check returns what is wrong, in words, or None.
"""

from __future__ import annotations

import keyword
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_ENTRY_POINT = re.compile(rf"^{_DOTTED}:{_DOTTED}$")


def module_problem(name: str) -> str | None:
    """A generated module is one file, ``<name>.py``, imported as ``import <name>``."""
    if not (name.isascii() and name.isidentifier()):
        return f"module name {name!r} is not a Python identifier"
    if keyword.iskeyword(name):
        return f"module name {name!r} is a Python keyword"
    return None


def project_name_problem(name: str) -> str | None:
    if _PROJECT_NAME.match(name):
        return None
    return f"project name {name!r} is not a valid distribution name (PEP 508)"


def version_problem(value: str) -> str | None:
    try:
        Version(value)
    except InvalidVersion:
        return f"version {value!r} is not a valid version (PEP 440)"
    return None


def requirement_problem(text: str) -> str | None:
    try:
        Requirement(text)
    except InvalidRequirement:
        return f"requirement {text!r} is not a valid requirement (PEP 508)"
    return None


def python_requires_problem(text: str) -> str | None:
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return f"python_requires {text!r} is not a version specifier (PEP 440)"
    return None


def script_problem(command: str, target: str) -> str | None:
    """A console script becomes the file ``bin/<command>`` of the environment it is installed in."""
    if not _SCRIPT_NAME.match(command):
        return f"console script name {command!r} is not a plain command name"
    if not _ENTRY_POINT.match(target):
        return f"console script target {target!r} is not 'module:function'"
    return None


HINTS = {
    "module": "use letters, digits and '_', not starting with a digit and not a Python keyword: "
    "the generator writes <module>.py",
    "project_name": "use letters, digits, '.', '_' and '-', starting and ending with a letter or "
    "digit, such as 'inventory-service'",
    "version": "use a version such as '1.2.0', '2.0rc1' or '1.0.post1'",
    "dependencies": "write a requirement such as 'requests>=2.31' or 'click'",
    "python_requires": "write a specifier such as '>=3.11'",
    "scripts": "map a command such as 'greeter' to 'module:function'",
}
"""What to write instead, by the param (or spec field) the name is in."""
