"""Compute: the container image, the Batch GPU compute environment and queue, the job role and job definitions.

Both job definitions mount EFS at ``/mnt/efs`` and carry the runner's static environment (``JOB_ENVIRONMENT``);
the per-job values (spec, job id, output URI, checkpoint dir, task token) come as overrides at submission.
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

from workbench_infra.config import PipelineConfig
from workbench_infra.network import Network
from workbench_infra.storage import EFS_MOUNT_PATH, INPUT_PREFIX, OUTPUT_PREFIX, WORKBENCH_HOME, Storage

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"ngc": "container/Dockerfile", "kitless": "container/Dockerfile.kitless"}
IMAGE_CONTEXT_EXCLUDE = ["*", "!container/**", "!workbench/**", "!pyproject.toml", "**/__pycache__"]
INSTANCE_CLASSES = (ec2.InstanceClass.G6, ec2.InstanceClass.G6E, ec2.InstanceClass.G5)
WARM_VCPUS = 8
HEARTBEAT_INTERVAL_SECONDS = 300
HEARTBEAT_TIMEOUT_SECONDS = 1800
SHARED_MEMORY_MIB = 8192
DEFAULT_VCPUS = 4
DEFAULT_MEMORY_MIB = 15000
DEFAULT_NUM_NODES = 2
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
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "GpuComputeEnvironment",
            vpc=network.vpc,
            vpc_subnets=network.compute_subnets,
            security_groups=[self.security_group],
            instance_classes=list(INSTANCE_CLASSES),
            use_optimal_instance_classes=False,
            allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
            minv_cpus=WARM_VCPUS if config.keep_warm_instance else 0,
            maxv_cpus=config.max_vcpus,
            launch_template=launch_template,
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
        )
        self.job_queue = batch.JobQueue(
            self, "JobQueue", compute_environments=[batch.OrderedComputeEnvironment(compute_environment=self.compute_environment, order=1)]
        )
        self._enable_container_insights()

    def add_job_definitions(self, storage: Storage) -> None:
        """The job role and both job definitions (they need the bucket and the file system)."""
        self.job_role = _job_role(self, storage)
        container = self._container_properties(storage)
        self.single_node_job_definition = batch.CfnJobDefinition(
            self,
            "SingleNodeJobDefinition",
            type="container",
            platform_capabilities=["EC2"],
            container_properties=container,
            retry_strategy=batch.CfnJobDefinition.RetryStrategyProperty(attempts=1),
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
                node_range_properties=[batch.CfnJobDefinition.NodeRangePropertyProperty(target_nodes="0:", container=container)],
            ),
            retry_strategy=batch.CfnJobDefinition.RetryStrategyProperty(attempts=1),
            timeout=batch.CfnJobDefinition.TimeoutProperty(attempt_duration_seconds=MAX_JOB_SECONDS),
            propagate_tags=True,
        )

    def _container_properties(self, storage: Storage) -> batch.CfnJobDefinition.ContainerPropertiesProperty:
        environment = {**JOB_ENVIRONMENT, "AWS_DEFAULT_REGION": Aws.REGION}
        return batch.CfnJobDefinition.ContainerPropertiesProperty(
            image=self.image.image_uri,
            job_role_arn=self.job_role.role_arn,
            resource_requirements=[
                batch.CfnJobDefinition.ResourceRequirementProperty(type="VCPU", value=str(DEFAULT_VCPUS)),
                batch.CfnJobDefinition.ResourceRequirementProperty(type="MEMORY", value=str(DEFAULT_MEMORY_MIB)),
                batch.CfnJobDefinition.ResourceRequirementProperty(type="GPU", value="1"),
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

    def _enable_container_insights(self) -> None:
        """Batch creates the ECS cluster itself: look its ARN up, then turn Container Insights on for it."""
        describe = cr.AwsSdkCall(
            service="Batch",
            action="describeComputeEnvironments",
            parameters={"computeEnvironments": [self.compute_environment.compute_environment_arn]},
            physical_resource_id=cr.PhysicalResourceId.of("EcsClusterArn"),
            output_paths=["computeEnvironments.0.ecsClusterArn"],
        )
        lookup = cr.AwsCustomResource(
            self,
            "EcsClusterLookup",
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
            "ContainerInsights",
            on_create=update,
            on_update=update,
            install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ecs:UpdateClusterSettings"], resources=[cluster_arn])]
            ),
        )
        insights.node.add_dependency(lookup)


def _job_role(scope: Construct, storage: Storage) -> iam.Role:
    """The container's role: task callbacks, the pipeline's S3 prefixes, and mounting its EFS access point."""
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
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ListPipelinePrefixes",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [INPUT_PREFIX + "*", OUTPUT_PREFIX + "*"]}},
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="MountCheckpointFileSystem",
            actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            resources=[storage.file_system.file_system_arn],
            conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": storage.access_point.access_point_arn}},
        )
    )
    return role
