"""The document checks of evaluators, search and pass flows, run when a document is loaded, before any pass runs."""

from collections.abc import Mapping
from typing import Any

from olivepress.config.base import did_you_mean
from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import Problem
from olivepress.config.source import format_path
from olivepress.errors import OlivepressError
from olivepress.evaluation.objectives import sub_metrics
from olivepress.passes.registry import PassRegistry
from olivepress.plugins import Registry
from olivepress.workflow.plan import PassStep, chain_problem
from olivepress.workflow.space import SpaceError, build_space, strategy_of


def search_problems(config: WorkflowConfig, steps: list[PassStep], registry: PassRegistry,
                    strategy_registries: Mapping[str, Registry[Any]], data_names: list[str],
                    all_passes: bool) -> list[Problem]:
    """Each problem with the evaluators' data references and the search. `strategy_registries` maps a
    search-strategy field (sampler, executor) to the registry of its names; `data_names` are the names the
    document gives its data configs; the search space is checked when `all_passes` (every pass resolved)."""
    problems: list[Problem] = []
    for evaluator_name, evaluator in config.evaluators.items():
        for index, metric in enumerate(evaluator.metrics):
            if metric.data_config is not None and metric.data_config not in data_names:
                problems.append(Problem(("evaluators", evaluator_name, "metrics", index, "data_config"),
                                        f"no data config named '{metric.data_config}' in 'data_configs'"
                                        f"{did_you_mean(metric.data_config, data_names)}"))
    strategy = strategy_of(config.engine)
    if strategy is None:
        return problems
    chosen = config.evaluators.get(config.engine.evaluator) if config.engine.evaluator else None
    if config.engine.evaluator is None:
        known = f" (one of: {', '.join(config.evaluators)})" if config.evaluators else " and add it to 'evaluators'"
        problems.append(Problem(("engine", "search_strategy"),
                                f"a search compares candidates by their metrics: set engine.evaluator{known}"))
    elif chosen is not None:
        made = [sub.name for sub in sub_metrics(chosen)]
        for index, name in enumerate(strategy.objectives or []):
            if name not in made:
                problems.append(Problem(("engine", "search_strategy", "objectives", index),
                                        f"evaluator '{config.engine.evaluator}' makes no metric '{name}'"
                                        f"{did_you_mean(name, made)}; it makes {', '.join(made)}"))
    for field, names in strategy_registries.items():
        try:
            names.get(getattr(strategy, field))
        except OlivepressError as error:
            problems.append(Problem(("engine", "search_strategy", field), str(error)))
    if not all_passes:
        return problems  # the space of passes that did not resolve cannot be built; their problems are reported
    try:
        build_space(strategy, steps, config.input_model.kind, registry).check()
    except SpaceError as error:
        problems.append(Problem(error.path, str(error)))
    return problems


def flow_problems(config: WorkflowConfig, steps: list[PassStep], all_passes: bool) -> list[Problem]:
    """Each pass flow names passes of `passes`, and each pass in it accepts what the one before it makes."""
    if config.pass_flows is None:
        return []
    names = list(config.passes)
    problems = []
    for index, flow in enumerate(config.pass_flows):
        unknown = [(position, name) for position, name in enumerate(flow) if name not in names]
        for position, name in unknown:
            problems.append(Problem(("pass_flows", index, position),
                                    f"no pass named '{name}' in 'passes'{did_you_mean(name, names)}"))
        if not flow:
            problems.append(Problem(("pass_flows", index), "an empty flow runs no pass"))
        if unknown or not flow or not all_passes:
            continue
        by_name = {step.name: step for step in steps}
        unchained = chain_problem(config.input_model.kind, [by_name[name] for name in flow], config.engine.evaluator)
        if unchained is not None:
            problems.append(Problem(("pass_flows", index), f"{format_path(unchained.path)}: {unchained.message}"))
    if config.azureml_host() is not None:
        problems.append(Problem(("pass_flows",), "pass flows run with a local engine.host: the AzureML job of "
                                                 f"host '{config.engine.host}' runs one flow; give each flow a "
                                                 "document of its own"))
    return problems
