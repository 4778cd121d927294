"""`olivepress register`: register a model folder in an AzureML workspace (mlflow_model for an MLflow folder,
custom_model otherwise), like
`az ml model create --name N --version V --path P --resource-group RG --workspace-name WS`."""

import argparse
import sys
from pathlib import Path

from olivepress.cli.common import add_flag
from olivepress.errors import OlivepressError
from olivepress.models.mlflow import is_mlflow_folder

FLAGS = {"subscription_id": "--subscription", "resource_group": "--resource-group", "workspace_name": "--workspace-name"}


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("register", parents=[common], help="register a model folder in an AzureML workspace")
    add_flag(parser, "name", "-n", required=True, help="the model's name")
    add_flag(parser, "version", "-v", required=True, help="the model's version")
    add_flag(parser, "path", "-p", required=True, type=Path, help="the model folder (or file) to upload")
    add_flag(parser, "resource_group", "-g", help="the workspace's resource group (else AZUREML_RESOURCE_GROUP or config.json)")
    add_flag(parser, "workspace_name", "-w", help="the workspace (else AZUREML_WORKSPACE_NAME or config.json)")
    add_flag(parser, "subscription", "-s", help="the subscription id (else AZUREML_SUBSCRIPTION_ID or config.json)")
    add_flag(parser, "description", "-d", help="the model's description")
    add_flag(parser, "tags", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="tags, e.g. --tags k=v k2=v2")
    add_flag(parser, "dry_run", action="store_true", help="build the model entity and print it as YAML; send nothing")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from olivepress.systems.azureml import client
    from olivepress.systems.azureml.workspace import resolve_workspace

    client.require_azure()
    model = build_model(args.name, args.version, args.path, args.description, parse_tags(args.tags))
    flags = {"subscription_id": args.subscription, "resource_group": args.resource_group,
             "workspace_name": args.workspace_name}
    if args.dry_run:
        model.dump(sys.stdout)
        return 0
    workspace = resolve_workspace(None, flags, FLAGS)
    registered = args.connect(None, workspace).create_model(model)
    print(f"registered {registered} in workspace {workspace.workspace_name} ({workspace.resource_group})")
    return 0


def build_model(name: str, version: str, path: Path, description: str | None, tags: dict[str, str]):
    """The azure-ai-ml Model entity `az ml model create --type` would send: mlflow_model for a folder with an
    MLmodel file, custom_model for any other (a GenAI folder)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    if not path.exists():
        raise OlivepressError(f"--path: {path}: no such file or folder")
    if path.is_dir() and not any(path.iterdir()):
        raise OlivepressError(f"--path: {path} is an empty folder")
    try:
        kind = AssetTypes.MLFLOW_MODEL if is_mlflow_folder(path) else AssetTypes.CUSTOM_MODEL
        return Model(name=name, version=version, path=str(path.resolve()), type=kind,
                     description=description, tags=tags)
    except Exception as error:  # azure-ai-ml's own checks of name and version
        raise OlivepressError(f"register: not a valid AzureML model: {error}") from None


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OlivepressError(f"--tags: '{pair}' is not KEY=VALUE")
        tags[key] = value
    return tags
