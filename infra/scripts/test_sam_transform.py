"""Tests of sam-transform.py's own checks: each breaks template.yaml in one way the check exists
for, and expects that one problem to be reported (`make template-lint` runs them).

    .venv/bin/python -m unittest infra/scripts/test_sam_transform.py
"""

import importlib.util
import os
import pathlib
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
TEMPLATE = (HERE.parent.parent / "template.yaml").read_text(encoding="utf-8")
ARN = "arn:aws:lambda:us-east-1:123456789012:capacity-provider:test"
ON_MANAGED_INSTANCES = {"CapacityProviderArn": ARN}

spec = importlib.util.spec_from_file_location("sam_transform", HERE / "sam-transform.py")
sam_transform = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sam_transform)

TRANSFORMS = "  - AWS::LanguageExtensions\n  - AWS::Serverless-2016-10-31\n"
FIRST_CONFIG = "      CapacityProviderConfig: !If"
CONFIG_END = "        - !Ref AWS::NoValue\n"
FIRST_MEMORY = "      MemorySize: !If [OnManagedInstances, 2048, 256]\n"


def changed(old, new):
    """template.yaml with the first `old` replaced by `new` (which must be there)."""
    assert old in TEMPLATE, old
    return TEMPLATE.replace(old, new, 1)


def without_first_capacity_provider_config():
    start = TEMPLATE.index(FIRST_CONFIG)
    end = TEMPLATE.index(CONFIG_END, start) + len(CONFIG_END)
    return TEMPLATE[:start] + TEMPLATE[end:]


class SamTransformChecks(unittest.TestCase):
    def problems(self, text, parameters):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            return sam_transform.run(f.name, parameters)
        finally:
            os.unlink(f.name)

    def test_the_template_passes_on_standard_lambda_and_on_managed_instances(self):
        self.assertEqual(self.problems(TEMPLATE, {}), [])
        self.assertEqual(self.problems(TEMPLATE, ON_MANAGED_INSTANCES), [])

    def test_a_function_without_its_capacity_provider_config_is_reported_on_managed_instances(
        self,
    ):
        text = without_first_capacity_provider_config()
        problems = self.problems(text, ON_MANAGED_INSTANCES)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("runs on no capacity provider", problems[0])

    def test_a_function_under_the_smallest_managed_size_is_reported(self):
        text = changed(FIRST_MEMORY, "      MemorySize: 256\n")
        problems = self.problems(text, ON_MANAGED_INSTANCES)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("MemorySize 256", problems[0])

    def test_a_function_on_a_capacity_provider_without_the_parameter_is_reported(self):
        # The first function's configuration switched on by another condition, with its own ARN.
        text = changed("        - OnManagedInstances\n", "        - HasPrograms\n")
        own_arn = f"        - Arn: {ARN}\n"
        text = text.replace("        - Arn: !Ref CapacityProviderArn\n", own_arn, 1)
        problems = self.problems(text, {"ProgramsJson": "[]"})
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"runs on capacity provider '{ARN}', not on none", problems[0])

    def test_the_language_extensions_after_the_sam_transform_are_refused(self):
        text = changed(TRANSFORMS, "  - AWS::Serverless-2016-10-31\n  - AWS::LanguageExtensions\n")
        problems = self.problems(text, {})
        self.assertEqual(
            problems,
            ["AWS::LanguageExtensions must be listed before AWS::Serverless-2016-10-31"],
        )

    def test_without_the_language_extensions_the_sam_transform_refuses_the_if(self):
        problems = self.problems(changed(TRANSFORMS, "  - AWS::Serverless-2016-10-31\n"), {})
        self.assertTrue(problems)
        self.assertTrue(all("CapacityProviderConfig" in p for p in problems), problems)


if __name__ == "__main__":
    unittest.main()
