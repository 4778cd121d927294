"""The JSON Schema of the workflow document, with every registered pass's typed parameters."""

from typing import Any, Literal, Optional, Union

from pydantic import Field, create_model

from olivepress.config.document import WorkflowConfig
from olivepress.passes.registry import PassRegistry

SCHEMA_ID = "https://olivepress.dev/schemas/workflow.schema.json"


def workflow_schema(registry: PassRegistry) -> dict[str, Any]:
    entries = []
    for pass_class in registry:
        type_field = (Literal[pass_class.name], Field(description=pass_class.description))
        entries.append(create_model(f"{pass_class.name}Pass", __base__=pass_class.Config, type=type_field))
        entries.append(
            create_model(
                f"{pass_class.name}PassNested",
                __base__=pass_class.Config.__base__,
                type=type_field,
                config=(Optional[pass_class.Config], None),
            )
        )
    pass_entry = Union[tuple(entries)] if entries else dict
    document = create_model(
        "WorkflowDocument",
        __base__=WorkflowConfig,
        passes=(dict[str, pass_entry], Field(default_factory=dict, description="The passes, run in the order written.")),
    )
    schema = document.model_json_schema(by_alias=False)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
