"""Request and response bodies for workflows.

A definition's fields sit at the top level of the body (the spec's ``WorkflowCreate``:
``start_step``, ``steps``, ...), or its graph fields come in one ``definition`` object (the
related engine's form); responses always show them at the top level. The definition's inner
structure (each step, each trigger) is checked by the domain, which names every problem's
location (``steps.fetch.agent_name``) where a schema decoder could only say ``steps[...]``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import Body
from msgspec import UNSET, Meta, UnsetType

from flowledger.domain import agents as agent_rules
from flowledger.domain import definitions as rules
from flowledger.domain.errors import FieldProblem, InvalidInput
from flowledger.domain.redaction import redact
from flowledger.domain.workflows import Workflow
from flowledger.http.workflows.contracts import ContractProblemBody

EXAMPLE_STEPS: Final = {
    "fetch": {
        "agent_name": "fetcher",
        "next_step": "summarise",
        "input_mapping": {"url": "$.input.url"},
    },
    "summarise": {
        "agent_name": "summarizer",
        "timeout_ms": 60000,
        "retry_config": {"max_retries": 1},
        "input_mapping": {"text": "$.steps.fetch.output.text", "style": "$.vars.style"},
    },
}

NameField = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=agent_rules.NAME_MAX_LENGTH,
        description="Unique among workflows that are not deleted. Cannot change.",
        examples=["summarise-page"],
    ),
]
DescriptionField = Annotated[
    str,
    Meta(
        max_length=agent_rules.DESCRIPTION_MAX_LENGTH,
        description="Not versioned: changing it makes no new version.",
        examples=["Fetches a page and summarises it."],
    ),
]
StartStepField = Annotated[
    str,
    Meta(
        description="The first step; when given, every step must be reachable from it. Without "
        "it, the steps that depend on nothing start the run.",
        examples=["fetch"],
    ),
]
StepsField = Annotated[
    dict[str, Any],
    Meta(
        description=(
            "The steps, keyed by step id (letters, digits, `_`, `-`). Each step may say "
            "`next_step` (the step after this one) and/or `depends_on` (steps that must finish "
            "first; fan-out and fan-in), and `type`: `agent` (the default: `agent_name`, an "
            "active agent; `input_mapping`, an object whose strings `$.input.<path>`, "
            "`$.vars.<name>` and `$.steps.<upstream step>.output.<path>` are references, "
            '`{"$expr": "<JMESPath>"}` objects expressions, anything else a literal; '
            "`timeout_ms` and `retry_config`, overriding the agent's), `if` (`condition`, "
            "`then`, `else`), `switch` (`expression`, `cases`, `default`), `foreach` (`items`, "
            "`steps` run per item, `max_parallel`, `continue_on_error`), `do_while` (`steps`, "
            "`while` or `until`), `wait` (`duration_ms` or `until`), `signal` (`signal`, "
            "`timeout_ms`, `default`, `schema`) or `workflow` (`workflow_name`, `version`, "
            f"`input_mapping`). At most {rules.MAX_STEPS} in all. See the README and ADR 0016."
        ),
        examples=[EXAMPLE_STEPS],
    ),
]
VariablesField = Annotated[
    dict[str, Any],
    Meta(
        description="Variables and their default values; mappings read them as `$.vars.<name>`.",
        examples=[{"style": "bullets"}],
    ),
]
InputSchemaField = Annotated[
    dict[str, Any],
    Meta(
        description="A JSON Schema the input of every run must satisfy.",
        examples=[
            {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}
        ],
    ),
]
WorkflowTimeoutField = Annotated[
    int,
    Meta(
        ge=rules.WORKFLOW_TIMEOUT_MS_MIN,
        le=rules.WORKFLOW_TIMEOUT_MS_MAX,
        description="Longest a whole run may take, in milliseconds.",
        examples=[600000],
    ),
]
MaxParallelField = Annotated[
    int,
    Meta(
        ge=1,
        le=rules.MAX_PARALLEL_STEPS_MAX,
        description="Most steps of one run called at the same time.",
        examples=[4],
    ),
]
TriggersField = Annotated[
    list[Any],
    Meta(
        description=(
            "What may start runs besides the API (stored and validated; not acted on yet): "
            '`{"type": "manual"}`, `{"type": "schedule", "cron": "<5 fields, UTC>", "input": '
            '{...}}`, `{"type": "webhook", "path": "<slug>"}`; each may say `"enabled": false`.'
        ),
        examples=[[{"type": "schedule", "cron": "0 * * * *", "input": {"url": "https://a.b"}}]],
    ),
]
StatusField = Annotated[
    Literal["active", "inactive"],
    Meta(description="Deactivate a workflow (or activate it again).", examples=["inactive"]),
]
DEFINITION_OBJECT_FIELDS: Final = (
    "start_step",
    "steps",
    "input_schema",
    "timeout_ms",
    "max_parallel_steps",
)


class WorkflowDefinition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A definition's graph as one object (instead of its fields at the top level). It is
    replaced whole: on update, fields it leaves out are removed."""

    steps: StepsField
    start_step: StartStepField | None = None
    input_schema: InputSchemaField | None = None
    timeout_ms: WorkflowTimeoutField | None = None
    max_parallel_steps: MaxParallelField | None = None


class DefinitionFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The versioned fields of a request body; null removes an optional field."""

    start_step: StartStepField | UnsetType | None = UNSET
    steps: StepsField | UnsetType = UNSET
    variables: VariablesField | UnsetType | None = UNSET
    input_schema: InputSchemaField | UnsetType | None = UNSET
    timeout_ms: WorkflowTimeoutField | UnsetType | None = UNSET
    max_parallel_steps: MaxParallelField | UnsetType | None = UNSET
    triggers: TriggersField | UnsetType | None = UNSET
    definition: (
        Annotated[
            WorkflowDefinition,
            Meta(description="The graph fields as one object, instead of at the top level."),
        ]
        | UnsetType
    ) = UNSET

    def definition_fields(self) -> dict[str, Any]:
        """The definition fields given, from the top level or the ``definition`` object."""
        given = {
            field: getattr(self, field)
            for field in rules.DEFINITION_FIELDS
            if getattr(self, field) is not UNSET
        }
        if isinstance(self.definition, UnsetType):
            return given
        both = [field for field in DEFINITION_OBJECT_FIELDS if field in given]
        if both:
            raise InvalidInput(
                [
                    FieldProblem(
                        "definition",
                        "give the definition as this object or as top-level fields, not both "
                        f"(top-level: {', '.join(both)})",
                    )
                ]
            )
        nested = {field: getattr(self.definition, field) for field in DEFINITION_OBJECT_FIELDS}
        return {**given, **nested}

    def located(self, error: InvalidInput) -> InvalidInput:
        """The error with the fields that came in the ``definition`` object located there."""
        if isinstance(self.definition, UnsetType):
            return error
        return InvalidInput(
            [
                FieldProblem(
                    f"definition.{p.field}"
                    if p.field.split(".", 1)[0] in DEFINITION_OBJECT_FIELDS
                    else p.field,
                    p.message,
                )
                for p in error.problems
            ]
        )


class WorkflowCreate(DefinitionFields, kw_only=True):
    """A new workflow: its name and description, and version 1 of its definition."""

    name: NameField
    description: DescriptionField | None = None


class WorkflowUpdate(DefinitionFields, kw_only=True):
    """What to change. Definition fields given replace the current ones whole (steps are not
    merged); if the definition changes, it becomes the next version. `description` and
    `status` are not versioned."""

    description: DescriptionField | UnsetType | None = UNSET
    status: StatusField | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        changes = self.definition_fields()
        if not isinstance(self.description, UnsetType):
            changes["description"] = self.description
        return changes


CHAIN_EXAMPLE: Final = {
    "name": "summarise-page",
    "description": "Fetches a page and summarises it.",
    "start_step": "fetch",
    "steps": EXAMPLE_STEPS,
    "variables": {"style": "bullets"},
    "input_schema": {
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"type": "string"}},
    },
}
GRAPH_EXAMPLE: Final = {
    "name": "compare-sources",
    "definition": {
        "steps": {
            "plan": {"agent_name": "planner", "input_mapping": {"topic": "$.input.topic"}},
            "web": {"agent_name": "searcher", "depends_on": ["plan"],
                    "input_mapping": {"q": "$.steps.plan.output.query"}},
            "papers": {"agent_name": "searcher", "depends_on": ["plan"],
                       "input_mapping": {"q": "$.steps.plan.output.query", "source": "arxiv"}},
            "merge": {"agent_name": "summarizer", "depends_on": ["web", "papers"],
                      "input_mapping": {"a": "$.steps.web.output", "b": "$.steps.papers.output"}},
        },
        "max_parallel_steps": 2,
        "timeout_ms": 600000,
    },
    "triggers": [{"type": "schedule", "cron": "0 6 * * mon-fri", "input": {"topic": "agents"}}],
}  # fmt: skip
CONTROL_FLOW_EXAMPLE: Final = {
    "name": "review-orders",
    "start_step": "fetch",
    "steps": {
        "fetch": {"agent_name": "fetcher", "next_step": "any",
                  "input_mapping": {"customer": "$.input.customer"}},
        "any": {"type": "if", "condition": "length(steps.fetch.output.orders) > `0`",
                "then": "each", "else": "nothing"},
        "nothing": {"agent_name": "summarizer", "input_mapping": {"text": "no orders"}},
        "each": {"type": "foreach", "items": "steps.fetch.output.orders", "max_parallel": 4,
                 "steps": {"check": {"agent_name": "summarizer",
                                     "input_mapping": {"order": "$.item"}}}},
        "approve": {"type": "signal", "depends_on": ["each"], "timeout_ms": 3600000,
                    "default": {"approved": False}},
    },
}  # fmt: skip
WorkflowCreateBody = Annotated[
    WorkflowCreate,
    Body(
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(summary="Steps linked by next_step (the spec's form)", value=CHAIN_EXAMPLE),
            Example(
                summary="A graph (fan-out, fan-in) as a definition object", value=GRAPH_EXAMPLE
            ),
            Example(
                summary="A branch, a map over data and an approval", value=CONTROL_FLOW_EXAMPLE
            ),
        ],
    ),
]
WorkflowUpdateBody = Annotated[
    WorkflowUpdate,
    Body(
        media_type=RequestEncodingType.JSON,
        examples=[
            Example(
                summary="A new version: new steps, other fields kept",
                value={"start_step": "fetch", "steps": EXAMPLE_STEPS},
            ),
            Example(summary="No new version: deactivate", value={"status": "inactive"}),
        ],
    ),
]


def definition_view(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition as response fields (absent fields are null); webhook triggers'
    secrets (``token``, ``secret``, ``password``) are shown masked: they are write-only."""
    view = {field: definition.get(field) for field in rules.DEFINITION_FIELDS}
    if view["triggers"] is not None:
        view["triggers"] = redact(view["triggers"])
    return view


class WorkflowResponse(msgspec.Struct, kw_only=True):
    """A workflow and the definition of its current version, as written."""

    id: UUID
    name: str
    description: str | None
    status: Annotated[Literal["active", "inactive", "deleted"], Meta(examples=["active"])]
    version: Annotated[int, Meta(description="The current version.", examples=[2])]
    start_step: str | None
    steps: dict[str, Any]
    variables: dict[str, Any] | None
    input_schema: dict[str, Any] | None
    timeout_ms: int | None
    max_parallel_steps: int | None
    triggers: list[Any] | None
    created_at: datetime
    updated_at: datetime
    owner: Annotated[
        str | None,
        Meta(
            description="Who has every permission on the workflow (its creator, until "
            "ownership is transferred): `key:<api key id>` or `jwt:<subject>`.",
            examples=["key:6f1c2a9e-3b7d-4e2f-9a51-0c8d7e6b5a43"],
        ),
    ] = None
    warnings: Annotated[
        list[ContractProblemBody] | None,
        Meta(
            description="Only on create and update with `?check=contracts`: where the saved "
            "definition does not fit what its agents' cards declare (it was saved anyway)."
        ),
    ] = None

    @classmethod
    def from_workflow(
        cls, workflow: Workflow, warnings: list[ContractProblemBody] | None = None
    ) -> WorkflowResponse:
        """The write side's view right after a command (same shape as the projection's)."""
        return cls(
            warnings=warnings,
            id=workflow.id,
            name=workflow.name,
            description=workflow.description,
            status=workflow.status,
            version=workflow.current_version,
            created_at=workflow.created_on,
            updated_at=workflow.modified_on,
            owner=workflow.owner,
            **definition_view(workflow.definition),
        )


class VersionChanges(msgspec.Struct):
    """What a version changed from the one before (definitions compared as written)."""

    from_version: int
    steps_added: list[str]
    steps_removed: list[str]
    steps_changed: Annotated[
        dict[str, list[str]],
        Meta(
            description="Step id: the step's fields that changed.",
            examples=[{"fetch": ["input_mapping"]}],
        ),
    ]
    fields_changed: Annotated[
        list[str], Meta(description="Definition fields other than steps that changed.")
    ]


class WorkflowVersionResponse(msgspec.Struct, kw_only=True):
    """One version of a workflow's definition, as written; versions never change once made."""

    workflow_id: UUID
    version: int
    start_step: str | None
    steps: dict[str, Any]
    variables: dict[str, Any] | None
    input_schema: dict[str, Any] | None
    timeout_ms: int | None
    max_parallel_steps: int | None
    triggers: list[Any] | None
    changes: Annotated[
        VersionChanges | None, Meta(description="What it changed; null for version 1.")
    ]
    created_at: datetime
    created_by: Annotated[str | None, Meta(description="Who made this version.")]
