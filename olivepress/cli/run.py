"""`olivepress run --config FILE [--dry-run]`: run a workflow document."""

import argparse
import logging
import time
from pathlib import Path

from olivepress import api
from olivepress.cli.common import add_flag
from olivepress.engine.report import PLOT_FILE, REPORT_FILE, number, summary_lines
from olivepress.engine.runner import RunResult, StepResult
from olivepress.log import logger, setup_logging


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("run", parents=[common], help="run a workflow document (JSON or YAML)")
    add_flag(parser, "config", "-c", required=True, type=Path, help="the workflow document")
    add_flag(parser, "output_path", "-o", type=Path, default=None, help="override engine.output_dir")
    add_flag(parser, "dry_run", action="store_true", help="validate and print the plan; run no pass")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    workflow = api.load(args.config)
    if args.log_level is None:
        setup_logging(workflow.config.engine.log_severity_level)
    if workflow.config.engine.log_to_file:
        log_file = Path(f"olivepress-{time.strftime('%Y%m%d-%H%M%S')}.log")
        logger.addHandler(logging.FileHandler(log_file, encoding="utf-8"))
        print(f"log: {log_file}")
    print_outcome(api.run(workflow, output_path=args.output_path, dry_run=args.dry_run, connect=args.connect))
    return 0


def print_outcome(outcome: RunResult | api.Plan) -> None:
    if isinstance(outcome, api.Plan):
        print_plan(outcome)
    else:
        print_result(outcome)


def print_result(result: RunResult) -> None:
    """The search's candidates (with an evaluator), a line per pass (by flow, with pass_flows) and where the output
    went."""
    if result.search is not None and not result.flows:
        print("\n".join(summary_lines(result.search)))
    for flow in result.flows:
        print(f"flow {flow.name}:")
        if flow.search is not None:
            print("\n".join(summary_lines(flow.search)))
        print_steps(flow.steps)
    if not result.flows:
        print_steps(result.steps)
    if not result.written:
        print("output: none written (engine.no_artifacts); the pass outputs are in the cache")
    elif result.flows:
        print(f"output: {result.output_dir}/  ({''.join(f'{flow.name}/, ' for flow in result.flows)}footprint.json)")
    else:
        folders = "".join(f"{role}/, " for role in result.model.folders())
        reports = f", {REPORT_FILE}, {PLOT_FILE}" if result.search is not None else ""
        print(f"output: {result.output_dir}/  ({folders}model_config.json, footprint.json{reports})")


def print_steps(steps: list[StepResult]) -> None:
    """A line per pass, with the numbers it reported."""
    for step in steps:
        verb = "from cache" if step.from_cache else "ran"
        metrics = "".join(f"  {name} {number(value)}" for name, value in step.metrics.items())
        print(f"pass {step.name} ({step.type}): {verb} in {step.duration_s:.1f} s{metrics}  [{step.output_key[:12]}]")


def print_plan(plan: api.Plan) -> None:
    print(f"workflow: {plan.workflow_id}  ({plan.source})")
    print(f"input model: {plan.input_model}" + ("" if plan.input_model_fetched else "  (not fetched yet: `run` fetches it)"))
    print(f"accelerator: {plan.accelerator.device} / {plan.accelerator.execution_provider}")
    print(f"cache: {plan.cache_dir}")
    print(f"output: {plan.output_dir}")
    for line in plan.search:
        print(line)
    for index, step in enumerate(plan.steps, 1):
        state = "" if step.key is None else f"  [{step.key[:12]}, {'cached' if step.cached else 'to run'}]"
        print(f"  {index}. {step.name} ({step.type}) {step.config}{state}")
    for path in plan.azureml_files:
        print(f"azureml: wrote {path}")
