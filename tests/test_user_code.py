"""User scripts named by documents: loading, functions by name, Olive's registry decorators, content keys."""

import sys

import pytest

from olivepress.errors import OlivepressError
from olivepress.user_code import load_script, script_digest

DECORATED = """
from olive.data.registry import Registry


@Registry.register_dataset()
def load_rows(count):
    return list(range(count))


@Registry.register_pre_process("Double_It")
def double(rows):
    return [2 * row for row in rows]
"""


def test_a_function_is_found_by_its_name(tmp_path):
    script = tmp_path / "user.py"
    script.write_text("def rows(n):\n    return list(range(n))\n", encoding="utf-8")
    assert load_script(str(script)).function("rows", "here")(3) == [0, 1, 2]


def test_olive_decorated_functions_are_found_by_name_and_by_registered_name(tmp_path):
    script = tmp_path / "decorated.py"
    script.write_text(DECORATED, encoding="utf-8")
    loaded = load_script(str(script))
    assert loaded.function("load_rows", "here")(2) == [0, 1]
    assert loaded.function("double_it", "here")([1, 2]) == [2, 4]  # Olive's names are case-insensitive
    assert "olive" not in sys.modules  # the stand-in is gone once the script has run


FRAMEWORK_SCRIPT = """
from olive.constants import Framework
from olive.model import PyTorchModelHandler


def dataloader(data_dir, batch_size, model_framework=Framework.PYTORCH):
    return [model_framework == Framework.ONNX, str(Framework.PYTORCH)]


def dummy_inputs(model: PyTorchModelHandler):
    return PyTorchModelHandler(model_path=model)
"""


def test_olives_framework_and_handler_names_are_there_while_a_script_runs(tmp_path):
    script = tmp_path / "llama2_user_script.py"
    script.write_text(FRAMEWORK_SCRIPT, encoding="utf-8")
    loaded = load_script(str(script))
    assert loaded.function("dataloader", "here")(None, 1, model_framework="ONNX") == [True, "PyTorch"]
    assert loaded.function("dataloader", "here")(None, 1) == [False, "PyTorch"]
    with pytest.raises(OlivepressError, match="^olive.model.PyTorchModelHandler: olivepress names Olive's model "
                                              "handlers for annotations only; a script that builds one needs olive-ai"):
        loaded.function("dummy_inputs", "here")("m.pt")
    assert "olive.constants" not in sys.modules and "olive.model" not in sys.modules


def test_other_olive_imports_are_refused_in_one_line(tmp_path):
    script = tmp_path / "olive_workflows.py"
    script.write_text("from olive.workflows import run\n", encoding="utf-8")
    with pytest.raises(OlivepressError) as error:
        load_script(str(script), where="data_configs.d.user_script")
    assert str(error.value) == (
        "data_configs.d.user_script: olive_workflows.py imports olive.workflows, a part of Olive (olive-ai) that "
        "olivepress does not provide; remove that import (only olive.data.registry's decorators, "
        "olive.constants.Framework and olive.model's handler names are understood) or install olive-ai"
    )


def test_a_missing_function_names_the_ones_there_are(tmp_path):
    script = tmp_path / "user.py"
    script.write_text("def a():\n    pass\n\n\ndef b():\n    pass\n", encoding="utf-8")
    with pytest.raises(OlivepressError, match="^here: user.py has no function 'c'; it has a, b$"):
        load_script(str(script)).function("c", "here")


def test_a_missing_script_and_script_dir_are_errors(tmp_path):
    with pytest.raises(OlivepressError, match="^here: user script nope.py not found$"):
        load_script("nope.py", where="here")
    with pytest.raises(OlivepressError, match="^here: script_dir .*missing: no such folder$"):
        load_script("nope.py", str(tmp_path / "missing"), where="here")


def test_script_dir_is_importable_and_part_of_the_digest(tmp_path):
    helpers = tmp_path / "lib"
    helpers.mkdir()
    (helpers / "helper_for_test_user_code.py").write_text("VALUE = 7\n", encoding="utf-8")
    script = tmp_path / "user.py"
    script.write_text("from helper_for_test_user_code import VALUE\n\ndef value():\n    return VALUE\n",
                      encoding="utf-8")
    assert load_script(str(script), str(helpers)).function("value", "here")() == 7
    before = script_digest(str(script), str(helpers))
    (helpers / "helper_for_test_user_code.py").write_text("VALUE = 8\n", encoding="utf-8")
    assert script_digest(str(script), str(helpers)) != before


def test_the_digest_is_the_content_not_the_path(tmp_path):
    first, second = tmp_path / "a.py", tmp_path / "b" / "a.py"
    second.parent.mkdir()
    first.write_text("X = 1\n", encoding="utf-8")
    second.write_text("X = 1\n", encoding="utf-8")
    assert script_digest(str(first), None) == script_digest(str(second), None)
    second.write_text("X = 2\n", encoding="utf-8")
    assert script_digest(str(first), None) != script_digest(str(second), None)
