"""The job spec: the pipeline's documents, defaults, aliases and strict validation with field paths."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.spec.document import (
    COMPUTE_DEFAULTS,
    EVALUATE_DEFAULTS,
    TRAIN_DEFAULTS,
    SpecError,
    is_job_id,
    parse_spec,
)

TRAIN_DOC = ('{"trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 4096, '
             '"maxIterations": 1500, "rlLibrary": "rsl_rl", "seed": 42}, "computeConfig": {"numNodes": 1}}')
EVALUATE_DOC = ('{"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 100, '
                '"numEpisodes": 50, "stepsPerEpisode": 1000, "recordVideo": false, "rlLibrary": "rsl_rl", '
                '"policyS3Uri": "s3://bucket/outputs/job/checkpoints/model_1499.pt"}}')


def test_pipeline_training_document_parses_as_is() -> None:
    spec = parse_spec(TRAIN_DOC)
    assert spec.mode == "train"
    assert spec.task == "Isaac-Cartpole-Direct"
    assert spec.training["numEnvs"] == 4096 and spec.training["maxIterations"] == 1500
    assert spec.training["seed"] == 42 and spec.rl_library == "rsl_rl" and spec.num_nodes == 1
    assert any("Isaac-Cartpole-Direct-v0" in n and "'Isaac-Cartpole-Direct'" in n for n in spec.notices)


def test_pipeline_evaluation_document_parses_as_is() -> None:
    spec = parse_spec(EVALUATE_DOC)
    assert spec.mode == "evaluate" and spec.task == "Isaac-Cartpole-Direct"
    assert (spec.training["numEnvs"], spec.training["numEpisodes"], spec.training["stepsPerEpisode"]) == (100, 50, 1000)
    assert spec.training["recordVideo"] is False and spec.training["policy"] is None


def test_training_defaults_are_the_pipelines() -> None:
    spec = parse_spec({})
    assert spec.training["mode"] == "train"
    assert spec.task == "Isaac-Cartpole"  # the pipeline default "Isaac-Cartpole-v0", aliased to the 3.0 id
    for key in ("numEnvs", "maxIterations", "rlLibrary", "seed"):
        assert spec.training[key] == TRAIN_DEFAULTS[key]
    assert (spec.training["numEnvs"], spec.training["maxIterations"], spec.training["rlLibrary"]) == (4096, 1500, "rsl_rl")
    assert spec.training["seed"] is None
    assert spec.compute == COMPUTE_DEFAULTS and spec.num_nodes == 1
    assert spec.custom_environment_uri is None


def test_evaluation_defaults_are_the_pipelines() -> None:
    spec = parse_spec({"trainingConfig": {"mode": "evaluate", "policyS3Uri": "s3://bucket/model_9.pt"}})
    expected = {"numEnvs": 100, "numEpisodes": 50, "stepsPerEpisode": 1000, "recordVideo": False,
                "rlLibrary": "rsl_rl", "policy": None}
    assert {k: spec.training[k] for k in expected} == expected
    assert set(spec.training) == set(EVALUATE_DEFAULTS)


def test_round_trip_through_json_gives_the_same_spec() -> None:
    for doc in (TRAIN_DOC, EVALUATE_DOC):
        spec = parse_spec(doc)
        again = parse_spec(spec.to_json())
        assert again == spec
        assert json.loads(again.to_json()) == json.loads(spec.to_json())


def test_unknown_task_is_rejected_with_close_matches() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"trainingConfig": {"task": "Isaac-Cartpol-Direct"}})
    [error] = err.value.errors
    assert error.path == "trainingConfig.task" and "Isaac-Cartpole-Direct" in error.message


def test_unknown_task_is_accepted_with_a_custom_package() -> None:
    spec = parse_spec({"trainingConfig": {"task": "My-Task-v0"}, "customEnvironmentS3Uri": "s3://bucket/env.whl"})
    assert spec.task == "My-Task-v0" and spec.custom_environment_uri == "s3://bucket/env.whl"


def test_library_without_agent_config_for_the_task_is_rejected() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"trainingConfig": {"task": "Isaac-Lift-Franka", "rlLibrary": "skrl"}})
    assert [e.path for e in err.value.errors] == ["trainingConfig.rlLibrary"]
    assert "rsl_rl" in err.value.errors[0].message


BAD_INPUTS = [
    ({"trainingConfig": {"numEnvs": "100"}}, "trainingConfig.numEnvs", "integer from 1 to 65536"),
    ({"trainingConfig": {"numEnvs": True}}, "trainingConfig.numEnvs", "integer"),
    ({"trainingConfig": {"numEnvs": 0}}, "trainingConfig.numEnvs", "1 to 65536"),
    ({"trainingConfig": {"numEnvs": 65537}}, "trainingConfig.numEnvs", "1 to 65536"),
    ({"trainingConfig": {"numEnvs": 16.0}}, "trainingConfig.numEnvs", "integer"),
    ({"trainingConfig": {"maxIterations": 100001}}, "trainingConfig.maxIterations", "1 to 100000"),
    ({"trainingConfig": {"mode": "evaluate", "numEpisodes": 0}}, "trainingConfig.numEpisodes", "1 to 10000"),
    ({"trainingConfig": {"mode": "evaluate", "stepsPerEpisode": 100001}}, "trainingConfig.stepsPerEpisode", "1 to 100000"),
    ({"computeConfig": {"numNodes": 65}}, "computeConfig.numNodes", "1 to 64"),
    ({"computeConfig": {"numNodes": False}}, "computeConfig.numNodes", "integer"),
    ({"trainingConfig": {"mode": "play"}}, "trainingConfig.mode", "'train', 'evaluate'"),
    ({"trainingConfig": {"rlLibrary": "sb3"}}, "trainingConfig.rlLibrary", "'rsl_rl', 'rl_games', 'skrl'"),
    ({"trainingConfig": {"seed": "42"}}, "trainingConfig.seed", "null or an integer"),
    ({"trainingConfig": {"numEnv": 16}}, "trainingConfig.numEnv", "did you mean 'numEnvs'"),
    ({"trainingConfig": {"numEpisodes": 5}}, "trainingConfig.numEpisodes", "unknown field"),
    ({"trainingConfig": {"task": 7}}, "trainingConfig.task", "non-empty string"),
    ({"trainingConfig": {"mode": "evaluate", "recordVideo": "yes"}}, "trainingConfig.recordVideo", "true or false"),
    ({"trainingConfig": {"mode": "evaluate", "policyS3Uri": "http://x/y.pt"}}, "trainingConfig.policyS3Uri", "s3://"),
    ({"trainingConfig": {"mode": "evaluate", "policyS3Uri": "/tmp/model.pt"}}, "trainingConfig.policyS3Uri", "s3://"),
    ({"customEnvironmentS3Uri": "ftp://host/env.whl"}, "customEnvironmentS3Uri", "scheme"),
    ({"customEnvironmentS3Uri": "s3://bucket/env.rar"}, "customEnvironmentS3Uri", ".tar.gz/.tgz/.zip/.whl"),
    ({"customEnvironmentS3Uri": "s3://B/env.whl"}, "customEnvironmentS3Uri", "s3://<bucket>/<key>"),
    ({"trainingConfig": {"resumeFrom": "gs://bucket/model.pt"}}, "trainingConfig.resumeFrom", "scheme"),
    ({"trainingConfig": {"overrides": {"learning_rate": 0.1}}}, "trainingConfig.overrides.learning_rate", "agent."),
    ({"trainingConfig": {"overrides": {"agent.seed": [1]}}}, "trainingConfig.overrides.agent.seed", "string, number"),
    ({"trainingConfig": {"overrides": {"agent.x": "a b"}}}, "trainingConfig.overrides.agent.x", "without spaces"),
    ({"trainingConfig": []}, "trainingConfig", "must be an object"),
    ({"extra": 1}, "extra", "unknown field"),
    ({"trainingConfig": {"mode": "evaluate"}, "computeConfig": {"numNodes": 2}}, "computeConfig.numNodes", "must be 1"),
    ({"trainingConfig": {"mode": "evaluate"}}, "trainingConfig.policy", "an evaluation needs a policy"),
    ({"trainingConfig": None}, "trainingConfig", "must be an object, got null"),
    ({"computeConfig": None}, "computeConfig", "must be an object, got null"),
    ({"trainingConfig": {"overrides": {"env.__class__": 1}}}, "trainingConfig.overrides.env.__class__", "key must look like"),
    ({"trainingConfig": {"overrides": {"agent.x.__init__": 1}}}, "trainingConfig.overrides.agent.x.__init__", "key must look like"),
    ({"trainingConfig": {"task": "Isaac-Cartpole-Direct\n"}}, "trainingConfig.task", "control characters"),
    ({"trainingConfig": {"task": "Isaac-\x00Cartpole"}}, "trainingConfig.task", "control characters"),
    ({"trainingConfig": {"mode": "evaluate", "policy": "job\r\nid"}}, "trainingConfig.policy", "job id"),
    ({"trainingConfig": {"resumeFrom": "/tmp/a\tb.pt"}}, "trainingConfig.resumeFrom", "control characters"),
    ({"computeConfig": {"instanceType": "g6"}}, "computeConfig.instanceType", "EC2 instance type"),
]


@pytest.mark.parametrize(("document", "path", "message"), BAD_INPUTS, ids=[p for _, p, _ in BAD_INPUTS])
def test_bad_input_is_answered_with_an_error_naming_its_field(document: dict, path: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(document)
    matching = [e for e in err.value.errors if e.path == path]
    assert matching, f"no error for {path}: {err.value.errors}"
    assert message in matching[0].message
    assert path in str(err.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"trainingConfig": {"numEnvs": 0, "maxIterations": 0, "rlLibrary": "x"}, "computeConfig": {"numNodes": 0}})
    assert {e.path for e in err.value.errors} == {
        "trainingConfig.numEnvs", "trainingConfig.maxIterations", "trainingConfig.rlLibrary", "computeConfig.numNodes"}


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec("{")
    with pytest.raises(SpecError, match="must be a JSON object"):
        parse_spec("[1]")


def test_job_id_selector() -> None:
    assert is_job_id("e511e839-70da-4b70-a59a-0e9235ecc431")
    assert not is_job_id("/runs/e511e839-70da-4b70-a59a-0e9235ecc431/model_3.pt")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=16), inner, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from(sorted(set(TRAIN_DEFAULTS) | set(EVALUATE_DEFAULTS) | set(COMPUTE_DEFAULTS)))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_documents_are_accepted_or_rejected_with_a_spec_error(document: object) -> None:
    try:
        parse_spec(document if isinstance(document, dict) else {"trainingConfig": document})
    except SpecError as exc:
        assert exc.errors and all(e.path for e in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([TRAIN_DOC, EVALUATE_DOC]), st.sampled_from(["trainingConfig", "computeConfig"]), field_names,
       json_values)
def test_mutated_valid_specs_are_accepted_or_rejected_with_a_spec_error(doc: str, section: str, key: str,
                                                                       value: object) -> None:
    document = json.loads(doc)
    document.setdefault(section, {})[key] = value
    try:
        spec = parse_spec(document)
    except SpecError as exc:
        assert exc.errors
    else:
        assert parse_spec(spec.to_json()) == spec


def test_a_spec_error_is_a_workbench_error() -> None:
    """Callers catch one base class for every domain error, a bad spec included."""
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError):
        parse_spec({"trainingConfig": {"numEnvs": 0}})


def test_every_domain_error_lives_in_errors() -> None:
    import workbench.errors as errors

    for name in ("SpecError", "ResumeError", "EvaluationError", "SweepError", "PolicyError", "PackageError"):
        assert issubclass(getattr(errors, name), errors.WorkbenchError), name


def test_a_field_given_twice_is_an_error_not_the_last_value() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec('{"trainingConfig": {"numEnvs": 16, "numEnvs": 4096}}')
    assert [(e.path, e.message) for e in err.value.errors] == [("numEnvs", "given twice; give each field once")]


def test_job_ids_are_checked_against_their_form() -> None:
    from workbench.spec.document import AWS_JOB_ID_PATTERN, check_job_id

    uuid = "3f2b5c1e-8a4d-4c2b-9e1f-0a1b2c3d4e5f"
    assert check_job_id(uuid) == uuid and check_job_id("vams-exec_1", AWS_JOB_ID_PATTERN) == "vams-exec_1"
    for bad in ("../../etc", uuid + "\n", uuid.upper(), "", None, "/tmp/run"):
        with pytest.raises(SpecError, match="jobId: must be a UUID"):
            check_job_id(bad)
    with pytest.raises(SpecError, match="jobId: must be 1-80 letters"):
        check_job_id("a/b", AWS_JOB_ID_PATTERN)
