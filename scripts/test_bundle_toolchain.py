"""Tests of the static bundle's pinned toolchain (bundle_toolchain.sh), run against stand-in
rustc, trunk, wasm-bindgen and wasm-opt commands that report the versions each test chooses.

    python3 -m unittest discover --start-directory scripts --pattern 'test_*.py'
"""
import os
import pathlib
import re
import stat
import subprocess
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PINS = dict(re.findall(r"^(EC_BUNDLE_\w+)=(\S+)", (ROOT / "scripts" / "bundle_toolchain.sh").read_text(), flags=re.M))
BINDGEN = re.search(r'name = "wasm-bindgen"\nversion = "([^"]+)"', (ROOT / "Cargo.lock").read_text()).group(1)

# Each stand-in prints what its FAKE_* variable says, as the real tool formats it.
FAKES = {
    "rustc": """#!/bin/sh
if [ "$1" = --print ]; then echo "$FAKE_SYSROOT"; exit 0; fi
printf 'rustc %s (%.9s 2026-04-14)\\nbinary: rustc\\ncommit-hash: %s\\nrelease: %s\\n' \
    "$FAKE_RUSTC" "$FAKE_COMMIT" "$FAKE_COMMIT" "$FAKE_RUSTC"
""",
    "trunk": '#!/bin/sh\necho "trunk $FAKE_TRUNK"\n',
    "wasm-bindgen": '#!/bin/sh\necho "wasm-bindgen $FAKE_BINDGEN"\n',
    "wasm-opt": '#!/bin/sh\necho "wasm-opt version $FAKE_BINARYEN (version_$FAKE_BINARYEN)"\n',
}


class PinnedToolchain(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        home = pathlib.Path(self.directory.name)
        self.bin = home / "bin"
        self.bin.mkdir()
        for name, text in FAKES.items():
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(stat.S_IRWXU)
        sysroot = home / "sysroot"
        std = sysroot / "lib" / "rustlib" / "wasm32-unknown-unknown" / "lib"
        std.mkdir(parents=True)
        (std / "libstd-0123.rlib").write_bytes(b"")
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(home),
            "CARGO_TARGET_DIR": "/var/cache/ec-target",
            "FAKE_SYSROOT": str(sysroot),
            "FAKE_RUSTC": PINS["EC_BUNDLE_RUST"],
            "FAKE_COMMIT": PINS["EC_BUNDLE_RUSTC_COMMIT"],
            "FAKE_TRUNK": PINS["EC_BUNDLE_TRUNK"],
            "FAKE_BINDGEN": BINDGEN,
            "FAKE_BINARYEN": PINS["EC_BUNDLE_BINARYEN"],
        }

    def tearDown(self):
        self.directory.cleanup()

    def choose(self, mode: str, **env: str) -> subprocess.CompletedProcess:
        script = (
            f"set -euo pipefail; source scripts/env.sh; PATH={self.bin}:$PATH; source scripts/bundle_toolchain.sh; "
            f'ec_bundle_toolchain {mode}; echo "toolchain=${{RUSTUP_TOOLCHAIN:-}}"; '
            'echo "flags=$CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS"'
        )
        return subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env={**self.env, **env}, capture_output=True, text=True
        )

    def test_the_pinned_tools_build_with_the_pinned_toolchain_and_neutral_paths(self):
        result = self.choose("strict")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertIn(f"toolchain={PINS['EC_BUNDLE_RUST']}\n", result.stdout)
        home = self.env["HOME"]
        self.assertIn(
            f"flags=--remap-path-prefix={ROOT}=/ephemeral-chat --remap-path-prefix={home}/.cargo=/cargo "
            "--remap-path-prefix=/var/cache/ec-target=/ephemeral-chat/target\n",
            result.stdout,
        )

    def test_another_rustc_is_refused_printing_the_expected_and_found_versions(self):
        result = self.choose("strict", FAKE_RUSTC="1.96.0")
        self.assertEqual(result.returncode, 1)
        pin, commit = PINS["EC_BUNDLE_RUST"], PINS["EC_BUNDLE_RUSTC_COMMIT"]
        self.assertIn(
            f"make static: rustc (toolchain {pin}): expected rustc {pin}, commit {commit}; "
            f"found rustc 1.96.0 ({commit[:9]} 2026-04-14), commit {commit}\n",
            result.stderr,
        )
        self.assertIn("make static: refusing to build", result.stderr)
        self.assertNotIn("toolchain=", result.stdout)

    def test_the_same_version_from_another_commit_is_refused(self):
        result = self.choose("strict", FAKE_COMMIT="0" * 40)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"found rustc {PINS['EC_BUNDLE_RUST']} (000000000 2026-04-14), commit {'0' * 40}", result.stderr)

    def test_a_toolchain_without_the_wasm32_target_is_refused(self):
        result = self.choose("strict", FAKE_SYSROOT="/nonexistent")
        self.assertEqual(result.returncode, 1)
        self.assertIn("expected the wasm32-unknown-unknown target; found it missing", result.stderr)

    def test_other_trunk_wasm_bindgen_or_binaryen_versions_are_refused(self):
        for variable, value, line in (
            ("FAKE_TRUNK", "0.21.13", f"trunk: expected trunk {PINS['EC_BUNDLE_TRUNK']}; found trunk 0.21.13"),
            ("FAKE_BINDGEN", "0.2.1", f"wasm-bindgen: expected wasm-bindgen {BINDGEN} (Cargo.lock); found wasm-bindgen 0.2.1"),
            ("FAKE_BINARYEN", "117", "wasm-opt: expected binaryen version 116; found wasm-opt version 117 (version_117)"),
            ("FAKE_BINARYEN", "1160", "wasm-opt: expected binaryen version 116; found wasm-opt version 1160"),
        ):
            with self.subTest(variable=variable, value=value):
                result = self.choose("strict", **{variable: value})
                self.assertEqual(result.returncode, 1)
                self.assertIn(f"make static: {line}", result.stderr)

    def test_compiler_flags_from_the_environment_are_refused(self):
        for variable in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL", "RUSTC"):
            with self.subTest(variable=variable):
                result = self.choose("strict", **{variable: "x"})
                self.assertEqual(result.returncode, 1)
                self.assertIn(f"make static: {variable}: expected unset; found it set", result.stderr)

    def test_the_test_bundle_says_what_differs_and_builds_anyway(self):
        result = self.choose("lenient", FAKE_TRUNK="0.21.13")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("make static-e2e: trunk: expected trunk", result.stderr)
        self.assertIn("make static-e2e: building anyway", result.stderr)
        self.assertIn("flags=--remap-path-prefix=", result.stdout)


if __name__ == "__main__":
    unittest.main()
