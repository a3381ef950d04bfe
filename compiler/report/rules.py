"""What each diagnostic code means and how to fix it: the help of SARIF rules.

The words of the code table in docs/planspec.md (without its code formatting); a test keeps the
two in step."""

from __future__ import annotations

DOCS = "https://plan2flow.dev/docs/planspec"

RULE_HELP: dict[str, tuple[str, str]] = {
    "P2F001": (
        "File cannot be read (missing, permissions). Exit status 2.",
        "Check the path.",
    ),
    "P2F002": (
        "File larger than 4 MiB ([limits](#limits)). Exit status 2.",
        "Split the plan; use fewer repeated fields.",
    ),
    "P2F003": (
        (
            "YAML syntax error, including an extra document (---) and an alias to an "
            "undefined anchor."
        ),
        (
            "Fix the syntax at the reported position; indent with spaces; one document "
            "per file; define &anchor before *anchor."
        ),
    ),
    "P2F004": (
        "Duplicate mapping key; the note points at the first one.",
        "Remove or rename one of them.",
    ),
    "P2F005": (
        "Nesting deeper than 64 levels.",
        "Flatten the structure.",
    ),
    "P2F006": (
        ('Aliases expand too far ("billion laughs"), or an alias is used inside its own anchor.'),
        "Write the repeated values out, or share fewer levels of aliases.",
    ),
    "P2F007": (
        "The document is empty or not a mapping.",
        "Start with apiVersion: plan2flow/v1 and kind: Plan.",
    ),
    "P2F008": (
        "Unsupported YAML tag, such as !!python/object.",
        "Remove the tag: plans are plain data.",
    ),
    "P2F009": (
        "The file is not valid UTF-8.",
        "Save the file as UTF-8.",
    ),
    "P2F010": (
        (
            "More than 1,000 problems in one plan: the first 1,000 by position are "
            "reported, and this warning, placed at the last of them, counts the rest. It "
            "never changes the verdict."
        ),
        "Fix the problems reported, then run again.",
    ),
    "P2F100": (
        "apiVersion is not plan2flow/v1; other errors are not reported.",
        ("Use apiVersion: plan2flow/v1, or the plan2flow version that reads the plan's format."),
    ),
    "P2F101": (
        "kind is not Plan.",
        "Use kind: Plan. A TaskGraph is an output, not an input.",
    ),
    "P2F102": (
        "Unknown field.",
        "Fix the spelling; the hint names the closest allowed field.",
    ),
    "P2F103": (
        (
            "Missing required field (metadata, metadata.name, a task's id or type, argv, "
            "callable, ...)."
        ),
        "Add the field.",
    ),
    "P2F104": (
        (
            "Wrong type; also a non-string mapping key or a merge key (<<) whose value is"
            " not a mapping."
        ),
        ("Write the expected type; quote text that YAML 1.1 reads as a number or boolean."),
    ),
    "P2F105": (
        (
            "Invalid value: pattern (ids, names, callables, agents, cron), range, "
            "enumeration, a schedule without exactly one of cron, interval_seconds and "
            "rrule, a parameter named like a Python keyword, a non-finite number, a "
            "scalar that does not match its explicit tag, a matrix of more than 256 "
            "combinations, a plan over one of the [limits](#limits) on tasks, expanded "
            "tasks, edges, repeated bytes and component dependencies, an approval's "
            "notify.webhook that is not an http:// or https:// URL with a host."
        ),
        "Follow the message; it names the rule.",
    ),
    "P2F106": (
        "Unknown task type.",
        (
            "Use one of approval, assemble, deploy, generate_code, noop, package, python, "
            "shell, test, validate."
        ),
    ),
    "P2F107": (
        (
            "A parameter's default or enum value does not match its type, or the default "
            "is not in enum."
        ),
        "Fix the default, the enum or the type.",
    ),
    "P2F108": (
        ("The plan defines no tasks: tasks, components and delivery are all missing or empty."),
        "Add tasks or components.",
    ),
    "P2F109": (
        (
            "A name that becomes a file or package metadata is not what it claims to be: "
            "a generated module name (spec.module, or a component name used as one) that "
            "is not a Python identifier or is a keyword; an assemble project_name that is"
            " not a PEP 508 distribution name; a version (or the metadata.version that "
            "delivery.assemble inherits) that is not a PEP 440 version; a dependency that"
            " is not a PEP 508 requirement; a python_requires that is not a specifier; a "
            "console script that is not command: module:function. Values holding a ${{ }}"
            " expression are checked by the agent at run time."
        ),
        "Follow the hint: inventory_models, inventory-service, 1.2.0, requests>=2.31.",
    ),
    "P2F110": (
        (
            "An [escalation](#escalation) policy that cannot run as written: tiers out of "
            "the order local, remote, human (or a second local or human); a remote tier "
            "whose host is not in allowed_hosts; a local tier on a host other than "
            "127.0.0.1, localhost or ::1; a remote tier with fewer than 2 variants, or with"
            " a price and a budget_usd of 0; an extra redaction pattern that is not a "
            "regular expression, matches empty text or takes a name of the gateway; every "
            "weight 0. Each problem is reported where the field is written, in defaults or "
            "on the task or component."
        ),
        "Follow the hint: add the host to allowed_hosts, set variants: 2, reorder the tiers.",
    ),
    "P2F111": (
        (
            "An approval names an option it does not offer: a branch key or an on_timeout "
            "other than fail that is not in options; or an enum form field whose default "
            "is not one of its values."
        ),
        "Add the option to options, or fix the name; the hint names the closest one.",
    ),
    "P2F201": (
        (
            "Duplicate task id, written or generated (a written package task next to "
            "delivery.package); the note points at the first."
        ),
        "Rename one of them.",
    ),
    "P2F202": (
        "depends_on or an input names a task that does not exist.",
        "Fix the id; the hint names the closest one.",
    ),
    "P2F203": (
        ("A task depends on itself, consumes its own artifact, or a component depends on itself."),
        "Remove the self-reference.",
    ),
    "P2F204": (
        "An input consumes an artifact its producer does not declare.",
        "Add the artifact to the producer's outputs, or fix the name.",
    ),
    "P2F205": (
        "An input names a matrix task, which has several expansions.",
        ("Name one expansion, such as build[python=3.11].wheel; use depends_on for fan-in."),
    ),
    "P2F206": (
        "Two components have the same name.",
        "Give each component a unique name.",
    ),
    "P2F207": (
        "A component depends on a component that is not defined.",
        "Fix the name; the hint names the closest one.",
    ),
    "P2F208": (
        ("agent set on a shell, python or noop task, or such a type named in defaults.agents."),
        "Remove it: those types run in the flow.",
    ),
    "P2F209": (
        (
            "A template expression names an unknown matrix axis, plan parameter, input or"
            ' output, or is not one of the four forms (title: "unknown template '
            'variable").'
        ),
        "Declare the name, or fix the expression.",
    ),
    "P2F210": (
        (
            "compile only: two plans would write the same output file (same "
            "metadata.name, same output directory)."
        ),
        ("Give each plan a unique metadata.name, or compile them into different directories."),
    ),
    "P2F211": (
        (
            "A branch of an approval names a task that does not depend directly on the "
            "approval: its running would not follow from the answer."
        ),
        "Name a task that depends on the approval, or add the approval to its depends_on.",
    ),
    "P2F301": (
        "Dependency cycle; the message shows the loop, one note per edge.",
        'Remove one of the dependencies; → reads "depends on".',
    ),
    "P2F302": (
        (
            "An output of a written task (not a matrix expansion) that has downstream "
            "tasks is consumed by none of them."
        ),
        "Consume it with an input, or remove it from outputs.",
    ),
    "P2F303": (
        ("A task with no upstream and no downstream task, in a plan of two or more tasks."),
        "Connect it with depends_on or an input, or move it to its own plan.",
    ),
    "P2F304": (
        "A deploy task has no validate and/or no test task upstream.",
        ("Depend on the tasks that verify what it deploys, or set params.allow_unverified: true."),
    ),
}
"""Code → (meaning, typical fix)."""
