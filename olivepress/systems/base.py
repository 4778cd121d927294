"""The interface of a system: something that runs one pass on a model and returns the model it made."""

from abc import ABC, abstractmethod
from typing import ClassVar

from olivepress.models.handles import ModelHandle
from olivepress.passes.base import PassContext
from olivepress.workflow.plan import PassStep


class System(ABC):
    """A place passes run. `run_pass` writes only into `context.output_dir` (on this machine) and raises
    OlivepressError for bad input or PassFailedError when the pass failed, as a local pass would."""

    kind: ClassVar[str]  # the system's `type` in documents

    def __init__(self, name: str):
        self.name = name  # the system's name in the document's `systems`

    @abstractmethod
    def run_pass(self, step: PassStep, model: ModelHandle, context: PassContext) -> ModelHandle:
        """Run `step` on `model`; the result lies in `context.output_dir` (or refers to `model`'s folders)."""

    def describe(self) -> dict[str, str]:
        """What the cache entry records about where the pass ran."""
        return {"name": self.name, "type": self.kind}
