"""Register the ``isaaclab-training`` and ``isaaclab-evaluation`` pipelines and workflows with VAMS.

One custom resource per pipeline, answered by our registration Lambda (``infra/lambdas/registration``), which
invokes VAMS's global pipeline/workflow import function and fails the deployment with VAMS's reason when VAMS
refuses (VAMS's function itself never raises; see the handler's docstring).

VAMS's rules for these properties (``importGlobalPipelineWorkflow.py`` and ``models/pipelines.py`` in
awslabs/visual-asset-management-system): every value is a string; ``taskTimeout`` and ``taskHeartbeatTimeout``
are positive integers in seconds, ``taskTimeout`` at most 604800 (one week) and the heartbeat strictly less than
the timeout. VAMS's workflow sets them as the ``TimeoutSeconds`` / ``HeartbeatSeconds`` of the
``lambda:invoke.waitForTaskToken`` state that calls the entry Lambda: the caller's token must be closed within
``taskTimeout`` of the invocation and heartbeated at least every ``taskHeartbeatTimeout``. Our state machine
heartbeats the caller's token while the job is queued and at every runner heartbeat, so the heartbeat timeout
only has to cover the longest gap between two of those, and the timeout is VAMS's maximum: a job may wait for
GPU capacity for long, and VAMS never gives up on a job our state machine is still running.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from workbench_infra.compute import RETENTION
from workbench_infra.config import PipelineConfig
from workbench_infra.lambda_modules import load_lambda_module
from workbench_infra.orchestration import LAMBDA_RUNTIME, lambda_code

VAMS_MAX_TASK_TIMEOUT_SECONDS = 604800
"""VAMS's largest ``taskTimeout`` (``CreatePipelineRequestModel``: one week)."""
TASK_TIMEOUT_SECONDS = VAMS_MAX_TASK_TIMEOUT_SECONDS
"""``taskTimeout`` of both pipelines: queue and run, as long as VAMS allows."""
TASK_HEARTBEAT_TIMEOUT_SECONDS = 3600
"""``taskHeartbeatTimeout`` of both pipelines: the caller's token is heartbeated at least every 300 s."""
REGISTRATION_TIMEOUT = Duration.minutes(15)
"""The registration Lambda waits for VAMS's import function, whose own timeout is 15 minutes."""

PIPELINES = {
    "isaaclab-training": {
        "description": "Isaac Lab RL training: train policies with Isaac Lab 3.0 on AWS Batch GPU instances.",
        "workflowDescription": "Train an RL policy with Isaac Lab on GPU instances.",
        "assetType": ".all",
        "outputType": ".pt",
        "inputParameters": {
            "trainingConfig": {
                "mode": "train",
                "task": "Isaac-Cartpole-Direct-v0",
                "numEnvs": 4096,
                "maxIterations": 1500,
                "rlLibrary": "rsl_rl",
            },
            "computeConfig": {"numNodes": 1},
        },
    },
    "isaaclab-evaluation": {
        "description": "Isaac Lab RL evaluation: evaluate trained policies with Isaac Lab 3.0 on AWS Batch.",
        "workflowDescription": "Evaluate a trained RL policy with Isaac Lab on a GPU instance.",
        "assetType": ".pt",
        "outputType": ".json",
        "inputParameters": {
            "trainingConfig": {
                "mode": "evaluate",
                "task": "Isaac-Cartpole-Direct-v0",
                "numEnvs": 100,
                "numEpisodes": 50,
                "recordVideo": False,
            },
            "computeConfig": {"numNodes": 1},
        },
    },
}


def registration_properties(pipeline_id: str, pipeline: dict, lambda_name: str) -> dict[str, str]:
    """The properties VAMS's import function reads for one pipeline and its workflow (all strings)."""
    return {
        "pipelineId": pipeline_id,
        "pipelineDescription": pipeline["description"],
        "pipelineType": "standardFile",
        "pipelineExecutionType": "Lambda",
        "assetType": pipeline["assetType"],
        "outputType": pipeline["outputType"],
        "waitForCallback": "Enabled",
        "lambdaName": lambda_name,
        "taskTimeout": str(TASK_TIMEOUT_SECONDS),
        "taskHeartbeatTimeout": str(TASK_HEARTBEAT_TIMEOUT_SECONDS),
        "inputParameters": json.dumps(pipeline["inputParameters"]),
        "workflowId": pipeline_id,
        "workflowDescription": pipeline["workflowDescription"],
        "autoTriggerOnFileExtensionsUpload": "",
    }


class VamsRegistration(Construct):
    """Custom resources registering each pipeline through VAMS's global pipeline/workflow import function.

    ``provider`` (CDK's provider framework) invokes ``function`` (our registration Lambda), which invokes VAMS's
    import function, allowed to invoke that one function only.
    """

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, entry_function: lambda_.IFunction) -> None:
        super().__init__(scope, id)
        handler = load_lambda_module("registration")
        self.import_function_name = config.vams_import_function_name
        log_group = logs.LogGroup(
            self, "FunctionLogs", retention=RETENTION[config.log_retention_days], removal_policy=RemovalPolicy.DESTROY
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=LAMBDA_RUNTIME,
            handler="handler.handler",
            code=lambda_code("registration"),
            timeout=REGISTRATION_TIMEOUT,
            memory_size=128,
            environment={handler.IMPORT_FUNCTION_VARIABLE: config.vams_import_function_name},
            log_group=log_group,
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="InvokeVamsImportFunction",
                actions=["lambda:InvokeFunction"],
                resources=[
                    f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:function:{config.vams_import_function_name}"
                ],
            )
        )
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.function)
        self.resources = [
            CustomResource(
                self,
                pipeline_id,
                service_token=self.provider.service_token,
                properties=registration_properties(pipeline_id, pipeline, entry_function.function_name),
            )
            for pipeline_id, pipeline in PIPELINES.items()
        ]
