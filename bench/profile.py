"""Where a start-up goes: a py-spy speedscope profile of ``isaaclab train`` (to its first iteration) in categories.

  py-spy record --rate 50 --format speedscope -o start.json -- python -m isaaclab train ...
  python -m bench.profile start.json

Each sample goes to the first category, in the order below, whose marker is on its stack.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("first training iteration (rsl_rl learn)", ("OnPolicyRunner.learn",)),
    ("Warp kernel compile/load", ("Module.load",)),
    ("USD asset loading", ("add_usd", "spawn_from_usd", "Usd.Stage", "usd_replicate")),
    ("Python bytecode compilation (missing .pyc)", ("source_to_code",)),
    ("import: tensordict -> torch._dynamo", ("tensordict/__init__.py",)),
    ("import: Warp parses kernel sources (Adjoint)", ("Adjoint.__init__",)),
    ("import: other modules", ("_find_and_load",)),
    ("env and simulation set-up", ("create_isaaclab_env",)),
)


def summarize(path: Path) -> dict[str, float]:
    """Seconds per category for the profile's busiest process (a process's samples are wall-clock seconds)."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    profile = max(data["profiles"], key=lambda p: sum(p["weights"]))
    totals: Counter[str] = Counter()
    for stack, weight in zip(profile["samples"], profile["weights"]):
        keys = [f"{frames[i]['name']} {frames[i].get('file', '')}" for i in stack]
        totals[_category(keys)] += weight
    out = {name: round(totals[name], 2) for name, _ in CATEGORIES if totals[name]}
    out["other"] = round(totals["other"], 2)
    out["total"] = round(sum(totals.values()), 2)
    return out


def _category(keys: list[str]) -> str:
    for name, markers in CATEGORIES:
        if any(marker in key for key in keys for marker in markers):
            return name
    return "other"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg)
        for name, seconds in summarize(Path(arg)).items():
            print(f"  {seconds:7.2f} s  {name}")
