"""Runs template.yaml's transforms offline, as `sam deploy` has CloudFormation run them.

`cfn-lint` and `sam validate --lint` lint the template but do not always run every check of the
transform (it validates some properties, e.g. CapacityProviderConfig, before resolving their
intrinsic functions), so a template both accept can still fail to deploy. This runs the
transforms themselves, with the template's default parameters and with each parameter set given
as NAME=VALUE arguments (one set per `--set`), and fails on any error they report.

CloudFormation runs a template's transforms in the order it lists them, each with the stack's
parameter values. When `AWS::LanguageExtensions` is listed, it must come before the SAM
transform (this fails otherwise, as the SAM transform would refuse what it has not resolved);
it is approximated here by the SAM CLI's own port of it (pinned in tests/requirements.txt),
which resolves what it can from the parameters, `!If` on a parameter's condition among them.
The port is not the hosted transform: it leaves some `!Sub` strings half resolved and empties
the properties of resources whose condition is false, which changes nothing this checks.

The functions' CodeUri (a local folder that `sam build` replaces) is swapped for an S3 URI first,
as `sam deploy` uploads it; nothing is sent anywhere.

Each set is also checked for where the functions run: with a non-empty `CapacityProviderArn`,
every function the transform writes must be on that capacity provider (Lambda Managed
Instances) with at least 2,048 MB; without one, none may be.
"""

import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402
from samcli.commands.validate.lib.exceptions import (  # noqa: E402
    InvalidSamDocumentException as PortError,
)
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
    expanded = expand_language_extensions(template, parameter_values=values, enabled=True)
    return expanded.expanded_template


def capacity_providers(output):
    """Each function of a transformed template, with the capacity provider it runs on (or None)."""
    def arn(properties):
        if "CapacityProviderConfig" not in properties:
            return None
        config = properties["CapacityProviderConfig"].get(
            "LambdaManagedInstancesCapacityProviderConfig", {}
        )
        return config.get("CapacityProviderArn", "")

    return {
        name: arn(resource.get("Properties", {}))
        for name, resource in output.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Lambda::Function"
    }


# The smallest memory size of a function on Lambda Managed Instances.
MIN_MANAGED_MEMORY_MB = 2048
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


def misplaced(output, parameters):
    """The functions not where the parameters put them: all on CapacityProviderArn with at least
    MIN_MANAGED_MEMORY_MB, or none on a capacity provider."""
    wanted = parameters.get("CapacityProviderArn") or None
    problems = []
    for name, arn in capacity_providers(output).items():
        if arn != wanted:
            where = "no capacity provider" if arn is None else f"capacity provider {arn!r}"
            problems.append(f"{name} runs on {where}, not on {wanted or 'none'}")
        memory = output["Resources"][name].get("Properties", {}).get("MemorySize")
        if wanted and not (isinstance(memory, int) and memory >= MIN_MANAGED_MEMORY_MB):
            problems.append(
                f"{name} has MemorySize {memory!r} on a capacity provider"
                f" (at least {MIN_MANAGED_MEMORY_MB})"
            )
    return problems


def run(path, parameters):
    template, problems = decode(path)
    if problems:
        return [str(p) for p in problems]
    template = plain(template)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/function.zip"
    listed = transforms(template)
    if AWS_LANGUAGE_EXTENSIONS_TRANSFORM in listed:
        first = listed.index(AWS_LANGUAGE_EXTENSIONS_TRANSFORM)
        if SAM_TRANSFORM in listed[:first]:
            return [f"{AWS_LANGUAGE_EXTENSIONS_TRANSFORM} must be listed before {SAM_TRANSFORM}"]
        try:
            template = with_language_extensions(template, parameters)
        except PortError as e:
            return [f"{AWS_LANGUAGE_EXTENSIONS_TRANSFORM}: {e}"]
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
