"""Register the ``isaaclab-training`` and ``isaaclab-evaluation`` pipelines and workflows with VAMS."""

from __future__ import annotations

import json

from aws_cdk import Aws, CustomResource
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from workbench_infra.config import PipelineConfig

PIPELINES = {
    "isaaclab-training": {
        "description": "Isaac Lab RL training: train policies with Isaac Lab 3.0 on AWS Batch GPU instances.",
        "workflowDescription": "Train an RL policy with Isaac Lab on GPU instances.",
        "assetType": ".all",
        "outputType": ".pt",
        "taskTimeout": 28800,
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
        "taskTimeout": 7200,
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


class VamsRegistration(Construct):
    """Custom resources calling VAMS's global pipeline/workflow import function for each pipeline.

    The caller's token receives no heartbeats (only the job's end), so its heartbeat timeout equals its timeout;
    the internal state machine enforces the 30-minute heartbeat on the Batch job itself.
    """

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, entry_function: lambda_.IFunction) -> None:
        super().__init__(scope, id)
        self.import_function_name = config.vams_import_function_name
        import_function = lambda_.Function.from_function_arn(
            self,
            "VamsImportFunction",
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:function:{config.vams_import_function_name}",
        )
        self.provider = cr.Provider(self, "Provider", on_event_handler=import_function)
        self.resources = [
            CustomResource(
                self,
                pipeline_id,
                service_token=self.provider.service_token,
                properties={
                    "pipelineId": pipeline_id,
                    "pipelineDescription": pipeline["description"],
                    "pipelineType": "standardFile",
                    "pipelineExecutionType": "Lambda",
                    "assetType": pipeline["assetType"],
                    "outputType": pipeline["outputType"],
                    "waitForCallback": "Enabled",
                    "lambdaName": entry_function.function_name,
                    "taskTimeout": str(pipeline["taskTimeout"]),
                    "taskHeartbeatTimeout": str(pipeline["taskTimeout"]),
                    "inputParameters": json.dumps(pipeline["inputParameters"]),
                    "workflowId": pipeline_id,
                    "workflowDescription": pipeline["workflowDescription"],
                },
            )
            for pipeline_id, pipeline in PIPELINES.items()
        ]
