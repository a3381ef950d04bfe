"""Determinism of compiled TaskGraphs: the same plan gives the same bytes and hash, always.

* Across processes, ``PYTHONHASHSEED`` values, working directories and absolute/relative plan
  paths (the CLI, run in subprocesses).
* Across rewritings of the same plan: key order, task order, ``depends_on`` order, comments,
  quoting, flow/block style, anchors and merge keys, a UTF-8 BOM, CRLF line endings.
* A semantic change (an edge, a param, a retry count, ...) changes the graph hash.
* Per-task hashes: a change to a task changes its hash and the hash of everything downstream of
  it, and nothing else.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import MERGE, dump

from plan2flow.compiler import CompileResult, compile_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
EXAMPLE_IDS = [path.stem for path in EXAMPLES]
HASH = re.compile(r"sha256:[0-9a-f]{64}")
SEEDS = ("0", "1", "12345", "random")
LAYOUTS = ("absolute", "relative")

Data = dict[str, Any]


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "plan2flow"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from plan2flow.cli import main; main()"]


def _compile(source: str | bytes, filename: str = "plan.yaml") -> CompileResult:
    return compile_plan(source, filename)


def _load(path: Path) -> Data:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def references() -> dict[str, CompileResult]:
    """Each example compiled in this process, from its file's bytes."""
    return {path.stem: _compile(path.read_bytes(), str(path)) for path in EXAMPLES}


# --------------------------------------------------------------------------------------------
# 1. The CLI in fresh processes: hash seeds, working directories, absolute and relative paths.
# --------------------------------------------------------------------------------------------


class CliRuns:
    """What the CLI printed and wrote in every configuration."""

    def __init__(self) -> None:
        # (seed, layout) -> output file name -> bytes (every file `compile` wrote)
        self.files: dict[tuple[str, str], dict[str, bytes]] = {}
        # (seed, layout) -> plan stem -> hash printed by `compile`
        self.compile_hashes: dict[tuple[str, str], dict[str, str]] = {}
        # (seed, layout) -> plan stem -> hash printed by `hash`
        self.hash_command: dict[tuple[str, str], dict[str, str]] = {}
        # plan stem -> output file name (<metadata.name>.taskgraph.json)
        self.names: dict[str, str] = {}


def _run(args: list[str], cwd: Path, seed: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300
    )


@pytest.fixture(scope="module")
def cli_runs(
    tmp_path_factory: pytest.TempPathFactory, references: dict[str, CompileResult]
) -> CliRuns:
    """Run `plan2flow compile` (every plan at once) in 8 configurations, and `plan2flow hash`
    (every plan at once) for each seed, alternating the layout; two processes at a time."""
    base = tmp_path_factory.mktemp("cli")
    cli = _cli()
    runs = CliRuns()
    runs.names = {stem: f"{ref.graph.name}.taskgraph.json" for stem, ref in references.items()}
    jobs: list[tuple[str, tuple[str, str], str | None, list[str], Path]] = []
    for index, seed in enumerate(SEEDS):
        for layout in LAYOUTS:
            # Two different working directories, one nested deeper than the other.
            cwd = base / f"abs-{index}" if layout == "absolute" else base / f"rel-{index}" / "sub"
            cwd.mkdir(parents=True)
            if layout == "absolute":
                plans = [str(path) for path in EXAMPLES]
                out = str(cwd / "out")
            else:
                plans = [os.path.relpath(path, cwd) for path in EXAMPLES]
                out = "out"
            jobs.append(
                ("compile", (seed, layout), None, [*cli, "compile", *plans, "-o", out], cwd)
            )
            if layout == LAYOUTS[index % 2]:
                jobs.append(("hash", (seed, layout), None, [*cli, "hash", *plans], cwd))

    def execute(
        job: tuple[str, tuple[str, str], str | None, list[str], Path],
    ) -> subprocess.CompletedProcess[str]:
        _, (seed, _), _, args, cwd = job
        return _run(args, cwd, seed)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(execute, jobs))

    for (kind, config, stem, args, cwd), done in zip(jobs, results, strict=True):
        assert done.returncode == 0, f"{args} in {cwd} failed:\n{done.stdout}\n{done.stderr}"
        if kind == "hash":
            # One `<hash>  <plan>` line per plan, in the order given.
            lines = [line.split("  ", 1) for line in done.stdout.splitlines()]
            assert [plan for _, plan in lines] == args[len(cli) + 1 :], done.stdout
            assert all(HASH.fullmatch(digest) for digest, _ in lines), done.stdout
            hashes = dict(zip(EXAMPLE_IDS, (digest for digest, _ in lines), strict=True))
            runs.hash_command[config] = hashes
            continue
        out = cwd / "out"
        runs.files[config] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        printed: dict[str, str] = {}
        for line in done.stdout.splitlines():
            found = HASH.search(line)
            if found is None:
                continue
            for stem, name in runs.names.items():
                if name in line:
                    printed[stem] = found.group(0)
        assert set(printed) == set(EXAMPLE_IDS), done.stdout
        runs.compile_hashes[config] = printed
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_cli_output_is_byte_identical_across_seeds_and_directories(
    stem: str, cli_runs: CliRuns, references: dict[str, CompileResult]
) -> None:
    expected = references[stem].graph.text.encode("utf-8")
    name = cli_runs.names[stem]
    assert len(cli_runs.files) == len(SEEDS) * len(LAYOUTS)
    for config, files in cli_runs.files.items():
        assert files[name] == expected, f"{stem}: {name} differs for {config}"
    document = json.loads(expected)
    assert document["hash"] == references[stem].graph.hash


@pytest.mark.slow
def test_cli_writes_the_same_files_with_the_same_bytes_in_every_configuration(
    cli_runs: CliRuns,
) -> None:
    """Every output (TaskGraphs and whatever else `compile` writes beside them), and no temporary
    file left behind."""
    (first_config, first), *others = cli_runs.files.items()
    assert set(cli_runs.names.values()) <= set(first)
    assert not [name for name in first if name.startswith(".") or name.endswith(".tmp")]
    for config, files in others:
        assert sorted(files) == sorted(first), f"{config} wrote other files than {first_config}"
        for name, data in files.items():
            assert data == first[name], f"{name} differs between {config} and {first_config}"


@pytest.mark.slow
@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_cli_printed_hashes_agree_across_seeds_and_directories(
    stem: str, cli_runs: CliRuns, references: dict[str, CompileResult]
) -> None:
    expected = references[stem].graph.hash
    printed = {config: hashes[stem] for config, hashes in cli_runs.compile_hashes.items()}
    printed |= {(*config, "hash"): hashes[stem] for config, hashes in cli_runs.hash_command.items()}
    assert len(printed) == len(SEEDS) * len(LAYOUTS) + len(SEEDS)
    assert set(printed.values()) == {expected}, printed


# --------------------------------------------------------------------------------------------
# 2. Rewritings of the same plan give the same bytes.
# --------------------------------------------------------------------------------------------


def map_dicts(value: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """Apply `fn` to every mapping, bottom-up."""
    if isinstance(value, dict):
        return fn({k: map_dicts(v, fn) for k, v in value.items()})
    if isinstance(value, list):
        return [map_dicts(v, fn) for v in value]
    return value


def reverse_keys(data: Data) -> Data:
    return map_dicts(data, lambda d: dict(reversed(d.items())))


def shuffle_keys(data: Data, seed: int) -> Data:
    rng = random.Random(seed)

    def shuffled(d: dict[str, Any]) -> dict[str, Any]:
        items = list(d.items())
        rng.shuffle(items)
        return dict(items)

    return map_dicts(data, shuffled)


def reorder_units(data: Data, order: Callable[[list[Any]], list[Any]]) -> Data:
    """Reorder the tasks and the components (each a list of independently named units)."""
    data = copy.deepcopy(data)
    for key in ("tasks", "components"):
        if key in data:
            data[key] = order(data[key])
    return data


def shuffled_list(seed: int) -> Callable[[list[Any]], list[Any]]:
    def order(items: list[Any]) -> list[Any]:
        items = list(items)
        random.Random(seed).shuffle(items)
        return items

    return order


def reverse_depends_on(data: Data) -> Data:
    def fn(d: dict[str, Any]) -> dict[str, Any]:
        if isinstance(d.get("depends_on"), list):
            d = {**d, "depends_on": list(reversed(d["depends_on"]))}
        return d

    return map_dicts(data, fn)


def _has_repeated_collections(data: Data) -> bool:
    """Whether two collections of the plan are equal (so the dumper can alias one of them)."""
    seen: set[str] = set()

    def walk(value: Any) -> bool:
        if not isinstance(value, dict | list):
            return False
        children = value.values() if isinstance(value, dict) else value
        if any([walk(child) for child in children]):
            return True
        key = json.dumps(value, sort_keys=True)
        if key in seen:
            return True
        seen.add(key)
        return False

    return walk(data)


def share_equal_subtrees(data: Data) -> Data:
    """Make equal collections one object, so that the dumper writes anchors and aliases."""
    seen: dict[str, Any] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: walk(v) for k, v in value.items()}
        elif isinstance(value, list):
            value = [walk(v) for v in value]
        else:
            return value
        return seen.setdefault(json.dumps(value, sort_keys=True), value)

    return walk(data)  # type: ignore[no-any-return]


def with_merge_keys(data: Data) -> Data:
    """Spread each task, component and the metadata over `<<:` merges, with decoy values that
    YAML's precedence rules must discard: explicit keys win over merged ones, and an earlier
    merge source wins over a later one."""
    data = copy.deepcopy(data)

    def spread(unit: dict[str, Any], keep: str, merge_first: bool) -> dict[str, Any]:
        rest = [k for k in unit if k != keep]
        half = len(rest) // 2
        first = {k: unit[k] for k in rest[:half]}
        second = {k: unit[k] for k in rest[half:]}
        first_with_decoy = {**first, keep: "decoy-overridden"}
        second_with_decoys = {**second, **dict.fromkeys(first, "decoy-overridden")}
        explicit = {keep: unit[keep]}
        merged = {MERGE: [first_with_decoy, second_with_decoys]}
        return {**merged, **explicit} if merge_first else {**explicit, **merged}

    for key, keep in (("tasks", "id"), ("components", "name")):
        if key in data:
            data[key] = [spread(unit, keep, i % 2 == 0) for i, unit in enumerate(data[key])]
    data["metadata"] = {MERGE: data["metadata"]}
    return data


_BLOCK_SCALAR = re.compile(r"(:|^\s*-)\s+[|>][-+0-9]*\s*(#.*)?$")
_NASTY_COMMENT = "note: [x] {y} *alias &anchor !tag 'q\" <<: | > % @ ` ---"


def add_comments(text: str) -> str:
    """Comments everywhere they are allowed: a full-line one before every line and a trailing one
    after it (never inside a block scalar, where a '#' is content)."""
    out = [f"# {_NASTY_COMMENT}", "#"]
    block_indent: int | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                out.append(line)
                continue
            block_indent = None
        starts_block = bool(_BLOCK_SCALAR.search(line))
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(f"# before: {_NASTY_COMMENT}")
            out.append(f"{' ' * indent}   # indented {_NASTY_COMMENT}")
            out.append(f"{line}   # after: {_NASTY_COMMENT}")
            if not starts_block:  # a block scalar's leading blank lines are content
                out.append("")
        else:
            out.append(line)
        if starts_block:
            block_indent = indent
    return "\n".join(out) + "\n# the end\n"


def _data_rewrite(fn: Callable[[Data], str]) -> Callable[[str, Data], str | bytes]:
    return lambda _text, data: fn(copy.deepcopy(data))


REWRITES: dict[str, Callable[[str, Data], str | bytes]] = {
    "bytes_source": lambda text, _data: text.encode("utf-8"),
    "block_style_sorted_keys": _data_rewrite(lambda d: dump(d, sort_keys=True)),
    "flow_style": _data_rewrite(lambda d: dump(d, flow=True, width=60)),
    "flow_style_one_line": _data_rewrite(lambda d: dump(d, flow=True, width=float("inf"))),
    "mixed_style": _data_rewrite(lambda d: dump(d, flow=None)),
    "json_indented": _data_rewrite(lambda d: json.dumps(d, indent=3)),
    "json_one_line": _data_rewrite(lambda d: json.dumps(d, ensure_ascii=True)),
    "keys_reversed": _data_rewrite(lambda d: dump(reverse_keys(d))),
    "keys_shuffled_1": _data_rewrite(lambda d: dump(shuffle_keys(d, 1))),
    "keys_shuffled_2": _data_rewrite(lambda d: dump(shuffle_keys(d, 2), flow=True)),
    "tasks_reversed": _data_rewrite(lambda d: dump(reorder_units(d, lambda x: x[::-1]))),
    "tasks_shuffled": _data_rewrite(lambda d: dump(reorder_units(d, shuffled_list(7)))),
    "depends_on_reversed": _data_rewrite(lambda d: dump(reverse_depends_on(d))),
    "everything_reordered": _data_rewrite(
        lambda d: dump(reverse_depends_on(reorder_units(shuffle_keys(d, 3), shuffled_list(3))))
    ),
    "strings_double_quoted": _data_rewrite(lambda d: dump(d, quote='"')),
    "strings_single_quoted": _data_rewrite(lambda d: dump(d, quote="'")),
    "strings_single_quoted_flow": _data_rewrite(lambda d: dump(d, quote="'", flow=True)),
    "strings_literal_blocks": _data_rewrite(lambda d: dump(d, quote="|")),
    "indent_4_document_markers": _data_rewrite(lambda d: dump(d, indent=4, explicit=True)),
    "anchors_and_aliases": _data_rewrite(lambda d: dump(share_equal_subtrees(d))),
    "merge_keys": _data_rewrite(lambda d: dump(with_merge_keys(d))),
    "comments": lambda text, _data: add_comments(text),
    "utf8_bom_bytes": lambda text, _data: b"\xef\xbb\xbf" + text.encode("utf-8"),
    "utf8_bom_str": lambda text, _data: "\ufeff" + text,
    "crlf_bytes": lambda text, _data: text.replace("\n", "\r\n").encode("utf-8"),
    "crlf_str": lambda text, _data: text.replace("\n", "\r\n"),
    "bom_crlf_comments": lambda text, _data: (
        b"\xef\xbb\xbf" + add_comments(text).replace("\n", "\r\n").encode("utf-8")
    ),
    "no_final_newline": lambda text, _data: text.rstrip("\n"),
}


@pytest.mark.parametrize("rewrite", sorted(REWRITES))
@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_rewritten_plan_compiles_to_identical_bytes(
    path: Path, rewrite: str, references: dict[str, CompileResult]
) -> None:
    text = path.read_text(encoding="utf-8")
    source = REWRITES[rewrite](text, _load(path))
    assert source != text or rewrite == "no_final_newline"
    if rewrite == "anchors_and_aliases" and _has_repeated_collections(_load(path)):
        assert "*id" in str(source), "the rewrite should produce at least one alias"
    if rewrite == "merge_keys":
        assert "<<:" in str(source)
    result = _compile(source, str(path))
    expected = references[path.stem].graph
    assert result.graph.text == expected.text
    assert result.graph.hash == expected.hash
    # Whatever else the compiler generates from the plan (the flow module) follows the graph.
    flow_source = getattr(result, "flow_source", None)
    assert flow_source == getattr(references[path.stem], "flow_source", None)


def test_source_filename_does_not_matter(references: dict[str, CompileResult]) -> None:
    for path in EXAMPLES:
        expected = references[path.stem].graph.text
        for filename in ("plan.yaml", "../x/y/other name.yml", "/abs/dir/plan.yaml", "<stdin>"):
            assert _compile(path.read_bytes(), filename).graph.text == expected


def test_compiling_twice_in_one_process_gives_the_same_bytes(
    references: dict[str, CompileResult],
) -> None:
    for path in EXAMPLES:
        for _ in range(3):
            assert (
                _compile(path.read_bytes(), str(path)).graph.text
                == references[path.stem].graph.text
            )


HELLO = (ROOT / "examples" / "plans" / "hello.yaml").read_text(encoding="utf-8")

HELLO_QUOTING = """\
"apiVersion": 'plan2flow/v1'
'kind': "Plan"
metadata:
  "name": 'hello'
  version: '1.0.0'
  description: "Write a greeting to a file, then count its bytes."
params:
  'who':
    type: "string"
    default: 'world'
    "description": Who to greet.
tasks:
  - id: 'greet'
    "type": shell
    description: 'Write the greeting into the `greeting` artifact.'
    params:
      shell: true
      argv: ["echo \\"Hello, ${{ params.who }}!\\" > \\"${{ outputs.greeting }}\\""]
    outputs: ["greeting"]
  - "id": "count"
    type: 'shell'
    inputs:
      "text": 'greet.greeting'
    params:
      argv: ['wc', "-c", '${{ inputs.text }}']
  - {id: done, 'type': "noop", depends_on: ['count']}
"""

HELLO_FLOW_AND_BLOCK_SCALARS = """\
{apiVersion: plan2flow/v1, kind: Plan,
 metadata: {name: hello, version: "1.0.0",
            description: "Write a greeting to a file,
              then count its bytes."},
 params: {who: {type: string, default: world, description: Who to greet.}},
 tasks: [
   {id: done, type: noop, depends_on: [count]},
   {id: count, type: shell, inputs: {text: greet.greeting},
    params: {argv: [wc, -c, "${{ inputs.text }}"]}},
   {id: greet, type: shell,
    description: Write the greeting
      into the `greeting` artifact.,
    params: {shell: true,
             argv: ['echo "Hello, ${{ params.who }}!" > "${{ outputs.greeting }}"']},
    outputs: [greeting]},
 ]}
"""

HELLO_BLOCK_SCALARS = """\
apiVersion: plan2flow/v1
kind: Plan
metadata:
  name: hello
  version: "1.0.0"
  description: >-
    Write a greeting to a file,
    then count its bytes.
params:
  who:
    type: string
    default: |-
      world
    description: Who to greet.
tasks:
  - id: greet
    type: shell
    description: |-
      Write the greeting into the `greeting` artifact.
    params:
      shell: true
      argv:
        - >-
          echo "Hello, ${{ params.who }}!" > "${{ outputs.greeting }}"
    outputs:
      - greeting
  - id: count
    type: shell
    inputs:
      text: greet.greeting
    params:
      argv:
      - wc
      - -c
      - ${{ inputs.text }}
  - id: done
    type: noop
    depends_on:
    - count
"""

HELLO_ANCHORS_AND_MERGES = """\
apiVersion: &api plan2flow/v1
kind: Plan
metadata:
  name: hello
  version: "1.0.0"
  description: Write a greeting to a file, then count its bytes.
params:
  who: {type: &text string, default: world, description: Who to greet.}
tasks:
  - &greet
    id: greet
    type: &shell shell
    description: Write the greeting into the `greeting` artifact.
    params:
      shell: true
      argv: ['echo "Hello, ${{ params.who }}!" > "${{ outputs.greeting }}"']
    outputs: &out [greeting]
  - id: count
    <<: *greet
    description: ""
    inputs: &in {text: greet.greeting}
    params: {argv: [wc, -c, "${{ inputs.text }}"]}
    outputs: []
  - <<: [{id: done, type: noop}, {id: decoy, type: *shell, depends_on: [count]}]
"""


@pytest.mark.parametrize(
    "source",
    [HELLO_QUOTING, HELLO_FLOW_AND_BLOCK_SCALARS, HELLO_BLOCK_SCALARS, HELLO_ANCHORS_AND_MERGES],
    ids=["quoting", "flow_style_multiline", "block_scalars", "anchors_and_merges"],
)
def test_handwritten_hello_rewrites_compile_to_identical_bytes(
    source: str, references: dict[str, CompileResult]
) -> None:
    expected = references["hello"].graph
    result = _compile(source, "hello.yaml")
    assert result.graph.text == expected.text
    assert result.graph.hash == expected.hash


# --------------------------------------------------------------------------------------------
# 3. Semantic changes change the hash.
# --------------------------------------------------------------------------------------------


def _unit(data: Data, key: str, name: str) -> dict[str, Any]:
    field = "name" if key == "components" else "id"
    return next(u for u in data[key] if u[field] == name)  # type: ignore[no-any-return]


def _task(data: Data, task_id: str) -> dict[str, Any]:
    return _unit(data, "tasks", task_id)


def _set(path: list[Any], value: Any) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        node: Any = data
        for part in path[:-1]:
            if isinstance(part, tuple):
                node = _unit(node, *part)
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
        node[path[-1]] = value

    return mutate


def _append(path: list[Any], value: Any) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        node: Any = data
        for index, part in enumerate(path):
            if isinstance(part, tuple):
                node = _unit(node, *part)
            elif index == len(path) - 1:
                node = node.setdefault(part, [])
            else:
                node = node[part]
        node.append(value)

    return mutate


def _remove_task(task_id: str) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        data["tasks"] = [t for t in data["tasks"] if t["id"] != task_id]

    return mutate


def _replace_task_id(old: str, new: str) -> Callable[[Data], None]:
    def mutate(data: Data) -> None:
        _task(data, old)["id"] = new

    return mutate


def _noop_to_shell(data: Data) -> None:
    task = _task(data, "done")
    task["type"] = "shell"
    task["params"] = {"argv": ["true"]}


T = "tasks"
C = "components"
SEMANTIC_CHANGES: dict[str, dict[str, Callable[[Data], None]]] = {
    "hello": {
        "added_edge": _append([(T, "done"), "depends_on"], "greet"),
        "changed_argv": _set([(T, "count"), "params", "argv", 1], "-l"),
        "changed_shell_flag": _set([(T, "greet"), "params", "shell"], False),
        "added_env": _set([(T, "count"), "params", "env"], {"LC_ALL": "C"}),
        "changed_cwd": _set([(T, "count"), "params", "cwd"], "sub"),
        "changed_task_retries": _set([(T, "greet"), "retries"], 1),
        "changed_default_retries": _set(["defaults", "retries"], 1),
        "changed_retry_delay": _set(["defaults", "retry_delay_seconds"], 11),
        "changed_timeout": _set([(T, "done"), "timeout_seconds"], 5),
        "changed_description": _set([(T, "done"), "description"], "finished"),
        "added_tag": _set([(T, "done"), "tags"], ["x"]),
        "added_default_tag": _set(["defaults", "tags"], ["x"]),
        "renamed_task": _replace_task_id("done", "finish"),
        "changed_type": _noop_to_shell,
        "added_output": _set([(T, "count"), "outputs"], ["n"]),
        "added_task": _append([T], {"id": "extra", "type": "noop", "depends_on": ["done"]}),
        "removed_task": _remove_task("done"),
        "changed_plan_param_default": _set(["params", "who", "default"], "you"),
        "added_plan_param_enum": _set(["params", "who", "enum"], ["world", "you"]),
        "added_plan_param": _set(["params", "loud"], {"type": "boolean", "default": False}),
        "changed_version": _set(["metadata", "version"], "1.0.1"),
        "added_label": _set(["metadata", "labels"], {"team": "a"}),
        "changed_name": _set(["metadata", "name"], "hello2"),
        "changed_plan_description": _set(["metadata", "description"], "Hi."),
        "added_schedule": _set(["schedule"], {"cron": "@daily"}),
        "changed_max_parallelism": _set(["defaults", "max_parallelism"], 5),
    },
    "data-pipeline": {
        "added_edge": _append([(T, "load"), "depends_on"], "quality"),
        "removed_edge": _set([(T, "report"), "depends_on"], ["load"]),
        "added_matrix_value": _append([(T, "extract"), "matrix", "region"], "latam"),
        "changed_task_retries": _set([(T, "extract"), "retries"], 6),
        "changed_kwargs": _set([(T, "clean"), "params", "kwargs", "drop_test_accounts"], False),
        "changed_env": _set([(T, "extract"), "params", "env", "SALES_API_TIMEOUT"], "61"),
        "changed_input": _set([(T, "quality"), "inputs", "table"], "aggregate.totals"),
        "changed_cron": _set(["schedule", "cron"], "0 4 * * *"),
        "changed_timezone": _set(["schedule", "timezone"], "UTC"),
        "changed_default_timeout": _set(["defaults", "timeout_seconds"], 901),
    },
    "software-factory": {
        "added_component_edge": _append([(C, "report"), "depends_on"], "models"),
        "changed_function_body": _set(
            [(C, "report"), "spec", "functions", 0, "body"], "return ', '.join(sorted(items))"
        ),
        "added_matrix_value": _append([(C, "stock"), "matrix", "python"], "3.13"),
        "changed_validate_params": _set([(C, "models"), "validate_params"], {"mypy": True}),
        "changed_deploy_retries": _set(["delivery", "deploy", "retries"], 1),
        "changed_package_formats": _set(["delivery", "package", "params", "formats"], ["wheel"]),
        "changed_agent": _set(["defaults", "agents", "generate_code"], "other-templates"),
        "changed_task_retries": _set([(T, "notify"), "retries"], 3),
    },
}


def _mutated(stem: str, mutate: Callable[[Data], None]) -> CompileResult:
    data = copy.deepcopy(_load(ROOT / "examples" / "plans" / f"{stem}.yaml"))
    mutate(data)
    return _compile(dump(data), f"{stem}.yaml")


@pytest.mark.parametrize("stem", sorted(SEMANTIC_CHANGES))
def test_semantic_changes_change_the_hash(stem: str, references: dict[str, CompileResult]) -> None:
    reference = references[stem].graph
    hashes = {"original": reference.hash}
    for name, mutate in SEMANTIC_CHANGES[stem].items():
        result = _mutated(stem, mutate)
        assert result.graph.text != reference.text, name
        assert result.graph.hash != reference.hash, f"{name} did not change the hash"
        assert result.graph.document["hash"] == result.graph.hash
        hashes[name] = result.graph.hash
    # Every change gives its own hash.
    assert len(set(hashes.values())) == len(hashes), hashes


# --------------------------------------------------------------------------------------------
# 4. Per-task hashes: a change reaches exactly the changed tasks and everything downstream.
# --------------------------------------------------------------------------------------------


def _task_hashes(result: CompileResult) -> dict[str, str]:
    return {task["id"]: task["hash"] for task in result.graph.document["tasks"]}


def _downstream_closure(document: dict[str, Any], roots: set[str]) -> set[str]:
    children: dict[str, set[str]] = {}
    for edge in document["edges"]:
        children.setdefault(edge["from"], set()).add(edge["to"])
    seen, stack = set(roots), list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _changed(before: CompileResult, after: CompileResult) -> set[str]:
    old, new = _task_hashes(before), _task_hashes(after)
    assert set(old) == set(new)
    return {task_id for task_id in old if old[task_id] != new[task_id]}


def _units(data: Data) -> list[tuple[str, Callable[[Data], None]]]:
    """Every written unit of a plan (task, component, delivery step) with a change to it."""
    units: list[tuple[str, Callable[[Data], None]]] = []
    defaults = data.get("defaults", {}).get("retries", 0)
    for task in data.get("tasks", []):
        if task["type"] == "approval":  # never retried: change what it says instead
            text = task.get("description", "") + " (changed)"
            units.append((f"tasks[{task['id']}]", _set([(T, task["id"]), "description"], text)))
            continue
        retries = task.get("retries", defaults) + 1
        units.append((f"tasks[{task['id']}]", _set([(T, task["id"]), "retries"], retries)))
    for component in data.get("components", []):
        text = component.get("description", "") + " (changed)"
        units.append(
            (
                f"components[{component['name']}]",
                _set([(C, component["name"]), "description"], text),
            )
        )
    for step, fields in (data.get("delivery") or {}).items():
        retries = fields.get("retries", defaults) + 1
        units.append((f"delivery.{step}", _set(["delivery", step, "retries"], retries)))
    return units


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_a_changed_task_changes_exactly_its_downstream_task_hashes(
    stem: str, references: dict[str, CompileResult]
) -> None:
    reference = references[stem]
    document = reference.graph.document
    units = _units(_load(ROOT / "examples" / "plans" / f"{stem}.yaml"))
    assert units
    for source, mutate in units:
        made = {t["id"] for t in document["tasks"] if t["origin"]["source"] == source}
        assert made, source
        expected = _downstream_closure(document, made)
        result = _mutated(stem, mutate)
        changed = _changed(reference, result)
        assert changed == expected, (
            f"changing {source}: unexpectedly changed {sorted(changed - expected)}, "
            f"unexpectedly unchanged {sorted(expected - changed)}"
        )
        assert result.graph.hash != reference.graph.hash


def test_downstream_change_keeps_upstream_task_hashes() -> None:
    """hello: greet → count → done. Changing `done` keeps greet's and count's hashes."""
    before = _compile(HELLO)
    after = _mutated("hello", _set([(T, "done"), "description"], "all done"))
    old, new = _task_hashes(before), _task_hashes(after)
    assert old["greet"] == new["greet"]
    assert old["count"] == new["count"]
    assert old["done"] != new["done"]


@pytest.mark.parametrize(
    ("stem", "upstream", "downstream"),
    [("hello", "greet", "done"), ("data-pipeline", "quality", "load")],
)
def test_an_added_edge_changes_exactly_the_downstream_task_hashes(
    stem: str, upstream: str, downstream: str, references: dict[str, CompileResult]
) -> None:
    reference = references[stem]
    result = _mutated(stem, _append([(T, downstream), "depends_on"], upstream))
    edges = {(e["from"], e["to"]) for e in result.graph.document["edges"]}
    assert (upstream, downstream) in edges
    expected = _downstream_closure(result.graph.document, {downstream})
    assert _changed(reference, result) == expected
    assert upstream not in expected


@pytest.mark.parametrize("stem", EXAMPLE_IDS)
def test_plan_metadata_change_keeps_every_task_hash(
    stem: str, references: dict[str, CompileResult]
) -> None:
    """Task hashes cover task content only: a plan's description is not part of any task."""
    reference = references[stem]
    result = _mutated(stem, _set(["metadata", "description"], "Another description."))
    assert result.graph.hash != reference.graph.hash
    assert _changed(reference, result) == set()
