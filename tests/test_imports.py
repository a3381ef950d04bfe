"""The compiler runs offline and light: importing it must not import Prefect."""

from __future__ import annotations

import subprocess
import sys


def test_compiler_does_not_import_prefect() -> None:
    code = (
        "import sys, plan2flow.compiler, plan2flow.compiler.cli;"
        "from plan2flow.compiler import compile_plan;"
        "compile_plan('apiVersion: plan2flow/v1\\nkind: Plan\\nmetadata: {name: a}\\n"
        "tasks: [{id: a, type: noop}]\\n');"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_public_api_is_sorted_and_complete() -> None:
    import plan2flow.compiler as compiler

    assert compiler.__all__ == sorted(compiler.__all__)
    for name in compiler.__all__:
        assert hasattr(compiler, name)
