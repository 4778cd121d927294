"""The JSON Schema of the workflow document, with every registered pass's and metric type's typed parameters.

The registries are handed in (the CLI builds them), so that this module depends on the config layer only.
"""

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model

from olivepress.config.document import WorkflowConfig
from olivepress.config.sections import (
    EngineConfig,
    EvaluatorConfig,
    LMEvaluatorConfig,
    MetricConfig,
    SearchStrategyConfig,
)

SCHEMA_ID = "https://olivepress.dev/schemas/workflow.schema.json"


def workflow_schema(passes: Iterable[Any], metrics: Iterable[tuple[str, type[MetricConfig]]] = (),
                    samplers: Iterable[str] = (), executors: Iterable[str] = ()) -> dict[str, Any]:
    """`passes`: Pass classes; `metrics`: (name, config class) pairs; `samplers`, `executors`: their names.
    What is not given stays an open string or record."""
    # The field types here and below are built at runtime from the registries: to mypy they are values, not
    # types, so they are held in Any-typed locals before they are used inside a type expression.
    pass_entry: Any = _pass_entry(passes)
    evaluator: Any = _evaluator(list(metrics))
    document = create_model(
        "WorkflowDocument",
        __base__=WorkflowConfig,
        passes=(dict[str, pass_entry], Field(default_factory=dict, description="The passes, run in the order written.")),
        evaluators=(dict[str, evaluator | LMEvaluatorConfig], Field(default_factory=dict)),
        engine=(_engine(list(samplers), list(executors)), Field(default_factory=EngineConfig)),
    )
    schema = document.model_json_schema(by_alias=False)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _pass_entry(passes: Iterable[Any]) -> Any:
    entries = []
    for pass_class in passes:
        type_field = (_literal(pass_class.name), Field(description=pass_class.description))
        entries.append(create_model(f"{pass_class.name}Pass", __base__=pass_class.Config, type=type_field))
        entries.append(
            create_model(
                f"{pass_class.name}PassNested",
                __base__=pass_class.Config.__base__,
                type=type_field,
                config=(pass_class.Config | None, None),
            )
        )
    return Union[tuple(entries)] if entries else dict  # noqa: UP007 (a union built from a list has no | spelling)


def _evaluator(metrics: list[tuple[str, type[MetricConfig]]]) -> type[EvaluatorConfig]:
    if not metrics:
        return EvaluatorConfig
    entries = tuple(create_model(config.__name__, __base__=config,
                                 type=(_literal(name), Field(description=getattr(config, "description", None))))
                    for name, config in metrics)
    metric: Any = Annotated[Union[entries], Field(discriminator="type")]  # noqa: UP007 (built from a tuple)
    return create_model("EvaluatorConfig", __base__=EvaluatorConfig,
                        metrics=(list[metric], EvaluatorConfig.model_fields["metrics"]))


def _engine(samplers: list[str], executors: list[str]) -> type[EngineConfig]:
    if not (samplers or executors):
        return EngineConfig
    fields = SearchStrategyConfig.model_fields
    strategy = create_model(
        "SearchStrategyConfig", __base__=SearchStrategyConfig,
        sampler=(_literal(*samplers), fields["sampler"]),
        executor=(_literal(*executors), fields["executor"]),
    )
    search = EngineConfig.model_fields["search_strategy"]
    search_strategy: Any = strategy | bool | None
    return create_model("EngineConfig", __base__=EngineConfig, search_strategy=(search_strategy, search))


def _literal(*values: str) -> Any:
    """Literal[values], built at runtime."""
    return Literal[values]
