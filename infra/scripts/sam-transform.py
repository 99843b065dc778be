"""Runs the template's transforms on template.yaml offline, as `sam deploy` has CloudFormation run them.

`cfn-lint` and `sam validate --lint` lint the template but do not always run every check of the
transform (it validates some properties, e.g. CapacityProviderConfig, before resolving their
intrinsic functions), so a template both accept can still fail to deploy. This runs the
transforms themselves, with the template's default parameters and with each parameter set given
as NAME=VALUE arguments (one set per `--set`), and fails on any error they report.

CloudFormation runs a template's transforms in the order it lists them, each with the stack's
parameter values. When `AWS::LanguageExtensions` comes first, as in template.yaml, it runs first
here too: the SAM CLI's own copy of it (pinned in tests/requirements.txt) resolves what it can
from the parameters (`!If` on a parameter's condition among them), and the SAM transform then
gets what it would get from CloudFormation.

The functions' CodeUri (a local folder that `sam build` replaces) is swapped for an S3 URI first,
as `sam deploy` uploads it; nothing is sent anywhere.

Each set is also checked for where the functions run: with a non-empty `CapacityProviderArn`,
every function the transform writes must be on that capacity provider (Lambda Managed
Instances); without one, none may be.
"""

import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402
from samcli.lib.cfn_language_extensions.sam_integration import (  # noqa: E402
    AWS_LANGUAGE_EXTENSIONS_TRANSFORM,
    expand_language_extensions,
)
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402


class NoManagedPolicies:
    """The managed-policy map the transform asks for (offline: none)."""

    def load(self):
        return {}


# What CloudFormation gives a transform for the pseudo parameters (placeholders: nothing here
# depends on the account or the region).
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "partner-bundle",
    "AWS::URLSuffix": "amazonaws.com",
}


def plain(value):
    """The decoded template's nodes as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def transforms(template):
    """The template's transforms, in the order CloudFormation runs them."""
    listed = template.get("Transform", [])
    return [listed] if isinstance(listed, str) else list(listed)


def with_language_extensions(template, parameters):
    """The template as `AWS::LanguageExtensions` hands it on, given the stack's parameters."""
    values = {
        name: str(p["Default"])
        for name, p in template.get("Parameters", {}).items()
        if "Default" in p
    }
    values.update(parameters)
    values.update(PSEUDO_PARAMETERS)
    return expand_language_extensions(template, parameter_values=values, enabled=True).expanded_template


def capacity_providers(output):
    """Each function of a transformed template, with the capacity provider it runs on (or None)."""
    return {
        name: resource.get("Properties", {})
        .get("CapacityProviderConfig", {})
        .get("LambdaManagedInstancesCapacityProviderConfig", {})
        .get("CapacityProviderArn")
        for name, resource in output.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Lambda::Function"
    }


def misplaced(output, parameters):
    """The functions not where the parameters put them: all on CapacityProviderArn, or none."""
    wanted = parameters.get("CapacityProviderArn") or None
    return [
        f"{name} runs on {arn or 'no capacity provider'}, not on {wanted or 'none'}"
        for name, arn in capacity_providers(output).items()
        if arn != wanted
    ]


def run(path, parameters):
    template, problems = decode(path)
    if problems:
        return [str(p) for p in problems]
    template = plain(template)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/function.zip"
    if AWS_LANGUAGE_EXTENSIONS_TRANSFORM in transforms(template):
        template = with_language_extensions(template, parameters)
    try:
        output = transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as e:
        return [str(c) for c in e.causes]
    return misplaced(output, parameters)


def main(argv):
    path = argv[1]
    sets = [{}]
    rest = argv[2:]
    while rest:
        if rest[0] != "--set":
            print(
                f"usage: {argv[0]} TEMPLATE [--set NAME=VALUE ...]...",
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
        errors = run(path, values)
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
        for error in errors:
            failed = True
            print(f"{path} ({label}): {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
