"""Checks that test builds compile every host-only crate unoptimised, as Cargo.toml promises.

Usage:
    check-dev-profile.py [--manifest Cargo.toml]

A host-only crate is one that only ever runs inside the compiler or a build script: a proc macro,
a build-script helper, or a crate only they depend on. `[profile.dev.package]` names each of
them with `opt-level = 0`, one by one, because Cargo lets its `"*"` entry win over
`build-override`. This script works the set out from `cargo metadata` (this machine's platform,
every feature) and fails, naming them, when a host-only crate is missing from the list (a new
dependency) or a listed host-only name matches no crate any more (a removed one). The other
entries of the table (the SDK clients, jsonschema) are crates the tests link, listed on purpose.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tomllib

# Crates the tests link, built unoptimised on purpose (see Cargo.toml); not host-only.
LINKED_ON_PURPOSE = {"aws-sdk-dynamodb", "aws-sdk-secretsmanager", "aws-sdk-sts", "jsonschema"}


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.removeprefix("host: ")
    raise SystemExit("check-dev-profile: rustc -vV names no host")


def host_only(metadata: dict) -> set[str]:
    """The names of the packages reachable from the workspace only through a proc macro or a
    build dependency (a name also linked into some target is not host-only)."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}

    def is_proc_macro(pkg_id: str) -> bool:
        return any("proc-macro" in t["kind"] for t in packages[pkg_id]["targets"])

    linked, stack = set(), list(metadata["workspace_members"])
    while stack:
        pkg_id = stack.pop()
        if pkg_id in linked:
            continue
        linked.add(pkg_id)
        for dep in nodes[pkg_id]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "dev"} and not is_proc_macro(dep["pkg"]):
                stack.append(dep["pkg"])
    linked_names = {packages[i]["name"] for i in linked}
    return {packages[i]["name"] for i in nodes if i not in linked} - linked_names


def unoptimised(manifest: pathlib.Path) -> set[str]:
    """The names `[profile.dev.package]` gives `opt-level = 0`."""
    table = tomllib.loads(manifest.read_text(encoding="utf-8"))
    entries = table.get("profile", {}).get("dev", {}).get("package", {})
    return {name for name, settings in entries.items() if settings.get("opt-level") == 0}


def problems(host: set[str], listed: set[str]) -> list[str]:
    found = []
    missing = sorted(host - listed)
    if missing:
        found.append(
            "host-only crates that test builds would optimise; add them to [profile.dev.package] "
            "with opt-level = 0: " + ", ".join(missing)
        )
    stale = sorted(listed - host - LINKED_ON_PURPOSE)
    if stale:
        found.append(
            "[profile.dev.package] names crates that are not host-only (any more); remove them: "
            + ", ".join(stale)
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="Cargo.toml", type=pathlib.Path)
    args = parser.parse_args()
    metadata = json.loads(
        subprocess.run(
            [
                "cargo", "metadata", "--format-version", "1", "--all-features", "--locked",
                "--manifest-path", str(args.manifest), "--filter-platform", host_triple(),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    found = problems(host_only(metadata), unoptimised(args.manifest))
    for problem in found:
        print(f"check-dev-profile: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
