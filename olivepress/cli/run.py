"""`olivepress run --config FILE [--dry-run]`: run a workflow document."""

import argparse
from pathlib import Path

from olivepress.cli.common import add_flag, read_workflow
from olivepress.engine.output import check_output_dir
from olivepress.engine.report import PLOT_FILE, REPORT_FILE, number, summary_lines
from olivepress.engine.runner import Engine, RunResult
from olivepress.engine.search.driver import plan_lines
from olivepress.hosts.dry_run import print_dry_run
from olivepress.log import logger, setup_logging
from olivepress.models.resolve import resolve_input_model


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("run", parents=[common], help="run a workflow document (JSON or YAML)")
    add_flag(parser, "config", "-c", required=True, type=Path, help="the workflow document")
    add_flag(parser, "output_path", "-o", type=Path, default=None, help="override engine.output_dir")
    add_flag(parser, "dry_run", action="store_true", help="validate and print the plan; run no pass")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    workflow = read_workflow(args.config)
    if args.log_level is None:
        setup_logging(workflow.config.engine.log_severity_level)
    for line in workflow.rewrite_lines():
        logger.warning("rewrote %s", line)
    if args.output_path is not None:
        workflow.config.engine.output_dir = str(args.output_path)
    engine = Engine(workflow, args.connect)
    if args.dry_run:
        print_plan(engine)
        print_dry_run(engine)
        return 0
    if workflow.config.azureml_host() is not None:  # the whole workflow runs as one AzureML job
        from olivepress.hosts.azureml import submit_workflow

        print_result(submit_workflow(engine))
        return 0
    print_result(engine.run())
    return 0


def print_result(result: RunResult) -> None:
    """The search's candidates (with an evaluator), a line per pass (with the numbers it reported) and where
    the output went."""
    if result.search is not None:
        print("\n".join(summary_lines(result.search)))
    for step in result.steps:
        verb = "from cache" if step.cache == "hit" else "ran"
        metrics = "".join(f"  {name} {number(value)}" for name, value in step.metrics.items())
        print(f"pass {step.name} ({step.type}): {verb} in {step.duration_s:.1f} s{metrics}  [{step.output_key[:12]}]")
    folders = "".join(f"{role}/, " for role in result.model.folders())
    reports = f", {REPORT_FILE}, {PLOT_FILE}" if result.search is not None else ""
    print(f"output: {result.output_dir}/  ({folders}model_config.json, footprint.json{reports})")


def print_plan(engine: Engine) -> None:
    config = engine.workflow.config
    check_output_dir(engine.output_dir)
    print(f"workflow: {config.workflow_id}  ({engine.workflow.source.file})")
    model = resolve_input_model(config.input_model, fetch=False, assets=engine.assets)
    print(f"input model: {config.input_model.type} {config.input_model.model_path}"
          + ("" if model else "  (not fetched yet: `run` fetches it)"))
    print(f"accelerator: {engine.accelerator.device} / {engine.accelerator.execution_provider}")
    print(f"cache: {engine.cache.root}")
    print(f"output: {engine.output_dir}")
    for line in plan_lines(engine):
        print(line)
    if model is None:
        for index, step in enumerate(engine.workflow.steps, 1):
            print(f"  {index}. {step.name} ({step.pass_class.name}) {_changed(step)}")
        return
    for index, (step, key, cached) in enumerate(engine.predicted_keys(model), 1):
        state = "cached" if cached else "to run"
        print(f"  {index}. {step.name} ({step.pass_class.name}) {_changed(step)}  [{key[:12]}, {state}]")


def _changed(step) -> str:
    """The parameters the document set (defaults left out)."""
    return str(step.config.model_dump(mode="json", exclude_unset=True))
