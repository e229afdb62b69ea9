"""``regvault setup``: re-run a deployed stack's Setup state machine, or check an instance first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, settings
from regvault.errors import InvalidInput


def add_parser(sub: Subparsers) -> None:
    setup = sub.add_parser(
        "setup",
        help="re-run the Setup state machine of a deployed stack, or check an instance before a first deploy",
        description="Start the stack's Setup state machine again with the input of its last run and "
        "wait for it: converges the bucket, secrets, IAM chain and profile, and relaunches the registry "
        "(re-running converges: the container is replaced, data is kept).\n\n"
        "--preflight runs only the setup's first step, read-only: the instance (exists in this region, "
        "running, Linux, its instance profile, metadata options, SSM agent), the bucket (region, "
        "versioning, encryption), the TLS secret's KMS key and the stack name. It reports every problem "
        "at once with its remedy (exit 1) — before `sam deploy`, give the deploy's values as flags; "
        "for a deployed stack, --state-machine-arn takes them from its last run.",
        epilog="examples:\n  regvault setup --state-machine-arn $(aws cloudformation describe-stacks "
        "--stack-name regvault --query \"Stacks[0].Outputs[?OutputKey=='SetupStateMachineArn'].OutputValue\" "
        "--output text)\n"
        "  regvault setup --preflight --stack-name regvault --instance-id i-0123456789abcdef0 "
        "--bucket my-registry-bucket --region eu-west-1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    setup.add_argument("--state-machine-arn", metavar="ARN", help="the stack's SetupStateMachineArn")
    setup.add_argument("--no-wait", dest="wait", action="store_false", help="start it and return")
    setup.add_argument(
        "--timeout", type=int, default=3600, metavar="S", help="how long to wait (default 3600)"
    )
    setup.add_argument("--poll", type=float, default=10.0, help=argparse.SUPPRESS)
    pre = setup.add_argument_group("preflight (read-only)")
    pre.add_argument("--preflight", action="store_true", help="only check; write nothing")
    pre.add_argument("--stack-name", metavar="NAME", help="the stack name you will deploy")
    pre.add_argument("--instance-id", metavar="ID", help="the registry's EC2 instance")
    pre.add_argument("--tls-secret-arn", metavar="ARN", default="", help="TlsSecretArn, if you give one")
    pre.add_argument(
        "--registry-image", metavar="IMAGE", default="", help="RegistryImage, if not the default"
    )
    pre.add_argument("--replace-existing-profile", action="store_true", help="ReplaceExistingProfile=true")
    pre.add_argument("--allow-reboot", action="store_true", help="AllowReboot=true")
    add_common_options(setup, suppress=True)


def _client(args: argparse.Namespace, service: str) -> Any:
    from regvault.aws.clients import client

    return client(service, region=args.region, endpoint_url=args.endpoint_url or None, profile=args.profile)


def cmd_setup(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.aws.services import StateMachine
    from regvault.setup.rerun import StateMachineArn, follow, start_rerun

    if not args.state_machine_arn and not args.preflight:
        raise InvalidInput("give --state-machine-arn (re-run the setup) or --preflight (check only)")
    machine = None
    if args.state_machine_arn:
        arn = StateMachineArn.parse(args.state_machine_arn)
        args.region = args.region or arn.region  # the preflight's clients go to the same region
        machine = StateMachine(arn.text, _client(args, "stepfunctions"))
    if args.preflight:
        return _preflight(args, machine.last_input()["config"] if machine else None, out)
    assert machine is not None
    execution = start_rerun(machine)
    print(f"regvault: setup started: {execution}", file=sys.stderr)
    run = follow(machine, execution, wait=args.wait, timeout=args.timeout, poll=args.poll)
    if run.timed_out:
        print(f"regvault: setup still running after {args.timeout} s: {execution}", file=sys.stderr)
        return 1
    if args.format == "json":
        out.write(json.dumps(run.as_dict(), indent=2) + "\n")
    else:
        out.write(f"setup {run.status.lower()}: {execution}\n")
    return 0 if run.ok else 1


def _preflight(args: argparse.Namespace, properties: dict[str, Any] | None, out: TextIO) -> int:
    """`regvault setup --preflight`: the Setup state machine's first step, run here with your credentials."""
    from regvault.setup.preflight import run
    from regvault.setup.steps import SetupConfig

    ec2 = _client(args, "ec2")
    if properties is None:
        bucket, _ = settings(args)
        missing = [
            f
            for f, v in (
                ("--stack-name", args.stack_name),
                ("--instance-id", args.instance_id),
                ("--bucket", bucket),
            )
            if not v
        ]
        if missing:
            raise InvalidInput(f"--preflight before a deploy needs {', '.join(missing)}")
        properties = {
            "Name": args.stack_name,
            "Region": ec2.meta.region_name,
            "InstanceId": args.instance_id,
            "BucketName": bucket,
            "TlsSecretArn": args.tls_secret_arn,
            "RegistryImage": args.registry_image,
            "ReplaceExistingProfile": str(args.replace_existing_profile).lower(),
            "AllowReboot": str(args.allow_reboot).lower(),
        }
    config = SetupConfig.from_properties(properties)
    report = run(config, ec2, _client(args, "ssm"), _client(args, "s3"), _client(args, "secretsmanager"))
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        for problem in report.problems:
            out.write(f"PROBLEM  {problem}\n")
        for note in report.notes:
            out.write(f"note     {note}\n")
        out.write(
            f"preflight: {len(report.problems)} problem(s)"
            + (" — fix them, then deploy\n" if report.problems else "; ready to deploy\n")
        )
    return 0 if report.ok else 1
