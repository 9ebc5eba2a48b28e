"""The stack: nothing when the pipeline is disabled, else network, storage, compute, orchestration, outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from workbench.spec.capacity import ON_DEMAND, SPOT
from workbench_infra.compute import Compute
from workbench_infra.config import PipelineConfig
from workbench_infra.network import Network
from workbench_infra.orchestration import Orchestration
from workbench_infra.registration import VamsRegistration
from workbench_infra.storage import Storage

OUTPUTS = (
    "StateMachineArn",
    "BucketName",
    "JobLogGroupName",
    "JobQueueArn",
    "MultiNodeJobQueueArn",
    "SingleNodeJobDefinitionArn",
    "MultiNodeJobDefinitionArn",
    "EntryFunctionName",
    "StateMachineLogGroupName",
    "FileSystemId",
    "Capacity",
)
KIND_QUEUE_OUTPUTS = {ON_DEMAND: "OnDemandJobQueueArn", SPOT: "SpotJobQueueArn"}
"""The queue of each capacity kind, output where the stack has that kind (``workbench.spec.capacity``)."""


class WorkbenchStack(Stack):
    """The Isaac Lab Workbench pipeline; ``pipeline`` is None when ``enabled`` is false."""

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, **kwargs) -> None:
        super().__init__(scope, id, description="Isaac Lab Workbench: Isaac Lab 3.0 training/evaluation on AWS Batch", **kwargs)
        self.pipeline: IsaacLabPipeline | None = IsaacLabPipeline(self, "IsaacLab", config) if config.enabled else None


class IsaacLabPipeline(Construct):
    """Every pipeline resource, and the stack outputs the ``aws`` backend reads."""

    def __init__(self, scope: Construct, id: str, config: PipelineConfig) -> None:
        super().__init__(scope, id)
        self.network = Network(self, "Network", config)
        self.compute = Compute(self, "Compute", config, self.network)
        self.storage = Storage(self, "Storage", config, self.network, self.compute.security_group)
        self.compute.add_job_definitions(self.storage)
        self.orchestration = Orchestration(self, "Orchestration", config, self.compute, self.storage)
        self.registration = (
            VamsRegistration(self, "VamsRegistration", config, self.orchestration.entry_function)
            if config.auto_register_with_vams
            else None
        )
        values = {
            "StateMachineArn": self.orchestration.state_machine.state_machine_arn,
            "BucketName": self.storage.bucket.bucket_name,
            "JobLogGroupName": self.compute.log_group.log_group_name,
            "JobQueueArn": self.compute.job_queue.job_queue_arn,
            "MultiNodeJobQueueArn": self.compute.multi_node_job_queue.job_queue_arn,
            "SingleNodeJobDefinitionArn": self.compute.single_node_job_definition.ref,
            "MultiNodeJobDefinitionArn": self.compute.multi_node_job_definition.ref,
            "EntryFunctionName": self.orchestration.entry_function.function_name,
            "StateMachineLogGroupName": self.orchestration.state_machine_logs.log_group_name,
            "FileSystemId": self.storage.file_system.file_system_id,
            "Capacity": config.capacity,
        }
        values |= {KIND_QUEUE_OUTPUTS[kind]: queue.job_queue_arn for kind, queue in self.compute.kind_queues.items()}
        stack = Stack.of(self)
        for name in (*OUTPUTS, *(KIND_QUEUE_OUTPUTS[kind] for kind in self.compute.kind_queues)):
            CfnOutput(stack, name, value=values[name])
