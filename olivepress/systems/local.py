"""LocalSystem: the pass runs in this process."""

from olivepress.models.handles import ModelHandle
from olivepress.passes.base import PassContext
from olivepress.systems.base import System
from olivepress.workflow.plan import PassStep


class LocalSystem(System):
    kind = "LocalSystem"

    def run_pass(self, step: PassStep, model: ModelHandle, context: PassContext) -> ModelHandle:
        return step.pass_class().run(model, step.config, context)
