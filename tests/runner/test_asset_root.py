"""The offline asset root (``workbench.runner.inputs.assets``): what it holds, when it is rebuilt, concurrent builds,
and a task it cannot serve failing before Isaac Lab starts."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from workbench.errors import AssetError
from workbench.runner.inputs import assets
from workbench.spec.assets import ANT, CARTPOLE, GROUND_PLANE, OFFLINE_ASSETS, TASK_ASSETS

ANT_JOINTS = {"front_left_leg", "front_left_foot", "front_right_leg", "front_right_foot",
              "left_back_leg", "left_back_foot", "right_back_leg", "right_back_foot"}
"""The joints Isaac Lab's ANT_CFG (isaaclab_assets/robots/ant.py) sets: ``.*_leg`` and the four feet by name."""


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_the_offline_root_holds_every_asset_the_served_tasks_need(tmp_path: Path) -> None:
    root = assets.build_offline_root(tmp_path / "assets")
    assert _files(root) == {*OFFLINE_ASSETS, assets.BUILD_MARKER}
    assert {rel for needed in TASK_ASSETS.values() for rel in needed} == set(OFFLINE_ASSETS)
    assert set(TASK_ASSETS) == {"Isaac-Cartpole-Direct", "Isaac-Cartpole", "Isaac-Ant-Direct", "Isaac-Ant"}
    for task in TASK_ASSETS:
        assert assets.asset_root_for(task, root) == {"ISAACSIM_ASSET_ROOT": str(root)}


def test_the_ant_is_newtons_with_the_joints_isaac_labs_config_names(tmp_path: Path) -> None:
    from pxr import Usd, UsdPhysics

    root = assets.build_offline_root(tmp_path / "assets")
    assert ANT == "Isaac/Robots/IsaacSim/Ant/ant_instanceable.usd"  # f"{ISAAC_NUCLEUS_DIR}/Robots/IsaacSim/Ant/..."
    stage = Usd.Stage.Open(str(root / ANT))
    default = stage.GetDefaultPrim()
    assert default and default.GetName() == "ant" and default.HasAPI(UsdPhysics.ArticulationRootAPI)
    joints = {prim.GetName() for prim in Usd.PrimRange(default) if prim.IsA(UsdPhysics.RevoluteJoint)}
    assert joints == ANT_JOINTS
    cartpole, ground = Usd.Stage.Open(str(root / CARTPOLE)), Usd.Stage.Open(str(root / GROUND_PLANE))
    assert cartpole.GetDefaultPrim() and cartpole.GetDefaultPrim().GetName() == "cartpole"
    assert ground.GetDefaultPrim().GetPath() == "/World"


def test_an_older_root_is_rebuilt_with_the_new_assets(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    (root / CARTPOLE).parent.mkdir(parents=True)
    (root / CARTPOLE).write_text("#usda 1.0\n")
    (root / ".workbench-asset-root-v2").write_text("an older build\n")
    assets.build_offline_root(root)
    assert _files(root) == {*OFFLINE_ASSETS, assets.BUILD_MARKER}
    assert [p.name for p in tmp_path.iterdir()] == ["assets"], "staging or retired roots left behind"


def test_a_root_missing_a_file_is_rebuilt(tmp_path: Path) -> None:
    root = assets.build_offline_root(tmp_path / "assets")
    (root / ANT).unlink()
    assets.asset_root_for("Isaac-Ant-Direct", root)
    assert (root / ANT).is_file() and _files(root) == {*OFFLINE_ASSETS, assets.BUILD_MARKER}


def _build(root: str) -> str:
    assets.build_offline_root(Path(root))
    return "built"


def test_concurrent_builds_over_an_older_root_all_end_with_one_whole_root(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    root.mkdir()
    (root / ".workbench-asset-root-v2").write_text("an older build\n")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_build, [str(root)] * 4) == ["built"] * 4
    assert _files(root) == {*OFFLINE_ASSETS, assets.BUILD_MARKER}
    assert [p.name for p in tmp_path.iterdir()] == ["assets"]


@pytest.mark.parametrize("task", ["Isaac-Humanoid-Direct", "Isaac-Reach-Franka"])
def test_a_core_task_the_root_does_not_serve_fails_before_building_naming_the_fix(tmp_path: Path, task: str) -> None:
    with pytest.raises(AssetError, match=f"task '{task}' needs .*WORKBENCH_ASSETS=nucleus"):
        assets.asset_root_for(task, tmp_path / "assets")
    assert not (tmp_path / "assets").exists()


def test_humanoid_names_the_file_it_lacks(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="Isaac/Robots/IsaacSim/Humanoid/humanoid_instanceable.usd"):
        assets.asset_root_for("Isaac-Humanoid", tmp_path / "assets")


def test_a_custom_packages_task_and_other_asset_modes_pass(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    assert assets.asset_root_for("MyPackage-Walker-Direct", root) == {"ISAACSIM_ASSET_ROOT": str(root)}
    assert assets.asset_root_for("Isaac-Humanoid", root, mode="nucleus") == {}
    mine = tmp_path / "mine"
    mine.mkdir()
    assert assets.asset_root_for("Isaac-Humanoid", mine, mode="custom") == {"ISAACSIM_ASSET_ROOT": str(mine)}
    with pytest.raises(AssetError, match=f"needs {ANT}, {GROUND_PLANE} under the asset root {mine}"):
        assets.asset_root_for("Isaac-Ant", mine, mode="custom")
