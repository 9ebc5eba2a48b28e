"""The Isaac Lab Workbench's AWS pipeline as a CDK app (see ``workbench_infra.synth`` for the entry points)."""
