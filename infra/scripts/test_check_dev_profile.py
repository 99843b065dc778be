"""Tests of check-dev-profile.py on small made-up dependency graphs (`make build-checks` runs
them; the script itself then checks the real one).

    .venv/bin/python -m unittest infra/scripts/test_check_dev_profile.py
"""

import importlib.util
import pathlib
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("check_dev_profile", HERE / "check-dev-profile.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def package(name, kind="lib"):
    return {"id": name, "name": name, "targets": [{"kind": [kind]}]}


def dep(name, kind=None):
    return {"pkg": name, "dep_kinds": [{"kind": kind}]}


# app links serde and uses serde_derive (a proc macro on syn); its build script uses cc; both syn
# and app use memchr. The test-only crate comes in as a dev-dependency.
GRAPH = {
    "workspace_members": ["app"],
    "packages": [
        package("app"),
        package("serde"),
        package("serde_derive", "proc-macro"),
        package("syn"),
        package("cc"),
        package("memchr"),
        package("proptest"),
    ],
    "resolve": {
        "nodes": [
            {"id": "app", "deps": [dep("serde"), dep("serde_derive"), dep("cc", "build"),
                                   dep("memchr"), dep("proptest", "dev")]},
            {"id": "serde", "deps": []},
            {"id": "serde_derive", "deps": [dep("syn")]},
            {"id": "syn", "deps": [dep("memchr")]},
            {"id": "cc", "deps": []},
            {"id": "memchr", "deps": []},
            {"id": "proptest", "deps": []},
        ]
    },
}


class HostOnly(unittest.TestCase):
    def test_proc_macros_build_helpers_and_what_only_they_use_are_host_only(self):
        self.assertEqual(check.host_only(GRAPH), {"serde_derive", "syn", "cc"})

    def test_a_crate_also_linked_into_a_target_or_a_test_is_not(self):
        host = check.host_only(GRAPH)
        for linked in ("app", "serde", "memchr", "proptest"):
            self.assertNotIn(linked, host)


class Problems(unittest.TestCase):
    def test_the_exact_list_passes_beside_the_crates_linked_on_purpose(self):
        listed = {"serde_derive", "syn", "cc", "jsonschema", "aws-sdk-dynamodb"}
        self.assertEqual(check.problems({"serde_derive", "syn", "cc"}, listed), [])

    def test_a_missing_host_only_crate_is_named(self):
        (problem,) = check.problems({"serde_derive", "syn", "cc"}, {"serde_derive", "cc"})
        self.assertIn("would optimise", problem)
        self.assertTrue(problem.endswith(": syn"), problem)

    def test_a_listed_crate_that_is_not_host_only_is_named(self):
        (problem,) = check.problems({"syn"}, {"syn", "serde"})
        self.assertIn("not host-only", problem)
        self.assertTrue(problem.endswith(": serde"), problem)

    def test_only_entries_at_opt_level_0_count_as_listed(self):
        with tempfile.TemporaryDirectory() as tmp:
            manifest = pathlib.Path(tmp) / "Cargo.toml"
            manifest.write_text(
                '[profile.dev.package]\n"*" = { opt-level = 1, debug = false }\n'
                "syn.opt-level = 0\nsha2.opt-level = 3\n",
                encoding="utf-8",
            )
            self.assertEqual(check.unoptimised(manifest), {"syn"})


if __name__ == "__main__":
    unittest.main()
