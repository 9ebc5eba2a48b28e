"""GPU benchmarks of bare ``isaaclab train`` (Isaac-Cartpole-Direct, rsl_rl, 4096 envs) on a machine with no network.

  python -m bench.gpu solved  --out DIR   # asset root, cold and warm kernel cache: first iteration, time to solved
  python -m bench.gpu packing --out DIR   # k = 1, 2, 4, 8 concurrent trainings on one GPU; start-up profile; cold #2
  python -m bench.gpu workbench --out DIR # the workbench's local backend vs bare, alternating: overhead, first iteration
  python -m bench.gpu distributed --out DIR  # the runner's torchrun launch on every visible GPU vs plain on one GPU
  python -m bench.gpu warmstart --out DIR # jobs forked from the warm process vs fresh vs bare: first iteration, speed

Results go to ``DIR/gpu_<phase>.json`` after every run (so a run cut off at the device's time limit still leaves
what it measured) and the timestamped logs to ``DIR/gpu_<phase>_logs.tar.gz``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench.machine import describe
from bench.watch import RunTiming, aggregate_steps_per_second, watch

TASK = "Isaac-Cartpole-Direct"
NUM_ENVS = 4096
STEPS_PER_ENV = 16
"""rsl_rl's ``num_steps_per_env`` for cartpole: each iteration is NUM_ENVS x 16 env-steps."""
HOME = Path("/tmp/wbhome")
WARM_CACHE = HOME / "warp-cache"
LOGS = Path("/tmp/bench-logs")


def train_command(max_iterations: int | None = None, seed: int = 42) -> list[str]:
    command = [sys.executable, "-m", "isaaclab", "train", "--rl_library", "rsl_rl", "--task", TASK,
               "--num_envs", str(NUM_ENVS), "--seed", str(seed)]
    if max_iterations:
        command += ["--max_iterations", str(max_iterations)]
    return command


class Recorder:
    """Keeps the phase's results in one JSON file and its logs in one tarball, rewritten after every run."""

    def __init__(self, out: Path, phase: str) -> None:
        self.path = out / f"gpu_{phase}.json"
        self.logs = out / f"gpu_{phase}_logs.tar.gz"
        self.data: dict = {"machine": describe(), "runs": {}}
        self.save()

    def add(self, name: str, value: object) -> None:
        self.data["runs"][name] = value.to_json() if isinstance(value, RunTiming) else value
        self.save()
        summary = value if not isinstance(value, RunTiming) else {
            "first_iteration_s": value.first_iteration_s, "solved_s": value.solved_s, "wall_s": round(value.wall_s, 1),
            "returncode": value.returncode, "steps_per_s": value.median_steps_per_second()}
        print(f"[bench] {name}: {json.dumps(summary)}", flush=True)

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1))
        if LOGS.exists():
            with tarfile.open(self.logs, "w:gz") as tar:
                tar.add(LOGS, arcname="logs")


def env_for(cache: Path) -> dict[str, str]:
    return {"WARP_CACHE_PATH": str(cache), "ISAACSIM_ASSET_ROOT": str(HOME / "assets")}


def run_one(name: str, cache: Path, **kwargs) -> RunTiming:
    cwd = Path("/tmp/bench-runs") / name
    shutil.rmtree(cwd, ignore_errors=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    command = kwargs.pop("command", None) or train_command(kwargs.pop("max_iterations", None))
    return watch(command, cwd, env=env_for(cache), log_path=LOGS / f"{name}.log", **kwargs)


def build_assets(rec: Recorder) -> None:
    from workbench.runner.inputs.assets import build_offline_root

    t = time.monotonic()
    build_offline_root(HOME / "assets")
    rec.add("asset_root_build_s", round(time.monotonic() - t, 2))


def import_times(rec: Recorder) -> None:
    """Seconds to import the heavy modules (and initialise Warp/CUDA), one fresh interpreter each, in order."""
    code = ("import time,json;r={};t=time.perf_counter()\n"
            "import torch;torch.zeros(1,device='cuda');r['torch+cuda']=time.perf_counter()-t;t=time.perf_counter()\n"
            "import warp as wp;wp.init();r['warp']=time.perf_counter()-t;t=time.perf_counter()\n"
            "import newton;r['newton']=time.perf_counter()-t;t=time.perf_counter()\n"
            "import isaaclab_tasks;r['isaaclab_tasks']=time.perf_counter()-t;t=time.perf_counter()\n"
            "import isaaclab_rl.rsl_rl, rsl_rl.runners;r['isaaclab_rl+rsl_rl']=time.perf_counter()-t\n"
            "print('IMPORTS '+json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=None, timeout=300)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("IMPORTS ")), None)
    rec.add("import_s", json.loads(line[8:]) if line else {"error": out.stderr[-2000:]})


def phase_solved(rec: Recorder, deadline: float) -> None:
    build_assets(rec)
    import_times(rec)
    shutil.rmtree(WARM_CACHE, ignore_errors=True)
    rec.add("cold_1", run_one("cold_1", WARM_CACHE, stop_when_solved=True, timeout_s=330))
    for n in range(1, 4):
        if deadline - time.monotonic() < 90:
            break
        rec.add(f"warm_{n}", run_one(f"warm_{n}", WARM_CACHE, stop_when_solved=True, timeout_s=150))


def phase_packing(rec: Recorder, deadline: float, iterations: int, ks: list[int]) -> None:
    build_assets(rec)
    if not WARM_CACHE.exists():
        rec.add("cache_fill", run_one("cache_fill", WARM_CACHE, stop_after_first_iteration=True, timeout_s=330))
    results = {}
    for k in ks:
        if deadline - time.monotonic() < 60 + 12 * k:
            break
        results[str(k)] = pack(k, iterations)
        rec.add(f"packing_{k}", results[str(k)])
    base = results.get("1", {}).get("aggregate_steps_per_s")
    if base:
        rec.add("packing_speedup", {k: round(v["aggregate_steps_per_s"] / base, 3)
                                    for k, v in results.items() if v.get("aggregate_steps_per_s")})
    if deadline - time.monotonic() > 120:
        profile_startup(rec)
    if deadline - time.monotonic() > 200:
        cache = HOME / "warp-cache-cold2"
        shutil.rmtree(cache, ignore_errors=True)
        rec.add("cold_2", run_one("cold_2", cache, stop_after_first_iteration=True, timeout_s=max(
            60, deadline - time.monotonic() - 20)))


def pack(k: int, iterations: int) -> dict:
    """Start k trainings at once on the one GPU and measure their aggregate env-steps/s."""
    import threading

    runs: list[RunTiming | None] = [None] * k
    t0 = time.monotonic()

    def one(i: int) -> None:
        runs[i] = run_one(f"pack{k}_{i}", WARM_CACHE, max_iterations=iterations, timeout_s=400, t0=t0)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in runs if r is not None]
    return {
        "k": k, "iterations_each": iterations, "wall_s": round(time.monotonic() - t0, 2),
        "returncodes": [r.returncode for r in done],
        "first_iteration_s": [r.first_iteration_s for r in done],
        "aggregate_steps_per_s": aggregate_steps_per_second(done, NUM_ENVS * STEPS_PER_ENV),
        "sum_of_median_printed_steps_per_s": sum(r.median_steps_per_second() or 0 for r in done),
        "final_mean_episode_length": [r.iterations[-1].mean_episode_length if r.iterations else None for r in done],
    }


def profile_startup(rec: Recorder) -> None:
    """py-spy a warm start to the first iteration (speedscope JSON next to the results)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    site_bin = Path("/tmp/site/bin/py-spy")
    if site_bin.exists():
        py_spy = str(site_bin)
    out = rec.path.parent / "startup_profile.speedscope.json"
    command = [py_spy, "record", "--rate", "50", "--subprocesses", "--format", "speedscope", "-o", str(out), "--",
               *train_command()]
    rec.add("profile_warm", run_one("profile_warm", WARM_CACHE, command=command, stop_after_first_iteration=True,
                                    timeout_s=180))


def phase_workbench(rec: Recorder, deadline: float, iterations: int, pairs: int = 2) -> None:
    """Through the local backend vs bare ``isaaclab train`` (the runner's arguments), one workbench home whose
    cache directory also holds the CUDA driver's JIT cache (``CUDA_CACHE_PATH``, the proposed fix)."""
    import os

    from bench.cpu import _summary
    from bench.jobs import run_bare, run_workbench, training_spec

    home = HOME / "workbench-home"
    os.environ["CUDA_CACHE_PATH"] = str(home / "cache" / "cuda")
    spec = training_spec(NUM_ENVS, iterations, device="cuda")
    rec.add("workbench_cold", _summary(run_workbench(spec, home, stop_after_first_iteration=True, timeout_s=330)))
    ratios = []
    for n in range(pairs):
        if deadline - time.monotonic() < 100:
            break
        order = ["workbench", "bare"] if n % 2 == 0 else ["bare", "workbench"]
        pair = {}
        for side in order:
            timing = run_workbench(spec, home) if side == "workbench" else run_bare(spec, home, Path(
                f"/tmp/bench-runs/wb-bare-{n}"))
            pair[side] = _summary(timing)
        rec.add(f"workbench_pair_{n}", pair)
        if pair["workbench"]["median_steps_per_s"] and pair["bare"]["median_steps_per_s"]:
            ratios.append(pair["workbench"]["median_steps_per_s"] / pair["bare"]["median_steps_per_s"])
    rec.add("workbench_throughput_ratios", ratios)


def phase_warmstart(rec: Recorder, deadline: float, iterations: int) -> None:
    """The warm process on this GPU (``bench.cpu.startup`` with 4096 envs): submit to first iteration forked from
    it, as a fresh process with the caches filled (a new container with its caches on EFS) and bare, in rotating
    rounds; then throughput of forked jobs against bare, alternating."""
    from bench import cpu

    work = HOME / "warmstart"
    rec.add("startup", cpu.startup(work, cold_pairs=0, warm_rounds=3, num_envs=NUM_ENVS))
    if deadline - time.monotonic() > 150:
        rec.add("overhead", cpu.overhead(work, pairs=2, num_envs=NUM_ENVS, iterations=iterations, concurrent=False,
                                         home=work / "cold-wb-0"))


def phase_distributed(rec: Recorder, iterations: int) -> None:
    """Isaac Lab's distributed training through the runner's own torchrun launch (``workbench.runner.multinode``,
    the multi-node code path) on every visible GPU, against plain training on one GPU: aggregate steps/s."""
    import torch

    from workbench.runner.multinode import DistributedLaunch, master_port, shared_run_timestamp

    gpus = torch.cuda.device_count()
    rec.add("gpus", gpus)
    build_assets(rec)
    plain = run_one("plain-1gpu", WARM_CACHE, max_iterations=iterations)
    rec.add("plain_1gpu", plain.to_json())
    launch = DistributedLaunch(None, gpus, shared_run_timestamp("bench-distributed"), master_port("bench-distributed"))
    command = launch.command(train_command(iterations) + ["--device", "cuda:0", "agent.device=cuda:0"])
    rec.add("distributed_command", command)
    cwd = Path("/tmp/bench-runs") / f"distributed-{gpus}gpu"
    env = launch.environment(env_for(WARM_CACHE))
    timing = watch(command, cwd, env=env, log_path=LOGS / f"distributed-{gpus}gpu.log")
    rec.add(f"distributed_{gpus}gpu", timing.to_json())
    per_rank = timing.median_steps_per_second()
    single = plain.median_steps_per_second()
    if per_rank and single:
        rec.add("scaling", {"gpus": gpus, "rank0_steps_per_s": per_rank, "aggregate_steps_per_s": per_rank * gpus,
                            "plain_1gpu_steps_per_s": single, "speedup": per_rank * gpus / single})


def phase_pyc(rec: Recorder) -> None:
    """Warm starts before and after compiling the bytecode of the image's torch (its venv ships no .pyc)."""
    import os

    import torch

    build_assets(rec)
    home = HOME / "workbench-home"
    os.environ["CUDA_CACHE_PATH"] = str(home / "cache" / "cuda")
    cache = home / "cache" / "warp"
    for n in (1, 2):
        rec.add(f"warm_before_pyc_{n}", run_one(f"before_pyc_{n}", cache, stop_after_first_iteration=True,
                                                 timeout_s=90))
    torch_dir = Path(torch.__file__).parent.parent
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "16", str(torch_dir)],
                          capture_output=True, text=True)
    rec.add("compileall", {"dir": str(torch_dir), "s": round(time.monotonic() - t, 1), "rc": done.returncode})
    for n in (1, 2):
        rec.add(f"warm_after_pyc_{n}", run_one(f"after_pyc_{n}", cache, stop_after_first_iteration=True,
                                                timeout_s=90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["solved", "packing", "workbench", "pyc", "distributed", "warmstart"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop starting new runs after this")
    parser.add_argument("--iterations", type=int, default=100, help="iterations of each packed training")
    parser.add_argument("--ks", default="1,2,4,8")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    rec = Recorder(args.out, args.phase)
    if args.phase == "solved":
        phase_solved(rec, deadline)
    elif args.phase == "pyc":
        phase_pyc(rec)
    elif args.phase == "workbench":
        phase_workbench(rec, deadline, args.iterations)
    elif args.phase == "warmstart":
        phase_warmstart(rec, deadline, args.iterations)
    elif args.phase == "distributed":
        phase_distributed(rec, args.iterations)
    else:
        phase_packing(rec, deadline, args.iterations, [int(k) for k in args.ks.split(",")])
    rec.save()


if __name__ == "__main__":
    main()
