"""`olivepress run --dry-run` with an AzureML system: every job built, nothing sent, all written as YAML.

The files go to `<engine.output_dir>-azureml/`: one job per file (the workflow's, or one per pass whose
input is known), its built environment, and each data asset it reads; azure-ai-ml's load_job,
load_environment and load_data read them back.
"""

from pathlib import Path

from olivepress.engine.runner import Engine
from olivepress.log import logger
from olivepress.models.resolve import resolve_input_model
from olivepress.passes.base import PassContext
from olivepress.systems.azureml.jobs import write_yaml
from olivepress.systems.azureml.staging import Stager


def dry_run_folder(engine: Engine) -> Path:
    return engine.output_dir.parent / f"{engine.output_dir.name}-azureml"


def write_dry_run(engine: Engine) -> list[Path]:
    """The YAML files written; none when no AzureML system hosts the workflow or runs its passes."""
    from olivepress.systems.azureml.client import require_azure
    from olivepress.systems.azureml.target import AzureMLSystem

    if engine.workflow.config.azureml_host() is not None:
        require_azure()
        from olivepress.hosts.azureml import build_workflow_job

        folder = dry_run_folder(engine)
        stager = Stager(engine.cache.memo)
        job = build_workflow_job(engine, stager, folder / "files", fetch=False)
        return write_yaml(folder, job, stager.assets, "workflow-job")
    if not isinstance(engine.target, AzureMLSystem):
        return []
    return _pass_jobs(engine, engine.target)


def _pass_jobs(engine: Engine, system) -> list[Path]:
    """One job per pass while its input model is known: the input model, then the outputs already cached."""
    folder = dry_run_folder(engine)
    model = resolve_input_model(engine.workflow.config.input_model, fetch=False, assets=engine.assets)
    written: list[Path] = []
    if model is None:
        logger.warning("azureml dry run: the input model is not fetched yet, so no pass job is built")
        return written
    for index, (step, key, cached) in enumerate(engine.predicted_keys(model), 1):
        stager = Stager(engine.cache.memo)
        context = PassContext(output_dir=folder, scratch_dir=folder, accelerator=engine.accelerator, logger=logger,
                              data_configs=engine.data_configs)
        job = system.build_pass_job(step, model, context, stager, folder / "files" / step.name)
        written += write_yaml(folder, job, stager.assets, f"pass-{index}-{step.name}")
        entry = engine.cache.lookup(key) if cached else None
        if entry is None:  # not cached, or damaged (and so removed by lookup)
            remaining = len(engine.workflow.steps) - index
            if remaining:
                logger.warning("azureml dry run: the next %d pass job(s) need pass '%s''s output first", remaining, step.name)
            break
        model = entry.model
    return written
