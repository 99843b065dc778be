"""Runs the SAM transform on template.yaml offline, as `sam deploy` has CloudFormation run it.

`cfn-lint` and `sam validate --lint` lint the template but do not always run every check of the
transform (it validates some properties, e.g. CapacityProviderConfig, before resolving their
intrinsic functions), so a template both accept can still fail to deploy. This runs the
transform itself, with the template's default parameters and with each parameter set given as
NAME=VALUE arguments (one set per `--set`), and fails on any error it reports.

The functions' CodeUri (a local folder that `sam build` replaces) is swapped for an S3 URI first,
as `sam deploy` uploads it; nothing is sent anywhere.
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


def run(path, parameters):
    template, problems = decode(path)
    if problems:
        return [str(p) for p in problems]
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/function.zip"
    try:
        transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as e:
        return [str(c) for c in e.causes]
    return []


def main(argv):
    path = argv[1]
    sets = [{}]
    rest = argv[2:]
    while rest:
        if rest[0] != "--set":
            print(f"usage: {argv[0]} TEMPLATE [--set NAME=VALUE ...]...", file=sys.stderr)
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
        errors = run(path, values)
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
        for error in errors:
            failed = True
            print(f"{path} ({label}): {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
