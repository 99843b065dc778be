"""Runs the SAM transform on template.yaml offline, as `sam deploy` has CloudFormation run it.

`cfn-lint` and `sam validate --lint` lint the template but do not always run every check of the
transform (it validates some properties, e.g. CapacityProviderConfig, before resolving their
intrinsic functions), so a template both accept can still fail to deploy. This runs the
transform itself, with the template's default parameters and with each parameter set given as
NAME=VALUE arguments (one set per `--set`), and fails on any error it reports.

The functions' CodeUri (a local folder that `sam build` replaces) is swapped for an S3 URI first,
as `sam deploy` uploads it; nothing is sent anywhere.

With `--on-capacity-provider` first, it also fails unless every function the transform writes
runs on a capacity provider (the Managed Instances variant, infra/scripts/managed-instances.py).
"""

import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402


class NoManagedPolicies:
    """The managed-policy map the transform asks for (offline: none)."""

    def load(self):
        return {}


def off_capacity_provider(output):
    """The functions of a transformed template that do not run on a capacity provider."""
    return [
        name
        for name, resource in output.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Lambda::Function"
        and "CapacityProviderConfig" not in resource.get("Properties", {})
    ]


def run(path, parameters, on_capacity_provider=False):
    template, problems = decode(path)
    if problems:
        return [str(p) for p in problems]
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/function.zip"
    try:
        output = transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as e:
        return [str(c) for c in e.causes]
    if on_capacity_provider:
        return [f"{name} is not on a capacity provider" for name in off_capacity_provider(output)]
    return []


def main(argv):
    path = argv[1]
    sets = [{}]
    rest = argv[2:]
    on_capacity_provider = bool(rest) and rest[0] == "--on-capacity-provider"
    if on_capacity_provider:
        rest = rest[1:]
    while rest:
        if rest[0] != "--set":
            print(
                f"usage: {argv[0]} TEMPLATE [--on-capacity-provider] [--set NAME=VALUE ...]...",
                file=sys.stderr,
            )
            return 2
        rest = rest[1:]
        values = {}
        while rest and rest[0] != "--set":
            name, _, value = rest[0].partition("=")
            values[name] = value
            rest = rest[1:]
        sets.append(values)
    failed = False
    for values in sets:
        errors = run(path, values, on_capacity_provider)
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
        for error in errors:
            failed = True
            print(f"{path} ({label}): {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
