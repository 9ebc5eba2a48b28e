"""Which tasks run offline (``workbench.spec.assets``): the one table, stdlib only, and the submit-time check."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from workbench.spec import assets
from workbench.spec.catalogue import CORE_TASK_LIBRARIES, CORE_TASK_MAIN_ASSET
from workbench.spec.document import SpecError, parse_spec
from workbench.spec.task_registry import config_assets, main_asset


def _spec(task: str, **extra):
    return parse_spec({"trainingConfig": {"task": task, "numEnvs": 16, "device": "cpu"}, **extra})


def test_every_served_task_is_a_core_task_and_every_file_comes_from_the_root() -> None:
    assert set(assets.TASK_ASSETS) <= set(CORE_TASK_LIBRARIES)
    assert {rel for needed in assets.TASK_ASSETS.values() for rel in needed} == set(assets.OFFLINE_ASSETS)
    for task in assets.TASK_ASSETS:  # the file a served task's config names is one the root has
        assert CORE_TASK_MAIN_ASSET[task] in assets.TASK_ASSETS[task]
    assert {task: assets.availability(task) for task in ("Isaac-Ant", "Isaac-Ant-Direct", "Isaac-Humanoid")} == {
        "Isaac-Ant": "offline", "Isaac-Ant-Direct": "offline", "Isaac-Humanoid": "nucleus"}


def test_the_table_is_stdlib_only() -> None:
    source = Path(assets.__file__).read_text()
    imported = {node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names
               and not name.startswith("workbench.spec") and name != "__future__"}
    assert outside == set()


@pytest.mark.parametrize("task", ["Isaac-Cartpole-Direct-v0", "Isaac-Ant-Direct", "Isaac-Ant"])
def test_served_tasks_pass_offline(task: str) -> None:
    assets.check_offline(_spec(task), "offline")


def test_a_task_without_offline_assets_is_a_field_error_naming_the_file_and_the_fix() -> None:
    with pytest.raises(SpecError) as caught:
        assets.check_offline(_spec("Isaac-Humanoid-Direct"), "offline")
    (error,) = caught.value.errors
    assert error.path == "trainingConfig.task"
    assert "Isaac/Robots/IsaacSim/Humanoid/humanoid_instanceable.usd" in error.message
    assert "WORKBENCH_ASSETS=nucleus" in error.message and "Isaac-Ant-Direct" in error.message


@pytest.mark.parametrize(("task", "named"), [
    ("Isaac-Reach-Franka", "needs Isaac/IsaacLab/Robots/FrankaEmika/franka_panda.usda under the asset root"),
    ("Isaac-Velocity-Flat-AnymalD", "needs Isaac/IsaacLab/Robots/ANYbotics/ANYmal-D/anymal_d.usd under"),
    ("Isaac-Cartpole-Camera", "is not one the offline asset root serves"),  # its cartpole is there; unverified
    ("Isaac-Fourbar-Pole-Swingup", "is not one the offline asset root serves"),  # fetched from a URL
])
def test_the_error_names_the_tasks_main_file_where_the_root_lacks_it(task: str, named: str) -> None:
    assert named in assets.missing_offline(task)


@pytest.mark.parametrize("setting", ["nucleus", "/some/asset/tree"])
def test_any_task_passes_with_nucleus_or_an_own_tree(setting: str) -> None:
    assets.check_offline(_spec("Isaac-Reach-Franka"), setting)


def test_a_custom_packages_task_is_let_through() -> None:
    spec = _spec("MyPackage-Walker-Direct", customEnvironmentS3Uri="s3://bucket/my_env-0.1.0-py3-none-any.whl")
    assets.check_offline(spec, "offline")


@pytest.mark.slow
def test_the_main_asset_table_is_what_isaac_labs_configs_name() -> None:
    """``CORE_TASK_MAIN_ASSET`` against the installed Isaac Lab's configs (imports every one: ~10 s)."""
    live = config_assets()
    assert set(live["Isaac-Ant-Direct"]) == {assets.ANT}  # the ground plane comes from the terrain importer
    assert set(live["Isaac-Cartpole-Direct"]) == {assets.CARTPOLE, assets.GROUND_PLANE}
    read = {task: main_asset(paths) for task, paths in live.items() if task in CORE_TASK_LIBRARIES}
    assert {task: path for task, path in read.items() if path} == CORE_TASK_MAIN_ASSET
