"""A PyTorchModel handle brought to life: the user's model_loader called, or a whole module read from a .pt file;
and the functions of its model_script (io_config, dummy inputs), which a Hugging Face model migrated from Olive 0.2-0.6's
PyTorchModel with hf_config may name too."""

from collections.abc import Callable
from typing import Any

from olivepress.errors import OlivepressError
from olivepress.models.handles import HfModel, PyTorchModel
from olivepress.user_code import load_script

WHERE = "input_model.model_script"


def script_function(model: HfModel | PyTorchModel, name: str) -> Callable:
    if model.model_script is None:
        raise OlivepressError(f"input_model: '{name}' names a function, but there is no model_script")
    script_dir = str(model.script_dir) if model.script_dir else None
    return load_script(str(model.model_script), script_dir, WHERE).function(name, WHERE)


def load_pytorch_model(model: PyTorchModel) -> Any:
    """The torch.nn.Module in eval mode: model_loader(model_path) (Olive's call), else torch.load of the .pt file."""
    import torch

    where = model.path if model.path is not None else model.model_id
    if model.model_loader is not None:
        loaded = script_function(model, model.model_loader)(None if where is None else str(where))
    elif model.path is not None and model.path.is_file():
        # a whole pickled module, as torch.save(module) writes it: the document's author vouches for the file
        loaded = torch.load(model.path, weights_only=False, map_location="cpu")
    else:
        raise OlivepressError(f"input_model.model_path: {where} is not a .pt file of a whole module; "
                              "name a model_loader function to load it")
    if not isinstance(loaded, torch.nn.Module):
        raise OlivepressError(f"input_model: the model loaded from {where} is a {type(loaded).__name__}, "
                              "not a torch.nn.Module")
    return loaded.eval()


def io_config_of(model: HfModel | PyTorchModel) -> dict[str, Any] | None:
    """The model's io_config as a dict: as written, or what its io_config function returns (called with the handle)."""
    if isinstance(model.io_config, str):
        value = script_function(model, model.io_config)(model)
        if not isinstance(value, dict):
            raise OlivepressError(f"input_model.io_config: {model.io_config} returned a {type(value).__name__}, "
                                  "not a dict")
        return value
    return model.io_config


def dummy_inputs(model: HfModel | PyTorchModel) -> Any | None:
    """What dummy_inputs_func returns (called with the handle), or None when the model names none."""
    if model.dummy_inputs_func is None:
        return None
    return script_function(model, model.dummy_inputs_func)(model)


def dummy_inputs_in_order(model: HfModel, input_names: list[str]) -> tuple | None:
    """What the model's dummy_inputs_func returns, as the tuple of the graph's inputs in `input_names` order (a dict is
    taken by name, a tensor or a tuple positionally); None when the model names no dummy_inputs_func."""
    import torch

    given = dummy_inputs(model)
    if given is None:
        return None
    where = f"input_model.dummy_inputs_func ({model.dummy_inputs_func})"
    if isinstance(given, torch.Tensor):
        given = (given,)
    if isinstance(given, dict):
        missing = [name for name in input_names if name not in given]
        if missing:
            raise OlivepressError(f"{where} returned no {', '.join(missing)}, which io_config's input_names name "
                                  f"(it returned {', '.join(map(str, given))})")
        given = tuple(given[name] for name in input_names)
    if not isinstance(given, (list, tuple)) or len(given) != len(input_names) \
            or not all(isinstance(item, torch.Tensor) for item in given):
        raise OlivepressError(f"{where} returned {type(given).__name__}; return a tensor, a tuple of {len(input_names)} "
                              "tensors, or a dict of tensors by input name")
    return tuple(given)
