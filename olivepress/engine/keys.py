"""Cache keys: full SHA-256 digests over everything that can change a result, and nothing else."""

from olivepress.hardware import Accelerator
from olivepress.hashing import FingerprintMemo, digest, library_versions
from olivepress.models.handles import PATH_FIELDS, HfModel, ModelHandle, PyTorchModel
from olivepress.models.hub import snapshot_commit
from olivepress.passes.base import Pass, PassConfig
from olivepress.user_code import script_digest


def model_key(model: ModelHandle, memo: FingerprintMemo) -> str:
    """The key of an input model: the contents of its folders plus how it is loaded; for a folder from the Hugging
    Face hub also its commit, so that a branch moved to a new commit rebuilds (a local folder's key has no commit).
    A PyTorchModel's script (and script_dir) counts by content: the code that builds the module."""
    description = model.to_config()
    if isinstance(model, PyTorchModel | HfModel) and model.model_script is not None:
        description["script_contents"] = script_digest(
            str(model.model_script), str(model.script_dir) if model.script_dir else None, "input_model.model_script")
        description.pop("export_functions", None)  # an HfModel's: the script's paths; its function names are kept
        description["script_functions"] = [model.io_config if isinstance(model.io_config, str) else None,
                                           model.dummy_inputs_func]
    for role, folder in model.folders().items():
        description[f"{role}_contents"] = memo.fingerprint(folder)
        if (commit := snapshot_commit(folder)) is not None:
            description[f"{role}_commit"] = commit
    for key in PATH_FIELDS:
        description.pop(key, None)  # where the files lie does not matter, only what they hold
    return digest(description)


def pass_key(
    input_key: str,
    pass_class: type[Pass],
    config: PassConfig,
    accelerator: Accelerator,
    data_fingerprints: dict[str, str] | None = None,
) -> str:
    """`data_fingerprints` maps each data-reference field to its data's fingerprint; the field's value (a
    data config's name) is left out, so renaming a data config keeps the key."""
    data = data_fingerprints or {}
    resolved = {name: value for name, value in config.model_dump(mode="json").items() if name not in data}
    return digest(
        {
            "input": input_key,
            "pass": pass_class.name,
            "pass_version": pass_class.version,
            "config": resolved,
            "data": data,
            "accelerator": accelerator.as_dict(),
            "libraries": library_versions(),
        }
    )
