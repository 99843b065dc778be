"""Writes the Lambda Managed Instances variant of template.yaml: every function on a capacity provider.

Usage:
    managed-instances.py TEMPLATE OUT --capacity-provider-arn ARN
                         [--max-concurrency N] [--memory-per-vcpu GIB]

Why a variant and not a template parameter: a function's compute type is chosen when the
function is created (`CapacityProviderConfig` cannot be added or removed afterwards), and the SAM
transform validates `CapacityProviderConfig` before it resolves intrinsic functions, so an
`Fn::If` on a parameter cannot switch it on or off in one template. Choosing Managed Instances
is a deploy-time decision, made once per stack; this script makes it reproducible:

    .venv/bin/python infra/scripts/managed-instances.py template.yaml template.managed-instances.json \\
        --capacity-provider-arn arn:aws:lambda:eu-west-1:123456789012:capacity-provider:partner
    sam build --template-file template.managed-instances.json && sam deploy --guided

What the variant changes, and nothing else:
  - Globals.Function.CapacityProviderConfig: the provider's ARN, the concurrency per execution
    environment (`AWS_LAMBDA_MAX_CONCURRENCY`, which each function's runtime loop reads: every
    main runs `lambda_runtime`'s concurrent mode), and the memory per vCPU when given;
  - every function's memory raised to at least 2,048 MB, the smallest Managed Instances size.

Everything else (reserved-concurrency parameters, events, policies) is left as it is; the
provider itself (its VPC, subnets, operator role and scaling) is the partner's, made once per
account, and its ARN is the one input.

`make template-lint` writes the variant with a placeholder ARN and runs the SAM transform on it,
so a change to template.yaml that the variant cannot follow fails there.
"""

import argparse
import json
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402

# The smallest memory size of a function on Lambda Managed Instances.
MIN_MEMORY_MB = 2048
ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:capacity-provider:[a-zA-Z0-9_-]+$")


def plain(value):
    """The decoded template's nodes as plain dicts, lists and strings (what json can write)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def variant(template, arn, max_concurrency, memory_per_vcpu):
    """The template with every function on the capacity provider `arn`."""
    out = plain(template)
    function = out.setdefault("Globals", {}).setdefault("Function", {})
    config = {"Arn": arn, "PerExecutionEnvironmentMaxConcurrency": max_concurrency}
    if memory_per_vcpu is not None:
        config["ExecutionEnvironmentMemoryGiBPerVCpu"] = memory_per_vcpu
    function["CapacityProviderConfig"] = config
    function["MemorySize"] = max(int(function.get("MemorySize", 128)), MIN_MEMORY_MB)
    for resource in out.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        if "MemorySize" in props:
            props["MemorySize"] = max(int(props["MemorySize"]), MIN_MEMORY_MB)
    description = out.get("Description", "")
    out["Description"] = (description + " (Lambda Managed Instances variant)").strip()
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template")
    parser.add_argument("out")
    parser.add_argument("--capacity-provider-arn", required=True)
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=16,
        help="invocations one execution environment runs at once (1-1600; default 16)",
    )
    parser.add_argument(
        "--memory-per-vcpu",
        type=float,
        choices=[2.0, 4.0, 8.0],
        help="GiB of memory per vCPU of each execution environment (default: the provider's)",
    )
    args = parser.parse_args(argv[1:])
    if not ARN.match(args.capacity_provider_arn):
        print(f"not a capacity provider ARN: {args.capacity_provider_arn}", file=sys.stderr)
        return 2
    if not 1 <= args.max_concurrency <= 1600:
        print("--max-concurrency must be between 1 and 1600", file=sys.stderr)
        return 2
    template, problems = decode(args.template)
    if problems:
        for p in problems:
            print(f"{args.template}: {p}", file=sys.stderr)
        return 1
    out = variant(template, args.capacity_provider_arn, args.max_concurrency, args.memory_per_vcpu)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
