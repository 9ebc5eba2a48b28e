"""Properties of the synthesized CloudFormation template (each asserted on its own; no snapshot)."""

from __future__ import annotations

import json
from typing import Any

from infra_configs import REPO
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


def environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compute environments' ComputeResources: ``single`` (spread over zones) and ``multi`` (placement group)."""
    found = [r["Properties"]["ComputeResources"] for r in resources_of_type(template, "AWS::Batch::ComputeEnvironment").values()]
    (single,) = [r for r in found if "PlacementGroup" not in r]
    (multi,) = [r for r in found if "PlacementGroup" in r]
    return {"single": single, "multi": multi}


def queue_of(template: dict[str, Any], environment: str) -> str:
    """The logical id of the queue whose only compute environment is ``environment`` (``single`` / ``multi``)."""
    ids = {id(r["Properties"]["ComputeResources"]): k for k, r in resources_of_type(template, "AWS::Batch::ComputeEnvironment").items()}
    wanted = ids[id(environments(template)[environment])]
    (queue,) = [
        k for k, q in resources_of_type(template, "AWS::Batch::JobQueue").items()
        if [o["ComputeEnvironment"] for o in q["Properties"]["ComputeEnvironmentOrder"]] == [{"Fn::GetAtt": [wanted, "ComputeEnvironmentArn"]}]
    ]
    return queue


def test_compute_environments_offer_every_g6_g6e_g5_size_best_fit_progressive(template):
    from workbench.spec.instance_types import INSTANCE_TYPES

    for name, resources in environments(template).items():
        assert resources["InstanceTypes"] == list(INSTANCE_TYPES), name
        assert {t.split(".")[0] for t in resources["InstanceTypes"]} == {"g5", "g6", "g6e"}, name
        assert resources["AllocationStrategy"] == "BEST_FIT_PROGRESSIVE", name
        assert resources["Type"] == "EC2", name
        assert resources["Ec2Configuration"][0]["ImageType"] == "ECS_AL2023_NVIDIA", name


def test_compute_environments_offer_the_configured_instance_types(variant_template):
    for resources in environments(variant_template).values():
        assert resources["InstanceTypes"] == ["g6e.2xlarge", "g6e.12xlarge", "g6e.48xlarge"]


def test_multi_node_jobs_get_a_cluster_placement_group_in_one_subnet(template, variant_template):
    groups = resources_of_type(template, "AWS::EC2::PlacementGroup")
    (group_id,) = groups
    assert groups[group_id]["Properties"]["Strategy"] == "cluster"
    spread, multi = environments(template)["single"], environments(template)["multi"]
    assert multi["PlacementGroup"] == {"Fn::GetAtt": [group_id, "GroupName"]}
    assert len(spread["Subnets"]) == 2 and len(multi["Subnets"]) == 1 and multi["Subnets"][0] in spread["Subnets"]
    assert environments(variant_template)["multi"]["Subnets"] == ["subnet-0000000000000000a"]
    assert queue_of(template, "single") != queue_of(template, "multi")


def test_min_vcpus_follow_keep_warm_instance(template, variant_template):
    assert environments(template)["single"]["MinvCpus"] == 0
    assert environments(variant_template)["single"]["MinvCpus"] == 8
    assert environments(variant_template)["multi"]["MinvCpus"] == 0


def test_job_definitions_default_to_one_gpu_on_the_smallest_offered_instance(template, variant_template):
    sizes = {"default": (template, 4, 16384), "variant": (variant_template, 8, 65536)}  # g6.xlarge, g6e.2xlarge
    for name, (tmpl, vcpus, memory) in sizes.items():
        for kind, container in containers(tmpl).items():
            requirements = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
            assert requirements == {"GPU": "1", "VCPU": str(vcpus), "MEMORY": str(memory * 92 // 100)}, (name, kind)


def test_launch_template_has_a_100_gb_encrypted_gp3_root_volume(template):
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"] == {"Encrypted": True, "VolumeSize": 100, "VolumeType": "gp3"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    for compute in environments(template).values():
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
    compute = environments(variant_template)["single"]
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
        "ssm:GetParameter",
    }
    assert ":parameter/WorkbenchTest/jobs/*" in actions["ssm:GetParameter"]  # the jobs' task tokens only
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
        "MultiNodeJobQueueArn",
        "SingleNodeJobDefinitionArn",
        "MultiNodeJobDefinitionArn",
    } <= set(template["Outputs"])
    assert template["Outputs"]["JobQueueArn"]["Value"] == {"Fn::GetAtt": [queue_of(template, "single"), "JobQueueArn"]}
    assert template["Outputs"]["MultiNodeJobQueueArn"]["Value"] == {"Fn::GetAtt": [queue_of(template, "multi"), "JobQueueArn"]}


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
    queues = [q["Fn::GetAtt"][0] for q in pattern["detail"]["jobQueue"]]
    assert sorted(queues) == sorted([queue_of(template, "single"), queue_of(template, "multi")])


def prepare_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    functions = resources_of_type(template, "AWS::Lambda::Function")
    ((logical_id, function),) = [(k, f) for k, f in functions.items() if "PrepareFunction" in k]
    return logical_id, function["Properties"]


def test_prepare_knows_both_queues_and_the_offered_instance_types(template, variant_template):
    variables = prepare_function(template)[1]["Environment"]["Variables"]
    assert variables["JOB_QUEUE"] == {"Fn::GetAtt": [queue_of(template, "single"), "JobQueueArn"]}
    assert variables["MULTI_NODE_JOB_QUEUE"] == {"Fn::GetAtt": [queue_of(template, "multi"), "JobQueueArn"]}
    assert variables["INSTANCE_TYPES"].split(",") == environments(template)["single"]["InstanceTypes"]
    assert prepare_function(variant_template)[1]["Environment"]["Variables"]["INSTANCE_TYPES"] == "g6e.2xlarge,g6e.12xlarge,g6e.48xlarge"


def test_prepare_may_list_the_pipeline_prefixes_so_a_missing_input_reads_as_missing(template):
    role = prepare_function(template)[1]["Role"]["Fn::GetAtt"][0]
    policies = [p["Properties"] for p in resources_of_type(template, "AWS::IAM::Policy").values() if p["Properties"]["Roles"] == [{"Ref": role}]]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    (listing,) = [s for s in statements if "s3:ListBucket" in json.dumps(s["Action"])]
    assert listing["Action"] == "s3:ListBucket" and listing["Effect"] == "Allow"
    (bucket,) = resources_of_type(template, "AWS::S3::Bucket")
    assert listing["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["inputs/*", "outputs/*"]}}


def test_vams_registration_registers_both_pipelines(template, variant_template):
    registrations = {
        r["Properties"]["pipelineId"]: r["Properties"]
        for r in resources_of_type(template, "AWS::CloudFormation::CustomResource").values()
    }
    assert set(registrations) == {"isaaclab-training", "isaaclab-evaluation"}
    for properties in registrations.values():  # VAMS's maximum; heartbeat below it (see test_vams_contract.py)
        assert (properties["taskTimeout"], properties["taskHeartbeatTimeout"]) == ("604800", "3600")
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
    assert sorted(p.name for p in context.iterdir()) == [".dockerignore", "container", "pyproject.toml", "workbench"]
    assert (context / ".dockerignore").read_text() == (REPO / ".dockerignore").read_text()
    assert (context / "workbench" / "runner" / "__main__.py").is_file()
