"""AzureML as the target: each pass runs as its own command job, and its output comes back into the
local cache under the key the local engine computed.

The job runs `python -m olivepress.systems.worker` (the same worker as PythonEnvironment's) on a
request that names its folders as job inputs: the input model's folders and the data files, staged as
data assets. The worker writes the pass output and result.json into the job's output, which is
downloaded into the engine's staging folder and published like a local pass's.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from olivepress.config.sections import AzureMLSystemConfig
from olivepress.errors import PassFailedError
from olivepress.hashing import FingerprintMemo
from olivepress.models.handles import ModelHandle
from olivepress.passes.base import PassContext
from olivepress.systems.azureml.jobs import OUTPUT, RemoteJobFailed, build_job, run_job
from olivepress.systems.azureml.service import AzureMLService, Connect
from olivepress.systems.azureml.setup import job_setup
from olivepress.systems.azureml.staging import Stager, stage_data_configs
from olivepress.systems.base import System
from olivepress.systems.protocol import (
    PathCodec,
    build_request,
    read_result,
    write_json,
)
from olivepress.workflow.plan import PassStep, Workflow

if TYPE_CHECKING:
    from azure.ai.ml.entities import CommandJob

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"


class AzureMLSystem(System):
    kind = "AzureML"

    def __init__(self, name: str, config: AzureMLSystemConfig, workflow: Workflow, memo: FingerprintMemo,
                 connect: Connect):
        from olivepress.systems.azureml.client import require_azure

        require_azure()
        super().__init__(name)
        self.config = config
        self.workflow = workflow
        self.memo = memo
        self.connect = connect
        self._service: AzureMLService | None = None

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "compute": self.config.aml_compute}

    def service(self) -> AzureMLService:
        if self._service is None:
            from olivepress.systems.azureml.workspace import resolve_workspace

            settings = self.workflow.config.azureml_client
            self._service = self.connect(settings, resolve_workspace(settings))
            self._service.check_compute(self.config.aml_compute)
        return self._service

    def build_pass_job(self, step: PassStep, model: ModelHandle, context: PassContext, stager: Stager,
                       request_dir: Path) -> "CommandJob":
        """The job for one pass: its request file is written into `request_dir` and staged like the model."""
        codec = PathCodec(model.folders())
        inputs = {role: stager.folder(folder, f"{role} folder") for role, folder in model.folders().items()}
        # the data as the document declares it: an azureml:// data file goes to the job as an input, not through here
        declared = {data.name: data for data in self.workflow.config.data_configs}
        used = [declared[name] for name in dict.fromkeys(step.config.data_config_names().values())]
        data, data_inputs = stage_data_configs(used, stager, lambda name, _file: f"root:{name}")
        inputs.update(data_inputs)
        request = build_request(step, model, context, codec, data, output_dir=f"root:{OUTPUT}/model", scratch_dir=None)
        request_dir.mkdir(parents=True, exist_ok=True)
        write_json(request_dir / REQUEST_FILE, request)
        inputs["request"] = stager.file(request_dir / REQUEST_FILE, f"request of pass {step.name}")
        roots = "".join(f" --root {name}=${{{{inputs.{name}}}}}" for name in inputs if name != "request")
        command = (f"python -m olivepress.systems.worker --request ${{{{inputs.request}}}} "
                   f"--result ${{{{outputs.{OUTPUT}}}}}/{RESULT_FILE}{roots} --root {OUTPUT}=${{{{outputs.{OUTPUT}}}}}")
        workflow_id = self.workflow.config.workflow_id
        setup = job_setup(self.name, self.config, self.workflow, stager)
        return build_job(self.name, self.config, command, inputs, workflow_id, f"{workflow_id}-{step.name}", setup)

    def run_pass(self, step: PassStep, model: ModelHandle, context: PassContext) -> ModelHandle:
        service = self.service()
        job = self.build_pass_job(step, model, context, Stager(self.memo, service), context.scratch_dir / "request")
        try:
            name = run_job(service, job, f"pass {step.name}")
        except RemoteJobFailed as error:
            raise PassFailedError(step.name, str(error)) from None
        download = context.scratch_dir / "download"
        service.download_job_output(name, OUTPUT, download)
        # the pass wrote <output>/model on the remote: that folder becomes the engine's output folder
        os.rmdir(context.output_dir)
        os.rename(download / "model", context.output_dir)
        codec = PathCodec({**model.folders(), OUTPUT: context.output_dir.parent})
        return read_result(download / RESULT_FILE, step, context, codec, f"azureml job {name}", [])
