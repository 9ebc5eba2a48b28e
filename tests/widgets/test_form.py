"""The submit form without a browser: validation as the user types, library choices, overrides, uploads."""

from __future__ import annotations

import datetime

import pytest

from workbench.errors import SpecError
from workbench.spec.paths import workbench_home
from workbench.widgets import SubmitForm, parse_overrides, save_upload, task_catalogue


def test_form_shows_each_problem_next_to_its_field_and_blocks_submit() -> None:
    form = SubmitForm(num_envs=8, max_iterations=2)
    assert form.spec is not None and not form.submit_button.disabled
    form.num_envs.value = 0
    form.seed.value = "abc"
    assert "must be an integer from 1 to 65536" in form.errors["numEnvs"].value
    assert "must be null or an integer" in form.errors["seed"].value
    assert form.errors["maxIterations"].value == ""
    assert form.submit_button.disabled and form.submit() is None
    form.num_envs.value = 8
    form.seed.value = "7"
    assert form.spec.training["numEnvs"] == 8 and form.spec.training["seed"] == 7
    assert not form.submit_button.disabled


def test_task_picker_offers_only_the_libraries_a_task_supports() -> None:
    form = SubmitForm()
    assert form.rl_library.value == "rsl_rl"
    form.task.value = "Isaac-Pendulum-MARL-Direct"
    assert list(form.rl_library.options) == ["rl_games", "skrl"]
    form.task.value = "Isaac-Not-A-Task"
    assert "unknown task" in form.errors["task"].value
    assert "Isaac-Cartpole-Direct" in task_catalogue()


def test_a_task_without_offline_assets_is_shown_at_the_task_on_the_local_backend() -> None:
    form = SubmitForm(task="Isaac-Ant-Direct")
    assert form.spec is not None and not form.submit_button.disabled
    form.task.value = "Isaac-Humanoid"
    assert "humanoid_instanceable.usd" in form.errors["task"].value
    assert "WORKBENCH_ASSETS=nucleus" in form.errors["task"].value
    assert form.spec is None and form.submit_button.disabled


def test_overrides_are_parsed_and_validated_by_the_spec() -> None:
    assert parse_overrides("agent.algorithm.learning_rate=3e-4\n# note\nenv.flag=true") == {
        "agent.algorithm.learning_rate": 3e-4, "env.flag": True}
    with pytest.raises(SpecError) as raised:
        parse_overrides("agent.x=1\nno equals sign")
    assert [(e.path, e.message[:7]) for e in raised.value.errors] == [("trainingConfig.overrides", "line 2:")]
    form = SubmitForm()
    form.overrides.value = "learning_rate=3e-4"
    assert "key must look like" in form.errors["overrides"].value
    form.overrides.value = "no equals sign"
    assert "write key=value" in form.errors["overrides"].value and form.spec is None
    form.overrides.value = "agent.algorithm.learning_rate=3e-4"
    assert form.spec.training["overrides"] == {"agent.algorithm.learning_rate": 3e-4}


def test_an_uploaded_package_is_saved_under_the_home_and_becomes_the_custom_environment() -> None:
    form = SubmitForm()
    form.upload.value = ({"name": "../my_env-0.1.zip", "type": "application/zip", "size": 3,
                          "content": memoryview(b"PK\x05"),
                          "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    path = form.custom_environment
    assert path is not None and path.name == "my_env-0.1.zip" and workbench_home() / "uploads" in path.parents
    assert form.spec.custom_environment_uri == str(path)
    form.task.value = "My-Custom-Task"
    assert form.spec is not None, "a custom package may register tasks the catalogue does not know"
    with pytest.raises(Exception, match="cannot save"):
        save_upload("..", b"")


def test_evaluation_form_needs_a_policy() -> None:
    """The rule is the spec's (``parse_spec``), shown once, next to the policy field."""
    form = SubmitForm(mode="evaluate")
    form.policy.value = ""
    form.validate()
    assert form.errors["policy"].value.count("an evaluation needs a policy") == 1
    assert form.spec is None and form.submit_button.disabled and "policy" not in form.message.value
    form.policy.value = "/tmp/model_2.pt"
    assert form.spec is not None and form.spec.training["policy"] == "/tmp/model_2.pt"
    assert form.errors["policy"].value == ""
