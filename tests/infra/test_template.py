"""Properties of the synthesized CloudFormation template (each asserted on its own; no snapshot)."""

from __future__ import annotations

import json
from typing import Any

from workbench_infra.synth import resources_of_type

TOKEN = "WORKBENCH_TASK_TOKEN"


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = resources_of_type(template, resource_type).values()
    return resource["Properties"]


def job_definitions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {p["Properties"]["Type"]: p["Properties"] for p in resources_of_type(template, "AWS::Batch::JobDefinition").values()}
    assert set(found) == {"container", "multinode"}
    return found


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    definitions = job_definitions(template)
    (node_range,) = definitions["multinode"]["NodeProperties"]["NodeRangeProperties"]
    return {"single": definitions["container"]["ContainerProperties"], "multi": node_range["Container"]}


def test_compute_environment_uses_g6_g6e_g5_best_fit_progressive(template):
    resources = only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    assert sorted(resources["InstanceTypes"]) == ["g5", "g6", "g6e"]
    assert resources["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE"
    assert resources["Type"] == "EC2"
    assert resources["Ec2Configuration"][0]["ImageType"] == "ECS_AL2023_NVIDIA"


def test_min_vcpus_follow_keep_warm_instance(template, variant_template):
    assert only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]["MinvCpus"] == 0
    assert only(variant_template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]["MinvCpus"] == 8


def test_launch_template_has_a_100_gb_encrypted_gp3_root_volume(template):
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"] == {"Encrypted": True, "VolumeSize": 100, "VolumeType": "gp3"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    compute = only(template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    assert "LaunchTemplateId" in compute["LaunchTemplate"]


def test_container_insights_is_turned_on_for_the_batch_ecs_cluster(template):
    calls = [json.dumps(r["Properties"].get("Create", "")) for r in resources_of_type(template, "Custom::AWS").values()]
    assert any("updateClusterSettings" in c and "containerInsights" in c and "enabled" in c for c in calls)
    assert any("describeComputeEnvironments" in c for c in calls)


def test_both_job_definitions_mount_efs_through_the_access_point(template):
    access_point = next(iter(resources_of_type(template, "AWS::EFS::AccessPoint")))
    file_system = next(iter(resources_of_type(template, "AWS::EFS::FileSystem")))
    for name, container in containers(template).items():
        (volume,) = container["Volumes"]
        efs = volume["EfsVolumeConfiguration"]
        assert efs["FileSystemId"] == {"Ref": file_system}, name
        assert efs["TransitEncryption"] == "ENABLED", name
        assert efs["AuthorizationConfig"] == {"AccessPointId": {"Ref": access_point}, "Iam": "ENABLED"}, name
        assert container["MountPoints"] == [{"ContainerPath": "/mnt/efs", "ReadOnly": False, "SourceVolume": volume["Name"]}]


def test_job_definitions_carry_the_runner_contract_but_no_per_job_values(template):
    for name, container in containers(template).items():
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert environment["WORKBENCH_CHANNEL"] == "sfn:", name
        assert environment["WORKBENCH_HEARTBEAT_INTERVAL"] == "300", name
        assert environment["WORKBENCH_HEARTBEAT_TIMEOUT"] == "1800", name
        assert environment["WORKBENCH_HOME"].startswith("/mnt/efs/"), name
        assert not {TOKEN, "WORKBENCH_JOB_SPEC", "WORKBENCH_JOB_ID", "WORKBENCH_OUTPUT_URI"} & set(environment), name
        requirements = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
        assert requirements["GPU"] == "1", name
        assert container["LinuxParameters"]["SharedMemorySize"] >= 4096, name
        assert container["LogConfiguration"]["LogDriver"] == "awslogs", name


def test_multi_node_job_definition_spans_every_node_with_node_0_as_main(template):
    properties = job_definitions(template)["multinode"]["NodeProperties"]
    assert properties["MainNode"] == 0
    assert properties["NumNodes"] >= 2
    assert [r["TargetNodes"] for r in properties["NodeRangeProperties"]] == ["0:"]


def test_compute_security_group_lets_nodes_talk_to_each_other_and_efs_only_to_compute(template):
    groups = resources_of_type(template, "AWS::EC2::SecurityGroup")
    compute = next(k for k, v in groups.items() if "NCCL" in v["Properties"]["GroupDescription"])
    efs = next(k for k, v in groups.items() if "EFS" in v["Properties"]["GroupDescription"])
    rules = [r["Properties"] for r in resources_of_type(template, "AWS::EC2::SecurityGroupIngress").values()]
    nccl = [r for r in rules if r["GroupId"] == {"Fn::GetAtt": [compute, "GroupId"]}]
    assert nccl and nccl[0]["SourceSecurityGroupId"] == {"Fn::GetAtt": [compute, "GroupId"]}
    assert (nccl[0]["FromPort"], nccl[0]["ToPort"]) == (0, 65535)
    nfs = [r for r in rules if r["GroupId"] == {"Fn::GetAtt": [efs, "GroupId"]}]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in nfs] == [(2049, {"Fn::GetAtt": [compute, "GroupId"]})]
    assert not groups[efs]["Properties"].get("SecurityGroupIngress")


def test_efs_is_encrypted_in_isolated_subnets(template):
    assert only(template, "AWS::EFS::FileSystem")["Encrypted"] is True
    subnets = resources_of_type(template, "AWS::EC2::Subnet")
    for target in resources_of_type(template, "AWS::EFS::MountTarget").values():
        subnet = subnets[target["Properties"]["SubnetId"]["Ref"]]
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


def test_vpc_has_private_subnets_behind_a_nat_gateway(template):
    assert len(resources_of_type(template, "AWS::EC2::NatGateway")) == 1
    types = [
        {t["Key"]: t["Value"] for t in s["Properties"]["Tags"]}["aws-cdk:subnet-type"]
        for s in resources_of_type(template, "AWS::EC2::Subnet").values()
    ]
    assert types.count("Private") == 2 and types.count("Isolated") == 2
    assert resources_of_type(template, "AWS::EC2::FlowLog")
    (endpoint,) = resources_of_type(template, "AWS::EC2::VPCEndpoint").values()
    assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"


def test_existing_vpc_and_bucket_create_neither(variant_template):
    assert not resources_of_type(variant_template, "AWS::EC2::VPC")
    assert not resources_of_type(variant_template, "AWS::S3::Bucket")
    compute = only(variant_template, "AWS::Batch::ComputeEnvironment")["ComputeResources"]
    assert sorted(compute["Subnets"]) == ["subnet-0000000000000000a", "subnet-0000000000000000b"]
    targets = resources_of_type(variant_template, "AWS::EFS::MountTarget").values()
    assert sorted(t["Properties"]["SubnetId"] for t in targets) == ["subnet-0000000000000000c", "subnet-0000000000000000d"]
    assert variant_template["Outputs"]["BucketName"]["Value"] == "my-existing-bucket"


def test_bucket_is_encrypted_private_and_tls_only(template):
    bucket = only(template, "AWS::S3::Bucket")
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    statements = only(template, "AWS::S3::BucketPolicy")["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_job_role_may_only_call_back_and_use_the_pipeline_prefixes(synthesized):
    stack, template = synthesized.stack, synthesized.template
    role = stack.get_logical_id(stack.pipeline.compute.job_role.node.default_child)
    policies = [p["Properties"] for p in resources_of_type(template, "AWS::IAM::Policy").values()]
    (policy,) = [p for p in policies if p["Roles"] == [{"Ref": role}]]
    actions = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            actions[action] = json.dumps(statement["Resource"])
    assert set(actions) == {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "elasticfilesystem:ClientMount",
        "elasticfilesystem:ClientWrite",
    }
    assert "/inputs/*" in actions["s3:GetObject"] and "/outputs/*" in actions["s3:GetObject"]
    assert "/outputs/*" in actions["s3:PutObject"] and "/inputs/" not in actions["s3:PutObject"]
    roles = resources_of_type(template, "AWS::IAM::Role")
    assert not roles[role]["Properties"].get("ManagedPolicyArns")


def test_batch_logs_go_to_a_known_log_group_named_in_the_outputs(template):
    outputs = {k: v["Value"] for k, v in template["Outputs"].items()}
    name = outputs["JobLogGroupName"]
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    (logical_id,) = [k for k, v in groups.items() if v["Properties"].get("LogGroupName") == "/aws/batch/WorkbenchTest"]
    assert name == {"Ref": logical_id}
    for container in containers(template).values():
        assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": logical_id}


def test_outputs_name_everything_the_aws_backend_needs(template):
    assert {
        "StateMachineArn",
        "BucketName",
        "JobLogGroupName",
        "JobQueueArn",
        "SingleNodeJobDefinitionArn",
        "MultiNodeJobDefinitionArn",
    } <= set(template["Outputs"])


def test_state_machine_logs_without_execution_data_and_traces(template):
    machine = only(template, "AWS::StepFunctions::StateMachine")
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert machine["TracingConfiguration"] == {"Enabled": True}


def test_failed_batch_jobs_reach_the_failure_hook_at_once(template):
    (rule,) = resources_of_type(template, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["FAILED"]


def test_vams_registration_registers_both_pipelines(template, variant_template):
    registrations = {
        r["Properties"]["pipelineId"]: r["Properties"]
        for r in resources_of_type(template, "AWS::CloudFormation::CustomResource").values()
    }
    assert set(registrations) == {"isaaclab-training", "isaaclab-evaluation"}
    assert registrations["isaaclab-training"]["taskTimeout"] == "28800"
    assert registrations["isaaclab-evaluation"]["taskTimeout"] == "7200"
    for pipeline_id, properties in registrations.items():
        assert properties["waitForCallback"] == "Enabled"
        assert properties["workflowId"] == pipeline_id
        parameters = json.loads(properties["inputParameters"])
        assert parameters["trainingConfig"]["mode"] == ("train" if pipeline_id == "isaaclab-training" else "evaluate")
    assert not resources_of_type(variant_template, "AWS::CloudFormation::CustomResource")


def test_disabled_pipeline_has_no_resources(disabled_template):
    types = {r["Type"] for r in disabled_template.get("Resources", {}).values()}
    assert types <= {"AWS::CDK::Metadata"}
    assert not disabled_template.get("Outputs")


def test_image_flavour_selects_the_dockerfile_and_passes_the_eula_acceptance(synthesized, variant):
    kitless, ngc = synthesized.docker_image_asset(), variant.docker_image_asset()
    assert kitless["dockerFile"] == "container/Dockerfile.kitless"
    assert ngc["dockerFile"] == "container/Dockerfile"
    assert kitless["dockerBuildArgs"] == ngc["dockerBuildArgs"] == {"ACCEPT_NVIDIA_EULA": "true"}
    context = synthesized.outdir / kitless["directory"]
    assert sorted(p.name for p in context.iterdir()) == ["container", "pyproject.toml", "workbench"]
    assert (context / "workbench" / "runner" / "__main__.py").is_file()
