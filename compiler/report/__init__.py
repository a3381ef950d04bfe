"""Diagnostics for people and tools: compiler-style text, JSON and SARIF 2.1.0."""

from __future__ import annotations

from .human import format_human
from .json_format import format_json
from .sarif import format_sarif

FORMATS = ("human", "json", "sarif")

__all__ = ["FORMATS", "format_human", "format_json", "format_sarif"]
