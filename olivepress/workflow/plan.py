"""The plan the engine runs: the checked document and its passes in order, and the rule that each pass
must accept what the step before it makes."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from olivepress.config.document import WorkflowConfig
from olivepress.config.errors import Problem
from olivepress.config.migration import Rewrite
from olivepress.config.source import SourceDocument
from olivepress.passes.base import Pass, PassConfig
from olivepress.passes.registry import PassRegistry


@dataclass(frozen=True)
class PassStep:
    """A pass as the engine runs it: its name in the document, its class and its validated parameters."""

    name: str
    pass_class: type[Pass]
    config: PassConfig


@dataclass(frozen=True)
class Workflow:
    config: WorkflowConfig
    steps: list[PassStep]
    source: SourceDocument  # the migrated document, with the file and key lines of the one written
    registry: PassRegistry  # where the pass types were found (also those a search tries)
    rewrites: list[Rewrite] = field(default_factory=list)  # how older Olive shapes were rewritten

    def rewrite_lines(self) -> list[str]:
        """One line per rewrite, in the order of the document's lines: where the older shape was, what it became."""
        rewrites = sorted(self.rewrites, key=lambda rewrite: self.source.line_of(rewrite.path) or 0)
        return [self.source.located(rewrite.path, rewrite.message) for rewrite in rewrites]

    def flows(self) -> list[tuple[str, list[PassStep]]]:
        """The pass flows the engine runs, each with the name of its output folder ('' for the one flow of every
        pass): the document's `pass_flows`, each flow its passes joined with '-' as Olive names them."""
        if self.config.pass_flows is None:
            return [("", self.steps)]
        by_name = {step.name: step for step in self.steps}
        return [("-".join(flow), [by_name[name] for name in flow]) for flow in self.config.pass_flows]


def chain_problem(input_kind: str, steps: Sequence[PassStep], evaluator: str | None = None) -> Problem | None:
    """Why the passes cannot run in this order (a pass that does not accept what the step before it
    makes, or, with an `evaluator`, a last model that evaluation cannot take), or None when they can."""
    kind, made_by = input_kind, "the input model"
    for step in steps:
        accepted = step.pass_class.accepted_kinds(step.config)
        if kind not in accepted:
            return Problem(("passes", step.name), f"{step.pass_class.name} takes {'/'.join(accepted)} "
                                                  f"models, but {made_by} is {_kind_phrase(kind)} model")
        kind, made_by = step.pass_class.produces, f"pass '{step.name}'"
    if evaluator is not None and kind == "composite":
        return Problem(("engine", "evaluator"), f"evaluator '{evaluator}' takes one model, but {made_by} makes "
                                                "a composite model (several ONNX parts): end with ComposeOnnxModels, "
                                                "or leave engine.evaluator unset")
    return None


def _kind_phrase(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiouh' else 'a'} {kind}"
