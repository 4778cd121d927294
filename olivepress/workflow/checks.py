"""The document checks of evaluators and search, run when a document is loaded, before any pass runs."""

from collections.abc import Mapping
from typing import Any

from olivepress.config.base import did_you_mean
from olivepress.config.document import WorkflowConfig
from olivepress.errors import OlivepressError
from olivepress.evaluation.objectives import sub_metrics
from olivepress.passes.registry import PassRegistry
from olivepress.plugins import Registry
from olivepress.workflow.plan import PassStep
from olivepress.workflow.space import SpaceError, build_space, strategy_of


def search_problems(config: WorkflowConfig, steps: list[PassStep], registry: PassRegistry,
                    strategy_registries: Mapping[str, Registry[Any]]) -> list[tuple[tuple, str]]:
    """(document path, message) of each problem with the evaluators' data references and the search.
    `strategy_registries` maps a search-strategy field (sampler, executor) to the registry of its names."""
    problems: list[tuple[tuple, str]] = []
    data_names = [data.name for data in config.data_configs]
    for evaluator_name, evaluator in config.evaluators.items():
        for index, metric in enumerate(evaluator.metrics):
            if metric.data_config is not None and metric.data_config not in data_names:
                problems.append((("evaluators", evaluator_name, "metrics", index, "data_config"),
                                 f"no data config named '{metric.data_config}' in 'data_configs'"
                                 f"{did_you_mean(metric.data_config, data_names)}"))
    strategy = strategy_of(config.engine)
    if strategy is None:
        return problems
    chosen = config.evaluators.get(config.engine.evaluator) if config.engine.evaluator else None
    if config.engine.evaluator is None:
        known = f" (one of: {', '.join(config.evaluators)})" if config.evaluators else " and add it to 'evaluators'"
        problems.append((("engine", "search_strategy"),
                         f"a search compares candidates by their metrics: set engine.evaluator{known}"))
    elif chosen is not None:
        made = [sub.name for sub in sub_metrics(chosen)]
        for index, name in enumerate(strategy.objectives or []):
            if name not in made:
                problems.append((("engine", "search_strategy", "objectives", index),
                                 f"evaluator '{config.engine.evaluator}' makes no metric '{name}'"
                                 f"{did_you_mean(name, made)}; it makes {', '.join(made)}"))
    for field, names in strategy_registries.items():
        try:
            names.get(getattr(strategy, field))
        except OlivepressError as error:
            problems.append((("engine", "search_strategy", field), str(error)))
    try:
        build_space(strategy, steps, config.input_model.kind, registry).check()
    except SpaceError as error:
        problems.append((error.path, str(error)))
    return problems
