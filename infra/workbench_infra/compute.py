"""Compute: the container image, the Batch GPU compute environments and queues, the job role and job definitions.

The compute environments offer the configured ``instanceTypes``: single-node jobs run in ones spread over every
compute subnet (any Availability Zone with capacity); multi-node jobs in one with a cluster placement group in
a single subnet, so that all nodes of a job land in one Availability Zone, close together (NCCL traffic), always
on-demand (AWS Batch runs no multi-node parallel job on Spot). The config's ``capacity`` decides the single-node
ones: an on-demand environment (BEST_FIT_PROGRESSIVE), a spot one (SPOT_PRICE_CAPACITY_OPTIMIZED, AWS's advice for
interruptible work: the lowest-priced pools least likely to be reclaimed), or both, the main queue ordering spot
first. With both, two more queues hold one kind each, for jobs that ask for it (``computeConfig.capacity``); the
prepare Lambda picks the queue by node count and capacity (``workbench.spec.capacity``).

The single-node job definition retries host terminations (a spot reclaim, a lost instance: a status reason
``Host EC2*``) up to the config's ``maxAttempts`` and nothing else; the runner of a retried attempt resumes from
the job's newest checkpoint on EFS (``workbench.runner.recovery``). Multi-node jobs are not retried.

The job definitions' default resources are the size of a 1-GPU job on the smallest offered instance
(``workbench.spec.instance_types``); every submission overrides them with the job's own size.

Both job definitions mount EFS at ``/mnt/efs`` and carry the runner's static environment (``JOB_ENVIRONMENT``);
the per-job values (spec, job id, output URI, checkpoint dir, the name of the job's task token parameters) come
as overrides at submission. The tokens themselves live in SSM SecureString parameters under
``token_parameter_prefix(config)`` (``/<stack name>/jobs/<job id>/...``): the job role may read them, nothing
under any other name.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from workbench.spec.capacity import ON_DEMAND, SPOT, stack_kinds
from workbench.spec.instance_types import job_size
from workbench_infra.config import PipelineConfig
from workbench_infra.network import Network
from workbench_infra.storage import EFS_MOUNT_PATH, INPUT_PREFIX, OUTPUT_PREFIX, WORKBENCH_HOME, Storage

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"ngc": "container/Dockerfile", "kitless": "container/Dockerfile.kitless"}
IMAGE_CONTEXT_EXCLUDE = ["*", "!container/**", "!workbench/**", "!pyproject.toml", "**/__pycache__"]
WARM_VCPUS = 8
HEARTBEAT_INTERVAL_SECONDS = 300
HEARTBEAT_TIMEOUT_SECONDS = 1800
SHARED_MEMORY_MIB = 8192
DEFAULT_NUM_NODES = 2
HOST_TERMINATED = "Host EC2*"
"""The status reason Batch gives a job whose instance went away (spot reclaim, instance retirement or failure)."""
MAX_JOB_SECONDS = 28800 + 900
RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
JOB_ENVIRONMENT = {
    "WORKBENCH_CHANNEL": "sfn:",
    "WORKBENCH_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL_SECONDS),
    "WORKBENCH_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
    "WORKBENCH_HOME": WORKBENCH_HOME,
    "WORKBENCH_ASSETS": "nucleus",
    "NCCL_DEBUG": "WARN",
}


class Compute(Construct):
    """Image, log group, compute environment, queue, job role and the single- and multi-node job definitions."""

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, network: Network) -> None:
        super().__init__(scope, id)
        self.config = config
        self.token_parameter_prefix = token_parameter_prefix(config)
        self.security_group = ec2.SecurityGroup(
            self,
            "ComputeSecurityGroup",
            vpc=network.vpc,
            description="Workbench Batch GPU instances: all TCP between nodes for NCCL/torchrun",
            allow_all_outbound=True,
        )
        self.security_group.add_ingress_rule(self.security_group, ec2.Port.all_tcp(), "NCCL and torchrun between nodes")
        self.log_group = logs.LogGroup(
            self,
            "JobLogs",
            log_group_name=f"/aws/batch/{config.stack_name}",
            retention=RETENTION[config.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),
            file=DOCKERFILES[config.image_flavour],
            exclude=IMAGE_CONTEXT_EXCLUDE,
            build_args={"ACCEPT_NVIDIA_EULA": "true" if config.accept_nvidia_eula else "false"},
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            require_imdsv2=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(100, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True),
                )
            ],
        )
        def environment(id: str, spot: bool = False, **placement) -> batch.ManagedEc2EcsComputeEnvironment:
            return batch.ManagedEc2EcsComputeEnvironment(
                self,
                id,
                vpc=network.vpc,
                security_groups=[self.security_group],
                instance_types=[ec2.InstanceType(name) for name in config.instance_types],
                use_optimal_instance_classes=False,
                spot=spot,
                allocation_strategy=batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED if spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
                maxv_cpus=config.max_vcpus,
                launch_template=launch_template,
                images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
                **placement,
            )

        kinds = stack_kinds(config.capacity)
        ids = {ON_DEMAND: "GpuComputeEnvironment", SPOT: "SpotGpuComputeEnvironment"}
        self.compute_environments = {
            kind: environment(
                ids[kind],
                spot=kind == SPOT,
                vpc_subnets=network.compute_subnets,
                minv_cpus=WARM_VCPUS if config.keep_warm_instance and kind == kinds[0] else 0,
            )
            for kind in kinds
        }
        """The single-node compute environments by capacity kind (``on-demand``, ``spot``), where the stack has them."""
        self.job_queue = _queue(self, "JobQueue", *(self.compute_environments[kind] for kind in kinds))
        self.kind_queues = {kinds[0]: self.job_queue} if len(kinds) == 1 else {
            ON_DEMAND: _queue(self, "OnDemandJobQueue", self.compute_environments[ON_DEMAND]),
            SPOT: _queue(self, "SpotJobQueue", self.compute_environments[SPOT]),
        }
        """The queue of each kind alone: the main queue where the stack has one kind, else a queue of its own."""
        self.placement_group = ec2.PlacementGroup(self, "MultiNodePlacementGroup", strategy=ec2.PlacementGroupStrategy.CLUSTER)
        one_subnet = network.vpc.select_subnets(subnet_type=network.compute_subnets.subnet_type).subnets[0]
        self.multi_node_compute_environment = environment(
            "MultiNodeGpuComputeEnvironment",
            vpc_subnets=ec2.SubnetSelection(subnets=[one_subnet]),
            minv_cpus=0,
            placement_group=self.placement_group,
        )
        self.multi_node_job_queue = _queue(self, "MultiNodeJobQueue", self.multi_node_compute_environment)
        for kind, compute_environment in self.compute_environments.items():
            self._enable_container_insights(compute_environment, "" if kind == ON_DEMAND else "Spot")
        self._enable_container_insights(self.multi_node_compute_environment, "MultiNode")

    @property
    def job_queues(self) -> list[batch.JobQueue]:
        """Every queue of the stack (main, one-kind queues, multi-node), each once."""
        queues = (self.job_queue, *self.kind_queues.values(), self.multi_node_job_queue)
        return list({id(queue): queue for queue in queues}.values())

    def add_job_definitions(self, storage: Storage) -> None:
        """The job role and both job definitions (they need the bucket and the file system)."""
        self.job_role = _job_role(self, storage, self.token_parameter_prefix)
        self.single_node_job_definition = batch.CfnJobDefinition(
            self,
            "SingleNodeJobDefinition",
            type="container",
            platform_capabilities=["EC2"],
            container_properties=self._container_properties(storage, self.config.max_attempts),
            retry_strategy=batch.CfnJobDefinition.RetryStrategyProperty(
                attempts=self.config.max_attempts,
                evaluate_on_exit=[
                    batch.CfnJobDefinition.EvaluateOnExitProperty(on_status_reason=HOST_TERMINATED, action="RETRY"),
                    batch.CfnJobDefinition.EvaluateOnExitProperty(on_reason="*", action="EXIT"),
                    batch.CfnJobDefinition.EvaluateOnExitProperty(on_exit_code="*", action="EXIT"),
                ],
            ),
            timeout=batch.CfnJobDefinition.TimeoutProperty(attempt_duration_seconds=MAX_JOB_SECONDS),
            propagate_tags=True,
        )
        self.multi_node_job_definition = batch.CfnJobDefinition(
            self,
            "MultiNodeJobDefinition",
            type="multinode",
            platform_capabilities=["EC2"],
            node_properties=batch.CfnJobDefinition.NodePropertiesProperty(
                main_node=0,
                num_nodes=DEFAULT_NUM_NODES,
                node_range_properties=[batch.CfnJobDefinition.NodeRangePropertyProperty(
                    target_nodes="0:", container=self._container_properties(storage, max_attempts=1))],
            ),
            retry_strategy=batch.CfnJobDefinition.RetryStrategyProperty(attempts=1),
            timeout=batch.CfnJobDefinition.TimeoutProperty(attempt_duration_seconds=MAX_JOB_SECONDS),
            propagate_tags=True,
        )

    def _container_properties(
        self, storage: Storage, max_attempts: int
    ) -> batch.CfnJobDefinition.ContainerPropertiesProperty:
        """The container of a job definition whose retry strategy allows ``max_attempts`` (the runner holds back
        the callback of an interrupted attempt that Batch may retry)."""
        environment = {**JOB_ENVIRONMENT, "AWS_DEFAULT_REGION": Aws.REGION, "WORKBENCH_MAX_ATTEMPTS": str(max_attempts)}
        size = job_size(self.config.instance_types, gpus=1)
        return batch.CfnJobDefinition.ContainerPropertiesProperty(
            image=self.image.image_uri,
            job_role_arn=self.job_role.role_arn,
            resource_requirements=[
                batch.CfnJobDefinition.ResourceRequirementProperty(type=r["Type"], value=r["Value"])
                for r in size.resource_requirements()
            ],
            environment=[batch.CfnJobDefinition.EnvironmentProperty(name=k, value=v) for k, v in environment.items()],
            volumes=[
                batch.CfnJobDefinition.VolumesProperty(
                    name="efs",
                    efs_volume_configuration=batch.CfnJobDefinition.EfsVolumeConfigurationProperty(
                        file_system_id=storage.file_system.file_system_id,
                        transit_encryption="ENABLED",
                        authorization_config=batch.CfnJobDefinition.AuthorizationConfigProperty(
                            access_point_id=storage.access_point.access_point_id, iam="ENABLED"
                        ),
                    ),
                )
            ],
            mount_points=[
                batch.CfnJobDefinition.MountPointsProperty(source_volume="efs", container_path=EFS_MOUNT_PATH, read_only=False)
            ],
            linux_parameters=batch.CfnJobDefinition.LinuxParametersProperty(shared_memory_size=SHARED_MEMORY_MIB),
            log_configuration=batch.CfnJobDefinition.LogConfigurationProperty(
                log_driver="awslogs",
                options={
                    "awslogs-group": self.log_group.log_group_name,
                    "awslogs-region": Aws.REGION,
                    "awslogs-stream-prefix": "workbench",
                },
            ),
        )

    def _enable_container_insights(self, environment: batch.ManagedEc2EcsComputeEnvironment, prefix: str) -> None:
        """Batch creates the ECS cluster itself: look its ARN up, then turn Container Insights on for it."""
        describe = cr.AwsSdkCall(
            service="Batch",
            action="describeComputeEnvironments",
            parameters={"computeEnvironments": [environment.compute_environment_arn]},
            physical_resource_id=cr.PhysicalResourceId.of("EcsClusterArn"),
            output_paths=["computeEnvironments.0.ecsClusterArn"],
        )
        lookup = cr.AwsCustomResource(
            self,
            f"{prefix}EcsClusterLookup",
            on_create=describe,
            on_update=describe,
            install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["batch:DescribeComputeEnvironments"], resources=["*"])]
            ),
        )
        cluster_arn = lookup.get_response_field("computeEnvironments.0.ecsClusterArn")
        update = cr.AwsSdkCall(
            service="ECS",
            action="updateClusterSettings",
            parameters={"cluster": cluster_arn, "settings": [{"name": "containerInsights", "value": "enabled"}]},
            physical_resource_id=cr.PhysicalResourceId.of("ContainerInsights"),
        )
        insights = cr.AwsCustomResource(
            self,
            f"{prefix}ContainerInsights",
            on_create=update,
            on_update=update,
            install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ecs:UpdateClusterSettings"], resources=[cluster_arn])]
            ),
        )
        insights.node.add_dependency(lookup)


def _queue(scope: Construct, id: str, *environments: batch.ManagedEc2EcsComputeEnvironment) -> batch.JobQueue:
    """A queue trying ``environments`` in the order given."""
    return batch.JobQueue(
        scope, id, compute_environments=[
            batch.OrderedComputeEnvironment(compute_environment=environment, order=order)
            for order, environment in enumerate(environments, start=1)
        ]
    )


def token_parameter_prefix(config: PipelineConfig) -> str:
    """Where the jobs' task tokens are kept in SSM Parameter Store: ``<prefix>/<job id>/<start|run|caller>-token``."""
    return f"/{config.stack_name}/jobs"


def token_parameter_arn(prefix: str) -> str:
    """Every job's token parameters, ``<prefix>/<job id>/*``, and nothing else in Parameter Store."""
    return f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{prefix}/*"


def _job_role(scope: Construct, storage: Storage, token_prefix: str) -> iam.Role:
    """The container's role: task callbacks and reading their tokens, the pipeline's S3 prefixes, and mounting its
    EFS access point. SecureString parameters use the AWS managed key ``aws/ssm``, whose key policy lets this
    account's principals decrypt through Parameter Store: no kms:Decrypt statement is needed (a customer managed key
    would need one)."""
    role = iam.Role(scope, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    bucket = storage.bucket
    role.add_to_policy(
        iam.PolicyStatement(
            sid="TaskCallbacks",
            actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
            resources=["*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadTaskTokens",
            actions=["ssm:GetParameter"],
            resources=[token_parameter_arn(token_prefix)],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadInputsAndOutputs",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(INPUT_PREFIX + "*"), bucket.arn_for_objects(OUTPUT_PREFIX + "*")],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteOutputs",
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(OUTPUT_PREFIX + "*")],
        )
    )
    role.add_to_policy(storage.list_pipeline_prefixes("ListPipelinePrefixes"))
    role.add_to_policy(
        iam.PolicyStatement(
            sid="MountCheckpointFileSystem",
            actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            resources=[storage.file_system.file_system_arn],
            conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": storage.access_point.access_point_arn}},
        )
    )
    return role
