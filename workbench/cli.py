"""The ``workbench`` command: validate, run, train, evaluate and follow jobs on the local or aws backend.

Exit codes: 0 success; 1 the job FAILED or was CANCELLED (``--wait``) or an operation failed; 2 invalid input:
a spec, a flag, a ``WORKBENCH_*`` setting (the home included) or a status file that cannot be used (nothing was
started). Errors are one message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.backends import backend_names, get_backend
from workbench.backends.base import Job
from workbench.errors import SettingError, WorkbenchError
from workbench.spec.document import FieldError, JobSpec, SpecError, is_job_id, parse_spec
from workbench.spec.settings import check_seconds
from workbench.spec.status import JobState, JobStatus

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_TASK = "Isaac-Cartpole-Direct"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID if isinstance(exc, (SettingError, ValueError)) else EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Train and evaluate Isaac Lab policies.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check a spec file and print it normalized")
    validate.add_argument("spec", type=Path)
    validate.set_defaults(handler=_validate)

    run = sub.add_parser("run", help="submit a spec file")
    run.add_argument("spec", type=Path)
    _submit_options(run)
    run.set_defaults(handler=_run)

    train = sub.add_parser("train", help="train a policy")
    train.add_argument("--task", default=DEFAULT_TASK)
    train.add_argument("--rl-library", default="rsl_rl")
    train.add_argument("--num-envs", type=int, default=4096)
    train.add_argument("--max-iterations", type=int, default=1500)
    train.add_argument("--seed", type=int)
    train.add_argument("--device", default="auto")
    train.add_argument("--num-nodes", type=int, default=1)
    train.add_argument("--resume-from", help="a job id, a checkpoint path or an s3:// URI")
    train.add_argument("--record-video", action="store_true")
    _common_job_options(train)
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a trained policy")
    evaluate.add_argument("--task", default=DEFAULT_TASK)
    evaluate.add_argument("--rl-library", default="rsl_rl")
    policy = evaluate.add_mutually_exclusive_group(required=True)
    policy.add_argument("--policy", help="a checkpoint path, file:// or s3:// URI, or a job id")
    policy.add_argument("--from-job", help="use the newest checkpoint of this training job")
    evaluate.add_argument("--num-envs", type=int, default=100)
    evaluate.add_argument("--num-episodes", type=int, default=50)
    evaluate.add_argument("--steps-per-episode", type=int, default=1000)
    evaluate.add_argument("--record-video", action="store_true")
    evaluate.add_argument("--video-width", type=int, default=640)
    evaluate.add_argument("--video-height", type=int, default=360)
    evaluate.add_argument("--video-episodes", type=int, default=2, help="episodes of env 0 to record")
    evaluate.add_argument("--seed", type=int)
    evaluate.add_argument("--device", default="auto")
    _common_job_options(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    for name, handler, text in (
        ("status", _status, "show a job's state and progress"),
        ("cancel", _cancel, "cancel a job"),
        ("outputs", _outputs, "show where a job's outputs are"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("job")
        command.add_argument("--backend", default="local", choices=backend_names())
        command.set_defaults(handler=handler)

    logs = sub.add_parser("logs", help="print a job's log")
    logs.add_argument("job")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--backend", default="local", choices=backend_names())
    logs.set_defaults(handler=_logs)

    listing = sub.add_parser("list", help="list jobs")
    listing.add_argument("--backend", default="local", choices=backend_names())
    listing.set_defaults(handler=_list)

    estimate = sub.add_parser("estimate", help="say what a spec file will take (and cost on aws) before submitting")
    estimate.add_argument("spec", type=Path, help="the inputParameters JSON")
    estimate.add_argument("--backend", default="local", choices=backend_names())
    estimate.set_defaults(handler=_estimate)

    sweep = sub.add_parser("sweep", help="run a sweep file with a live table of its trials; run it again to "
                           "continue it")
    sweep.add_argument("file", type=Path, help="the sweep's JSON: name, base, space, and optionally strategy, "
                       "objective, budget, pruner, packing, ...")
    sweep.add_argument("--root", type=Path, help="the sweep directory (default $WORKBENCH_HOME/sweeps/<name>)")
    sweep.set_defaults(handler=_sweep)

    warm = sub.add_parser("warm", help="start, stop or show the warm process that forks local jobs' children")
    warm.add_argument("action", choices=["start", "stop", "status"])
    warm.add_argument("--timeout", type=_timeout, default=300.0, help="seconds `start` waits for the imports")
    warm.set_defaults(handler=_warm)

    tasks = sub.add_parser("tasks", help="list the tasks Isaac Lab knows (and a custom package's): whether each "
                           "runs offline and which RL libraries it has configs for")
    tasks.add_argument("--custom-env", help="a custom environment package whose tasks to list too")
    tasks.add_argument("--offline", action="store_true", help="only the tasks the offline asset root serves")
    tasks.set_defaults(handler=_tasks)
    return parser


def _estimate(args: argparse.Namespace) -> int:
    """The expected wall time from this machine's measured rates (on aws with the instance's price and cost)."""
    from workbench.results.estimate import aws_cost, expected_time
    from workbench.spec.capacity import ON_DEMAND, SPOT
    from workbench.spec.devices import resolve_device

    spec = parse_spec(_read(args.spec))
    size = (f"{spec.training['numEnvs']} envs, {spec.training['maxIterations']} iterations" if spec.mode == "train"
            else f"{spec.training['numEnvs']} envs, {spec.training['numEpisodes']} episodes")
    if args.backend == "aws":
        time_estimate, cost = aws_cost(spec, SPOT if spec.compute["capacity"] == SPOT else ON_DEMAND)
        print(f"{spec.mode} {spec.task} with {spec.rl_library}, {size}, on {spec.num_nodes} x {cost.instance_type}")
        print(time_estimate.describe())
        print(f"cost: {cost.describe()}")
        return EXIT_OK
    device = resolve_device(spec.training["device"])
    print(f"{spec.mode} {spec.task} with {spec.rl_library}, {size}, on {device} (local)")
    print(expected_time(spec, device).describe())
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    """Exit 2 for a sweep that cannot start (bad file, invalid base spec, another experiment under its name),
    1 when it fails while running, else 0 once its budget is spent."""
    from workbench.errors import SweepError
    from workbench.sweep.cli import run_live, sweep_from_file

    try:
        sweep = sweep_from_file(args.file, args.root)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    run_live(sweep)
    return EXIT_OK


def _submit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="local", choices=backend_names())
    parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")


def _common_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--custom-env", help="custom environment package: a path, file:// or s3:// URI")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="agent/env Hydra override, e.g. agent.algorithm.learning_rate=0.0003")
    _submit_options(parser)


def _validate(args: argparse.Namespace) -> int:
    spec = parse_spec(_read(args.spec))
    for notice in spec.notices:
        print(f"notice: {notice}", file=sys.stderr)
    print(spec.to_json())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    return _submit(parse_spec(_read(args.spec)), args)


def _train(args: argparse.Namespace) -> int:
    training = {
        "mode": "train", "task": args.task, "rlLibrary": args.rl_library, "numEnvs": args.num_envs,
        "maxIterations": args.max_iterations, "seed": args.seed, "device": args.device,
        "resumeFrom": args.resume_from, "recordVideo": args.record_video, "overrides": _overrides(args.override),
    }
    return _submit(parse_spec(_document(training, args, {"numNodes": args.num_nodes})), args)


def _evaluate(args: argparse.Namespace) -> int:
    selector = args.from_job or args.policy
    training: dict[str, Any] = {
        "mode": "evaluate", "task": args.task, "rlLibrary": args.rl_library, "numEnvs": args.num_envs,
        "numEpisodes": args.num_episodes, "stepsPerEpisode": args.steps_per_episode,
        "recordVideo": args.record_video, "videoWidth": args.video_width, "videoHeight": args.video_height,
        "videoEpisodes": args.video_episodes,
        "seed": args.seed, "device": args.device, "overrides": _overrides(args.override),
    }
    if selector.startswith("s3://"):
        training["policyS3Uri"] = selector
    else:
        training["policy"] = selector if is_job_id(selector) or "://" in selector else str(Path(selector).resolve())
    return _submit(parse_spec(_document(training, args, {})), args)


def _document(training: dict[str, Any], args: argparse.Namespace, compute: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"trainingConfig": training, "computeConfig": compute}
    if args.custom_env:
        document["customEnvironmentS3Uri"] = args.custom_env if "://" in args.custom_env else str(
            Path(args.custom_env).resolve())
    return document


def _overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SpecError([FieldError(f"trainingConfig.overrides.{pair}", "must be KEY=VALUE")])
        overrides[key] = _scalar(value)
    return overrides


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) else text


def _submit(spec: JobSpec, args: argparse.Namespace) -> int:
    for notice in spec.notices:
        print(f"notice: {notice}", file=sys.stderr)
    job = get_backend(args.backend).submit(spec)
    print(f"submitted job {job.job_id} ({spec.mode} {spec.task} with {spec.rl_library}) on {args.backend}")
    if not args.wait:
        return EXIT_OK
    status = follow_job(job)
    outputs = job.outputs()
    if status.state is JobState.SUCCEEDED:
        print(f"job {job.job_id} SUCCEEDED; outputs in {outputs}")
        return EXIT_OK
    print(f"job {job.job_id} {status.state.value}: {status.reason}", file=sys.stderr)
    print(f"log: {outputs / 'logs' / 'job.log'}", file=sys.stderr)
    return EXIT_FAILED


def follow_job(job: Job, poll_interval: float = 1.0) -> JobStatus:
    """Show a progress bar (iteration x/N, steps/s, reward) until the job ends."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("SUBMITTED", total=None, info="")
        while True:
            status = job.status()
            progress = status.progress
            info = []
            if progress.steps_per_second is not None:
                info.append(f"{progress.steps_per_second:,.0f} steps/s")
            if progress.mean_reward is not None:
                info.append(f"reward {progress.mean_reward:.3f}")
            bar.update(task, description=status.state.value, total=progress.max_iterations,
                       completed=progress.iteration or 0, info=", ".join(info))
            if status.state.is_terminal:
                return status
            time.sleep(poll_interval)


def _status(args: argparse.Namespace) -> int:
    status = get_backend(args.backend).job(args.job).status()
    print(json.dumps(status.to_dict(), indent=2))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    status = get_backend(args.backend).job(args.job).cancel()
    print(f"job {args.job} {status.state.value}: {status.reason}")
    return EXIT_OK


def _outputs(args: argparse.Namespace) -> int:
    directory = get_backend(args.backend).job(args.job).outputs()
    print(directory)
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and "isaaclab" not in p.parts):
        print(f"  {path.relative_to(directory)}")
    return EXIT_OK


def _logs(args: argparse.Namespace) -> int:
    for line in get_backend(args.backend).job(args.job).logs(follow=args.follow):
        print(line, flush=True)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    for status in get_backend(args.backend).list_jobs():
        print(f"{status.job_id}  {status.state.value:<9}  {status.progress.describe()}  {status.reason}")
    return EXIT_OK


def _tasks(args: argparse.Namespace) -> int:
    from workbench.spec.assets import availability, runs_offline
    from workbench.spec.settings import assets_setting
    from workbench.spec.task_registry import list_tasks

    setting = assets_setting()
    try:
        registered = list_tasks()
    except WorkbenchError as exc:  # no Isaac Lab here (a laptop, a notebook kernel): the 3.0 catalogue
        from workbench.spec.catalogue import CORE_TASK_LIBRARIES
        from workbench.spec.document import RL_LIBRARIES

        print(f"notice: {exc}; listing Isaac Lab 3.0.0's core tasks from the workbench's catalogue", file=sys.stderr)
        registered = {task: tuple(lib for lib in libs if lib in RL_LIBRARIES)
                      for task, libs in sorted(CORE_TASK_LIBRARIES.items())}
    rows = [(task, availability(task), ", ".join(libraries)) for task, libraries in registered.items()
            if runs_offline(task) or not args.offline]
    if args.custom_env:
        from workbench.backends.local import list_package_tasks

        rows += [(custom.task_id, "custom", f"{', '.join(custom.libraries)}  (custom: {Path(args.custom_env).name})")
                 for custom in list_package_tasks(args.custom_env)]
    print(f"{'TASK':<70} {'ASSETS':<8} RL LIBRARIES")
    for task, assets, libraries in rows:
        print(f"{task:<70} {assets:<8} {libraries}")
    print(f"\nASSETS: offline = the home's offline asset root serves it (no network); nucleus = it needs "
          f"WORKBENCH_ASSETS=nucleus (NVIDIA's asset server, network) or a copy of that tree in WORKBENCH_ASSETS=DIR; "
          f"custom = the package brings or names its own. WORKBENCH_ASSETS is {setting!r} here.")
    return EXIT_OK


def _warm(args: argparse.Namespace) -> int:
    from workbench.backends.local import WarmProcess

    warm = WarmProcess()
    if args.action == "status":
        answer = warm.status()
        print(json.dumps(answer, indent=2) if answer else f"no warm process serves {warm.home}")
        return EXIT_OK
    if args.action == "stop":
        answer = warm.stop()
        print(f"the warm process stops once its {len(answer['jobs'])} running job(s) end" if answer
              else f"no warm process serves {warm.home}")
        return EXIT_OK
    answer = warm.start(args.timeout)
    if answer is None:
        print(f"error: the warm process did not become ready; see {warm.endpoint.log_path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"warm process ready (pid {answer['pid']}, imports took {answer['ready_s']} s); "
          f"it exits after {answer['idle_s']:g} s without a job")
    return EXIT_OK


def _timeout(text: str) -> float:
    """``--timeout``: a positive number of seconds (argparse makes the refusal its usage error, exit 2)."""
    try:
        return check_seconds("--timeout", text)
    except SettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError([FieldError("$", f"cannot read {path}: {exc.strerror}")]) from None


if __name__ == "__main__":
    sys.exit(main())
