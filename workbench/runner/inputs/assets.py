"""The offline asset root: the USD files tasks load, built from what the installed packages ship.

Isaac Lab tasks load their USD assets from NVIDIA's asset server at run time. ``ISAACSIM_ASSET_ROOT`` points
every look-up at a local tree of the same layout instead. We build that tree once under the workbench home from
the installed ``newton`` package's flattened Isaac Lab cartpole and its ant, and a ground plane authored with
``pxr``. Which tasks it serves and the files each needs are ``workbench.spec.assets``'s table.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from workbench.errors import AssetError
from workbench.spec.assets import ANT, CARTPOLE, GROUND_PLANE, OFFLINE_ASSETS, TASK_ASSETS, missing_offline
from workbench.spec.catalogue import CORE_TASKS

log = logging.getLogger(__name__)

NUCLEUS_ROOT = "https://omniverse-content-production.s3-us-west-2.amazonaws.com/Assets/Isaac/6.0"
"""NVIDIA's public asset server (the default root for users with network)."""

__all__ = ["BUILD_MARKER", "NUCLEUS_ROOT", "TASK_ASSETS", "asset_root_for", "build_offline_root"]

BUILD_MARKER = ".workbench-asset-root-v3"
"""Written last into a complete root; a new version (a new asset) makes every home rebuild its root."""


def asset_root_for(task: str, root: Path, mode: str = "offline") -> dict[str, str]:
    """The environment variables that point Isaac Lab at assets for ``task``.

    ``mode`` is ``offline`` (the local root, built if needed; fails fast for a core task it cannot serve) or
    ``nucleus`` (NVIDIA's asset server, needs network) or ``custom`` (``root`` is a user-provided tree).
    """
    if mode == "nucleus":
        return {}
    if mode == "offline":
        if task in CORE_TASKS and task not in TASK_ASSETS:
            raise AssetError(missing_offline(task))
        build_offline_root(root)
    missing = [rel for rel in TASK_ASSETS.get(task, ()) if not (root / rel).exists()]
    if mode == "offline" and task not in TASK_ASSETS:
        log.info("task %s has no known offline asset list; assets it needs must be under %s", task, root)
    if missing:
        raise AssetError(
            f"task {task!r} needs {', '.join(missing)} under the asset root {root}; copy them there from NVIDIA's "
            f"asset server, or set WORKBENCH_ASSETS=nucleus to download them at run time (needs network)"
        )
    return {"ISAACSIM_ASSET_ROOT": str(root)}


def build_offline_root(root: Path) -> Path:
    """Build (once) the offline asset tree under ``root``; safe to call from several jobs at a time.

    A root is complete when it has this version's marker and every file; otherwise a new one is built beside it
    and swapped in by renames (an older or damaged root is moved aside, then deleted), so a job sees either a
    whole root or none, and two jobs building at once both end with one whole root.
    """
    if _complete(root):
        return root
    staging = root.with_name(f".{root.name}.building.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_cartpole(staging / CARTPOLE)
        _write_ant(staging / ANT)
        _write_ground_plane(staging / GROUND_PLANE)
        (staging / BUILD_MARKER).write_text("built by workbench.runner.inputs.assets\n")
        root.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built the offline asset root at %s", root)
    return root


def _complete(root: Path) -> bool:
    return (root / BUILD_MARKER).exists() and all((root / rel).is_file() for rel in OFFLINE_ASSETS)


def _swap_in(staging: Path, root: Path, attempts: int = 5) -> None:
    """Rename ``staging`` to ``root``, moving an incomplete ``root`` aside first; done when another job's
    complete root got there first."""
    failure = ""
    for attempt in range(attempts):
        try:
            os.rename(staging, root)
            return
        except OSError as exc:
            if _complete(root):
                return
            failure = f" ({exc.strerror})"
        retired = root.with_name(f".{root.name}.retired.{os.getpid()}.{attempt}")
        try:
            os.rename(root, retired)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise AssetError(f"cannot replace the incomplete asset root {root} ({exc.strerror})") from None
        shutil.rmtree(retired, ignore_errors=True)
    if not _complete(root):
        raise AssetError(f"could not put a complete asset root in place at {root}{failure}")


def _newton_asset(name: str) -> Path:
    spec = importlib.util.find_spec("newton")
    if spec is None or spec.origin is None:
        raise AssetError(f"the 'newton' package is not installed; it provides the offline asset {name}")
    path = Path(spec.origin).parent / "examples" / "assets" / name
    if not path.exists():
        raise AssetError(f"{path} is missing from the installed newton package")
    return path


def _write_cartpole(dest: Path) -> None:
    """Copy newton's flattened Isaac Lab cartpole, fixing its defaultPrim (it names 'cartPole', the prim is 'cartpole')."""
    text = _newton_asset("cartpole_single_pendulum.usda").read_text()
    if 'defaultPrim = "cartPole"' not in text and 'defaultPrim = "cartpole"' not in text:
        raise AssetError("newton's cartpole asset changed: no defaultPrim found to fix")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text.replace('defaultPrim = "cartPole"', 'defaultPrim = "cartpole"'))


def _write_ant(dest: Path) -> None:
    """Copy newton's ant (Isaac Lab's ANT_CFG joint and body names: ``front_left_leg``, ..., ``right_back_foot``)."""
    text = _newton_asset("ant.usda").read_text()
    if 'defaultPrim = "ant"' not in text or '"front_left_foot"' not in text:
        raise AssetError("newton's ant asset changed: no defaultPrim 'ant' with the joints Isaac Lab's ANT_CFG names")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)


def _write_ground_plane(dest: Path) -> None:
    """Author the ground plane Isaac Lab spawns: a collision plane and a visible quad under /World."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, Vt

    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Usd.Stage.CreateNew(str(dest))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    world = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(world.GetPrim())
    UsdGeom.Xform.Define(stage, "/World/GroundPlane")
    plane = UsdGeom.Plane.Define(stage, "/World/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr(UsdGeom.Tokens.z)
    plane.CreateVisibilityAttr(UsdGeom.Tokens.invisible)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    environment = UsdGeom.Xform.Define(stage, "/World/Environment")
    environment.AddScaleOp().Set(Gf.Vec3f(1.0, 1.0, 1.0))
    mesh = UsdGeom.Mesh.Define(stage, "/World/Environment/Geometry")
    half = 50.0
    mesh.CreatePointsAttr(Vt.Vec3fArray([Gf.Vec3f(-half, -half, 0), Gf.Vec3f(half, -half, 0),
                                         Gf.Vec3f(half, half, 0), Gf.Vec3f(-half, half, 0)]))
    mesh.CreateFaceVertexCountsAttr([4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    mesh.CreateNormalsAttr(Vt.Vec3fArray([Gf.Vec3f(0, 0, 1)] * 4))
    mesh.CreateDisplayColorAttr(Vt.Vec3fArray([Gf.Vec3f(0.55, 0.55, 0.57)]))
    UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
        Vt.Vec2fArray([(-half, -half), (half, -half), (half, half), (-half, half)])
    )
    stage.GetRootLayer().Save()
