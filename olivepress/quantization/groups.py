"""One group size for the whole model: the GenAI builder takes a single `group_size`, and its MatMulNBits
needs a power of two >= 16 that divides each quantized layer's in_features."""

import logging

from olivepress.errors import OlivepressError

MIN_GROUP_SIZE = 16
# When the requested size does not divide a layer, groups no larger than the builder's own int4 block size: on
# SmolLM2 (width 576) AWQ at 32 closes about twice the share of the int4 perplexity gap that it closes at 64, on
# text unlike its calibration data, for 7 MB more (docs/benchmarks.md).
FALLBACK_GROUP_SIZE = 32


def is_valid_group_size(group_size: int) -> bool:
    return group_size >= MIN_GROUP_SIZE and group_size & (group_size - 1) == 0


def choose_group_size(requested: int, in_features: dict[str, int], logger: logging.Logger) -> int:
    """`requested` when it divides every layer's in_features; otherwise the largest power of two >= 16 and
    <= min(requested / 2, FALLBACK_GROUP_SIZE) that does, with a warning naming the layers; otherwise an error
    naming a layer and the sizes that fit it."""
    misfits = {name: size for name, size in in_features.items() if size % requested}
    if not misfits:
        return requested
    candidate = min(requested // 2, FALLBACK_GROUP_SIZE)
    while candidate >= MIN_GROUP_SIZE:
        if all(size % candidate == 0 for size in in_features.values()):
            logger.warning("group_size %d does not divide in_features %s; using group_size %d",
                           requested, _by_size(misfits), candidate)
            return candidate
        candidate //= 2
    name, size = min(in_features.items(), key=lambda item: _largest_power_of_two_divisor(item[1]))
    fitting = [str(1 << power) for power in range(_largest_power_of_two_divisor(size).bit_length())]
    raise OlivepressError(
        f"group_size {requested}: no power-of-two group size >= {MIN_GROUP_SIZE} divides the in_features of every "
        f"quantized layer; {name} has in_features {size}, which only power-of-two group sizes "
        f"{', '.join(fitting)} divide (MatMulNBits needs one block size >= {MIN_GROUP_SIZE} for all layers)"
    )


def _by_size(in_features: dict[str, int]) -> str:
    """'576 (model.layers.0.self_attn.q_proj and 89 more), 1536 (model.layers.0.mlp.down_proj and 29 more)'"""
    names_by_size: dict[int, list[str]] = {}
    for name, size in in_features.items():
        names_by_size.setdefault(size, []).append(name)
    return ", ".join(f"{size} ({names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''})"
                     for size, names in names_by_size.items())


def _largest_power_of_two_divisor(value: int) -> int:
    return value & -value
