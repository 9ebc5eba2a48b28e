"""Whatever its bytes or shape, a document is either a valid spec or a SpecError naming fields: never another
exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import SpecError
from workbench.spec import JobSpec, parse_spec

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                           max_size=4), max_leaves=12)
FIELDS = st.sampled_from(["mode", "task", "numEnvs", "maxIterations", "rlLibrary", "seed", "device", "overrides",
                          "policy", "policyS3Uri", "resumeFrom", "numEpisodes", "recordVideo", "videoWidth"])
SECTIONS = st.fixed_dictionaries({}, optional={
    "trainingConfig": st.dictionaries(FIELDS, VALUES, max_size=6) | VALUES,
    "computeConfig": st.dictionaries(st.sampled_from(["numNodes", "gpusPerNode", "instanceType"]), VALUES) | VALUES,
    "customEnvironmentS3Uri": VALUES,
})


def _parsed_or_refused(document: object) -> None:
    try:
        spec = parse_spec(document)
    except SpecError as exc:
        assert exc.errors and all(error.path and error.message for error in exc.errors)
    else:
        assert isinstance(spec, JobSpec) and parse_spec(spec.to_dict()) == spec


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(SECTIONS)
def test_any_document_shape_is_a_spec_or_field_errors(document: dict) -> None:
    _parsed_or_refused(document)
    _parsed_or_refused(json.dumps(document))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_are_a_spec_or_field_errors(raw: bytes | str) -> None:
    _parsed_or_refused(raw)


def test_deeply_nested_json_is_refused_with_a_reason() -> None:
    _parsed_or_refused("[" * 100_000 + "]" * 100_000)
