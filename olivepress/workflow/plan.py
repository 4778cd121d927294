"""The plan the engine runs: the checked document and its passes in order, and the rule that each pass
must accept what the step before it makes."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from olivepress.config.document import WorkflowConfig
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
        """One line per rewrite: where the older shape was, and what it became."""
        return [self.source.located(rewrite.path, rewrite.message) for rewrite in self.rewrites]


def chain_problem(input_kind: str, steps: Sequence[PassStep]) -> str | None:
    """Why the passes cannot run in this order (a pass that does not accept what the step before it
    makes), or None when they can."""
    kind, made_by = input_kind, "the input model"
    for step in steps:
        if kind not in step.pass_class.accepts:
            return (f"passes.{step.name}: {step.pass_class.name} takes {'/'.join(step.pass_class.accepts)} models, "
                    f"but {made_by} is an {kind} model")
        kind, made_by = step.pass_class.produces, f"pass '{step.name}'"
    return None
