"""Storage: the S3 bucket for inputs and outputs, and EFS for checkpoints, the asset root and kernel cache."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from workbench_infra.config import PipelineConfig
from workbench_infra.network import Network

EFS_MOUNT_PATH = "/mnt/efs"
CHECKPOINT_ROOT = f"{EFS_MOUNT_PATH}/checkpoints"
WORKBENCH_HOME = f"{EFS_MOUNT_PATH}/home"
INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
NONCURRENT_VERSION_DAYS = 30
"""How long the bucket keeps a replaced or deleted object's previous version (then it expires)."""


class Storage(Construct):
    """The bucket (new or existing) and an encrypted EFS file system that only ``compute_security_group`` reaches."""

    def __init__(
        self, scope: Construct, id: str, config: PipelineConfig, network: Network, compute_security_group: ec2.ISecurityGroup
    ) -> None:
        super().__init__(scope, id)
        if config.existing_bucket_name:
            self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Bucket", config.existing_bucket_name)
        else:
            self.bucket = s3.Bucket(
                self,
                "Bucket",
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                removal_policy=RemovalPolicy.RETAIN,
                versioned=True,  # an overwritten or deleted output can be restored for NONCURRENT_VERSION_DAYS
                lifecycle_rules=[
                    s3.LifecycleRule(
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                        noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                        expired_object_delete_marker=True,
                    )
                ],
            )
        self.efs_security_group = ec2.SecurityGroup(
            self,
            "EfsSecurityGroup",
            vpc=network.vpc,
            description="EFS for workbench checkpoints: NFS from the Batch compute only",
            allow_all_outbound=False,
        )
        self.efs_security_group.add_ingress_rule(compute_security_group, ec2.Port.tcp(2049), "NFS from Batch compute")
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=network.vpc,
            vpc_subnets=network.storage_subnets,
            security_group=self.efs_security_group,
            encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_point = self.file_system.add_access_point(
            "AccessPoint",
            path="/workbench",
            create_acl=efs.Acl(owner_uid="1000", owner_gid="1000", permissions="755"),
            posix_user=efs.PosixUser(uid="1000", gid="1000"),
        )

    def list_pipeline_prefixes(self, sid: str) -> iam.PolicyStatement:
        """``s3:ListBucket`` limited to the inputs/ and outputs/ prefixes: with it, S3 answers a missing object
        there with 404 ("does not exist") instead of 403."""
        return iam.PolicyStatement(
            sid=sid,
            actions=["s3:ListBucket"],
            resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [INPUT_PREFIX + "*", OUTPUT_PREFIX + "*"]}},
        )
