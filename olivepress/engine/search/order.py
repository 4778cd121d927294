"""Execution orders: joint searches every dimension at once; pass-by-pass searches one pass at a time."""

from dataclasses import dataclass

from olivepress.workflow.space import Dimension, SearchSpace


@dataclass(frozen=True)
class Stage:
    dimensions: list[Dimension]  # searched in this stage
    step_count: int  # candidates run the first `step_count` steps


def stages(space: SearchSpace, execution_order: str) -> list[Stage]:
    """pass-by-pass: a stage per searched pass, its candidates running every pass up to the next searched
    one (the last stage: to the end), so that each stage's candidates are evaluated after its pass."""
    every_step = len(space.steps)
    if execution_order == "joint":
        return [Stage(space.dimensions, every_step)]
    searched = [step.name for step in space.steps if any(d.step == step.name for d in space.dimensions)]
    if not searched:
        return [Stage([], every_step)]
    positions = [next(i for i, step in enumerate(space.steps) if step.name == name) for name in searched]
    ends = positions[1:] + [every_step]
    return [Stage([d for d in space.dimensions if d.step == name], end) for name, end in zip(searched, ends, strict=True)]
