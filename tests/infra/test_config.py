"""infra/config.json and its validation; ``python infra/app.py`` refuses an enabled pipeline without the EULA."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from infra_configs import INFRA
from workbench_infra.config import NVIDIA_LICENSE_URL, ConfigError, EulaNotAcceptedError, load_config, parse_config


def section(**values) -> dict:
    return {"app": {"pipelines": {"useIsaacLabTraining": values}}}


def test_committed_config_has_the_documented_defaults():
    config = load_config(INFRA / "config.json")
    assert (config.enabled, config.accept_nvidia_eula, config.auto_register_with_vams, config.keep_warm_instance) == (
        False,
        False,
        True,
        False,
    )
    assert parse_config({}) == parse_config(section())


def test_enabled_without_the_eula_fails_with_a_link_to_the_license():
    with pytest.raises(EulaNotAcceptedError) as caught:
        parse_config(section(enabled=True))
    assert NVIDIA_LICENSE_URL in str(caught.value)
    assert "acceptNvidiaEula" in str(caught.value) and "NVIDIA Software License Agreement" in str(caught.value)


def test_app_exits_with_the_eula_message(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(section(enabled=True)))
    done = subprocess.run(
        [sys.executable, str(INFRA / "app.py")],
        env={**os.environ, "WORKBENCH_INFRA_CONFIG": str(path), "CDK_OUTDIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert NVIDIA_LICENSE_URL in done.stderr
    assert not (tmp_path / "out").exists()


def test_config_file_comes_from_the_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(section(keepWarmInstance=True)))
    monkeypatch.setenv("WORKBENCH_INFRA_CONFIG", str(path))
    assert load_config().keep_warm_instance is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"enabled": True, "acceptNvidiaEula": True}, "vamsImportFunctionName"),
        ({"imageFlavour": "docker"}, "imageFlavour"),
        ({"keepWarm": True}, "unknown key"),
        ({"enabled": "yes"}, "wrong type"),
        ({"maxvCpus": 4}, "maxvCpus"),
        ({"logRetentionDays": 31}, "logRetentionDays"),
        ({"entryFunctionName": "isaaclab"}, "vams"),
        ({"existingVpc": {"vpcId": "vpc-1"}}, "availabilityZones"),
    ],
)
def test_invalid_config_names_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(section(**values))


def test_standalone_use_needs_no_vams():
    config = parse_config(section(enabled=True, acceptNvidiaEula=True, autoRegisterWithVAMS=False))
    assert config.enabled and not config.auto_register_with_vams


def test_instance_types_default_to_every_size_of_g6_g6e_g5_and_are_validated():
    from workbench.spec.instance_types import INSTANCE_TYPES

    default = parse_config(section()).instance_types
    assert default == tuple(INSTANCE_TYPES)
    assert {name.split(".")[0] for name in default} == {"g6", "g6e", "g5"}
    assert parse_config(section(instanceTypes=["g6e.2xlarge", "g6e.12xlarge"])).instance_types == ("g6e.2xlarge", "g6e.12xlarge")


@pytest.mark.parametrize("value", [["g6.xlarge", "p4d.24xlarge"], ["m5.large"]])
def test_an_unknown_instance_type_names_the_key_and_the_allowed_types(value):
    with pytest.raises(ConfigError) as caught:
        parse_config(section(instanceTypes=value))
    message = str(caught.value)
    assert message.startswith("app.pipelines.useIsaacLabTraining.instanceTypes: unknown instance type")
    assert value[-1] in message and "allowed: g6.xlarge, g6.2xlarge" in message and "g5.48xlarge" in message


@pytest.mark.parametrize("value", [[], "g6.xlarge", [1]])
def test_instance_types_must_be_a_non_empty_list_of_names(value):
    with pytest.raises(ConfigError, match=r"instanceTypes must be a non-empty list"):
        parse_config(section(instanceTypes=value))
