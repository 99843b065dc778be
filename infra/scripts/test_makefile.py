"""Tests of the Makefile's promise about bootstraps (`make -n`, nothing is built or run): every
target that runs them builds them one way per profile, so that after `make test` or `make
bootstraps` nothing is rebuilt, and `make invoke` without PROFILE runs the ones built last.

    .venv/bin/python -m unittest infra/scripts/test_makefile.py
"""

import os
import pathlib
import subprocess
import tempfile
import time
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
INVOKE = ["invoke", "FN=jwks", "EVENT=events/jwks.json"]


def planned(target_dir, *args):
    """The commands `make -n` would run for `args`, with cargo's target directory `target_dir`."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    # Run by `make test`: the outer make's flags and level must not reach this one.
    for name in ("PROFILE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.splitlines()


def cargo_flags(lines, verb):
    """The flags of every `cargo <verb>` command among `lines` (wrappers before it dropped)."""
    found = []
    for line in lines:
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if word.endswith("cargo") and words[i + 1] == verb:
                found.append(" ".join(words[i + 2 :]))
    return found


def emulator_of(lines):
    """The lambda-emu binary a plan runs."""
    return [w for line in lines for w in line.split() if w.endswith("/lambda-emu")]


class Bootstraps(unittest.TestCase):
    def setUp(self):
        self.target = pathlib.Path(tempfile.mkdtemp(prefix="make-plan-"))
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", str(self.target)], check=False))

    def built(self, profile, at):
        path = self.target / profile / "lambda-emu"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (at, at))

    def test_the_debug_bootstraps_are_the_ones_make_test_builds(self):
        tested = cargo_flags(planned(self.target, "test"), "test")
        self.assertIn("--workspace --all-features --all-targets", tested)
        for plan in (
            planned(self.target, *INVOKE, "PROFILE=dev"),
            planned(self.target, "emulator"),
        ):
            self.assertEqual(cargo_flags(plan, "build"), ["--workspace --all-features --all-targets"])

    def test_the_release_bootstraps_are_built_one_way_by_every_target_that_runs_them(self):
        (bootstraps,) = cargo_flags(planned(self.target, "bootstraps"), "build")
        self.assertIn("-p lambda-emu", bootstraps)
        for plan in (
            planned(self.target, *INVOKE, "PROFILE=release"),
            planned(self.target, "emulator", "PROFILE=release"),
            planned(self.target, "bench"),
        ):
            self.assertEqual(cargo_flags(plan, "build"), [bootstraps])

    def test_without_a_profile_invoke_runs_the_bootstraps_built_last(self):
        now = time.time()
        # Nothing built yet: the debug build, the cheaper one.
        self.assertEqual(emulator_of(planned(self.target, *INVOKE)), [f"{self.target}/debug/lambda-emu"])
        self.built("release", now - 60)
        self.assertEqual(emulator_of(planned(self.target, *INVOKE)), [f"{self.target}/release/lambda-emu"])
        self.built("debug", now - 30)
        self.assertEqual(emulator_of(planned(self.target, *INVOKE)), [f"{self.target}/debug/lambda-emu"])
        self.built("release", now)
        plan = planned(self.target, *INVOKE)
        self.assertEqual(emulator_of(plan), [f"{self.target}/release/lambda-emu"])
        self.assertEqual(len(cargo_flags(plan, "build")), 1)
        self.assertIn("--release", cargo_flags(plan, "build")[0])

    def test_a_profile_given_wins_over_the_one_built_last(self):
        self.built("release", time.time())
        plan = planned(self.target, *INVOKE, "PROFILE=dev")
        self.assertEqual(emulator_of(plan), [f"{self.target}/debug/lambda-emu"])


if __name__ == "__main__":
    unittest.main()
