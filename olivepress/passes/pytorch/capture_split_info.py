"""CaptureSplitInfo: assigns the model's decoder layers to `num_splits` parts and records the assignment in the model's
config.json as `split_assignments` (the model attribute in which Olive keeps it), for a later SplitModel."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from olivepress.errors import OlivepressError
from olivepress.files import copy_folder, link_or_copy, write_atomic
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext

SPLIT_ASSIGNMENTS_KEY = "split_assignments"  # config.json's entry, Olive's model attribute of that name


class CaptureSplitInfoConfig(PassConfig):
    num_splits: int | None = Field(None, ge=1, description="Number of parts the decoder layers are divided into "
                                   "(consecutive layers, the first parts one layer longer when they do not divide).")
    block_to_split: str | list[str] | None = Field(
        None, description="The module (or modules) whose children are divided into the parts; default the model's "
        "decoder layers (e.g. model.layers). '' names the model itself.")
    cost_model: str | None = Field(
        None, description="Olive's split by a cost model csv and the accelerator's memory. olivepress does not model "
        "accelerator memory, so this is refused; use num_splits.")
    unique_embeds_lm_head_splits: bool = Field(
        False, description="The embeddings get a part of their own before the layers' parts, the LM head one after "
        "them (the three-part layout StaticLLM takes).")

    @field_validator("cost_model")
    @classmethod
    def _no_cost_model(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("splitting by a cost model needs the accelerator's memory, which olivepress does not "
                             "model; give num_splits instead")
        return value

    @model_validator(mode="after")
    def _needs_num_splits(self) -> "CaptureSplitInfoConfig":
        if self.num_splits is None:
            raise ValueError("num_splits is required (the number of parts of the decoder layers)")
        return self


class CaptureSplitInfo(Pass[HfModel, CaptureSplitInfoConfig]):
    name = "CaptureSplitInfo"
    description = ("Assigns the decoder layers to num_splits parts for SplitModel; writes the model folder with the "
                   "assignment in config.json (split_assignments).")
    Config = CaptureSplitInfoConfig
    accepts = ("hf",)
    produces = "hf"
    version = "1"

    def run(self, model: HfModel, config: CaptureSplitInfoConfig, context: PassContext) -> HfModel:
        from olivepress.models.loading import read_model_config

        model_config = read_model_config(model.path)
        assignments = split_assignments(_skeleton(model), config)
        context.logger.info("CaptureSplitInfo: %d parts: %s", len(set(assignments.values())), assignments)
        context.metrics["num_splits"] = len(set(assignments.values()))
        for entry in model.path.iterdir():
            if entry.is_dir():
                copy_folder(entry, context.output_dir / entry.name, link_files=True)
            elif entry.name != "config.json":
                link_or_copy(entry, context.output_dir / entry.name)
        text = json.dumps(model_config | {SPLIT_ASSIGNMENTS_KEY: assignments}, indent=2) + "\n"
        write_atomic(context.output_dir / "config.json", text)
        return replace(model, path=context.output_dir)


def _skeleton(model: HfModel) -> Any:
    """The model's module tree without weights (on the meta device): names and structure are all a split needs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    trust = bool(model.load_kwargs.get("trust_remote_code", False))
    hf_config = AutoConfig.from_pretrained(model.path, trust_remote_code=trust)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config, trust_remote_code=trust)


def split_assignments(torch_model: Any, config: CaptureSplitInfoConfig) -> dict[str, int]:
    """{module name: part} as Olive's CaptureSplitInfo makes it with num_splits."""
    assert config.num_splits is not None  # the config's validator requires it
    members = [member for block in _blocks(torch_model, config.block_to_split)
               for member in _children(torch_model, block)]
    assignments: dict[str, int] = {}
    first = 0
    excluded: set[str] = set()
    if config.unique_embeds_lm_head_splits:
        embeds = _module_name(torch_model, torch_model.get_input_embeddings(), "input embeddings")
        assignments[embeds] = 0
        first = 1
        excluded = {embeds, "lm_head"}
    for index, part in enumerate(_array_split(members, config.num_splits)):
        for member in part:
            if member not in excluded:
                assignments[member] = first + index
    if config.unique_embeds_lm_head_splits:
        assignments["lm_head"] = first + config.num_splits
    return assignments


def _blocks(torch_model: Any, block_to_split: str | list[str] | None) -> list[str]:
    if block_to_split is not None:
        return block_to_split if isinstance(block_to_split, list) else [block_to_split]
    layers = getattr(torch_model.config, "num_hidden_layers", None)
    import torch

    for name, module in torch_model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            return [name]
    raise OlivepressError("CaptureSplitInfo: cannot find the model's decoder layers (a ModuleList of "
                          f"num_hidden_layers={layers} modules); set block_to_split")


def _children(torch_model: Any, block: str) -> list[str]:
    try:
        module = torch_model.get_submodule(block)
    except AttributeError:
        raise OlivepressError(f"block_to_split: the model has no module '{block}'") from None
    return [f"{block}.{child}".lstrip(".") for child, _ in module.named_children()]


def _module_name(torch_model: Any, target: Any, what: str) -> str:
    for name, module in torch_model.named_modules():
        if module is target:
            return name
    raise OlivepressError(f"CaptureSplitInfo: the model's {what} are not one of its modules")


def _array_split(items: list[str], parts: int) -> list[list[str]]:
    """numpy.array_split for a list: `parts` consecutive runs, the first len % parts of them one longer."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        runs.append(items[start:end])
        start = end
    return runs


def read_split_assignments(folder: Path) -> dict[str, int] | None:
    """The split_assignments a model folder's config.json records (CaptureSplitInfo's, carried along by the
    export), or None."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    value = json.loads(config_file.read_text(encoding="utf-8")).get(SPLIT_ASSIGNMENTS_KEY)
    return {str(name): int(part) for name, part in value.items()} if value else None
