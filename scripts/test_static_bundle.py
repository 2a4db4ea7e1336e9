"""Tests of the static bundle's Trunk hooks (static_bundle.py): the relay origin check, and the
page they finish: the loader with the files' digests, the policy that pins it, SHA256SUMS.

    python3 -m unittest discover --start-directory scripts --pattern 'test_*.py'
"""
import base64
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import static_bundle

SCRIPT = pathlib.Path(static_bundle.__file__)


def run_hook(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "EC_RELAY_ORIGIN"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env={**environment, **env}, capture_output=True, text=True
    )


class RelayOrigin(unittest.TestCase):
    def test_bare_origins_are_accepted(self):
        for origin in (
            "https://relay.example",
            "http://127.0.0.1:3110",
            "https://relay.example:8443",
            "https://xn--bcher-kva.example",
            "https://Relay.Example",
            "http://localhost:1",
            "https://[2001:db8::1]:443",
            "http://[::1]",
        ):
            with self.subTest(origin=origin):
                self.assertEqual(static_bundle.parse_relay_origin(origin), origin)

    def test_anything_more_or_less_than_an_origin_is_refused_with_the_reason(self):
        for origin, reason in (
            ("relay.example", "https:// or http://"),
            ("ws://relay.example", "https:// or http://"),
            ("HTTPS://relay.example", "https:// or http://"),
            ("javascript://relay.example", "https:// or http://"),
            ("https://", "no host"),
            ("https://:443", "no host"),
            ("https://relay.example/", "a path"),
            ("https://relay.example/ws", "a path"),
            ("https://relay.example?x=1", "a query"),
            ("https://relay.example#top", "a fragment"),
            ("https://user:pw@relay.example", "user info"),
            ("https://relay.example\\evil.example", "a backslash"),
            ("https://relay.example ", "a space"),
            ("https://relay.example\n", "a space"),
            ("https://relay.example; script-src *", "a space"),
            ("https://bücher.example", "non-ASCII"),
            ("https://relay.example.", "not a host name"),
            ("https://relay..example", "not a host name"),
            ("https://-relay.example", "not a host name"),
            ("https://relay_1.example", "not a host name"),
            ("https://relay.example;x", "not a host name"),
            ("https://relay.example'", "not a host name"),
            ("https://*.example", "not a host name"),
            ("http://127.0.0.1.5", "not an IPv4 address"),
            ("http://256.0.0.1", "not an IPv4 address"),
            ("http://3110", "not an IPv4 address"),
            ("https://relay.example:", "not a :port"),
            ("https://relay.example:0", "not a port"),
            ("https://relay.example:65536", "not a port"),
            ("https://relay.example:0443", "not a port"),
            ("https://relay.example:44x", "not a port"),
            ("https://relay.example:443:443", "not a port"),
            ("https://[::1", "not a bracketed IPv6 address"),
            ("https://[fe80::1%eth0]", "not a bracketed IPv6 address"),
            ("https://[relay.example]", "not a bracketed IPv6 address"),
            ("https://[::1]x", "not a :port"),
        ):
            with self.subTest(origin=origin):
                with self.assertRaises(ValueError) as refused:
                    static_bundle.parse_relay_origin(origin)
                self.assertIn(reason, str(refused.exception))

    def test_the_build_check_stops_with_one_line_naming_the_value_and_the_form(self):
        result = run_hook(["--check-origin"], EC_RELAY_ORIGIN="https://relay.example/ws")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            "static bundle: EC_RELAY_ORIGIN='https://relay.example/ws' is not a bare origin: it has a "
            "path ('/'); expected scheme://host[:port] with scheme http or https, e.g. https://relay.example\n",
        )
        self.assertEqual(result.stdout, "")

    def test_the_build_check_stops_when_the_origin_is_missing(self):
        result = run_hook(["--check-origin"])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.splitlines()), 1)
        self.assertIn("set EC_RELAY_ORIGIN", result.stderr)

    def test_the_build_check_passes_a_bare_origin_silently(self):
        result = run_hook(["--check-origin"], EC_RELAY_ORIGIN="http://127.0.0.1:3110")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))

    def test_the_page_is_not_finished_for_a_bad_origin(self):
        with tempfile.TemporaryDirectory() as stage:
            write_stage(pathlib.Path(stage))
            result = run_hook([], EC_RELAY_ORIGIN="https://relay.example/", TRUNK_STAGING_DIR=stage)
            self.assertEqual(result.returncode, 1)
            self.assertFalse((pathlib.Path(stage) / "SHA256SUMS").exists())


JS, WASM = b"export default async function init() {}\n", b"\0asm\1\0\0\0"
PAGE = (
    "<!DOCTYPE html><html><head><title>t</title>\n"
    '<script data-ec-loader data-js="/app-1a.js" data-wasm="/app-1a_bg.wasm"></script>\n'
    '<link rel="stylesheet" href="/main-2b.css" integrity="sha384-x" crossorigin="anonymous"/>'
    '</head><body><p class="boot" role="status">Loading…</p></body></html>\n'
)


def write_stage(stage: pathlib.Path, page: str = PAGE) -> None:
    (stage / "index.html").write_text(page)
    (stage / "app-1a.js").write_bytes(JS)
    (stage / "app-1a_bg.wasm").write_bytes(WASM)
    (stage / "main-2b.css").write_text("body {}\n")


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


class FinishedPage(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.stage = pathlib.Path(self.directory.name)

    def tearDown(self):
        self.directory.cleanup()

    def finish(self, page: str = PAGE) -> subprocess.CompletedProcess:
        write_stage(self.stage, page)
        return run_hook([], EC_RELAY_ORIGIN="https://relay.example:8443", TRUNK_STAGING_DIR=str(self.stage))

    def test_the_loader_names_each_file_with_its_sha384(self):
        self.assertEqual(self.finish().returncode, 0)
        html = (self.stage / "index.html").read_text()
        self.assertNotIn("data-ec-loader", html)
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
        self.assertEqual(len(scripts), 1)
        attributes, loader = scripts[0]
        self.assertEqual(attributes, ' type="module"')
        data = json.loads(re.search(r"^const BUNDLE = (.*);$", loader, flags=re.M).group(1))
        self.assertEqual(
            data,
            {
                "js": {"url": "/app-1a.js", "integrity": sri(JS)},
                "wasm": {"url": "/app-1a_bg.wasm", "integrity": sri(WASM)},
            },
        )
        self.assertIn("fetch(file.url, { integrity: file.integrity })", loader)
        self.assertIn("window.top !== window.self", loader)

    def test_the_policy_allows_the_loader_by_hash_and_blob_scripts_and_nothing_else(self):
        self.assertEqual(self.finish().returncode, 0)
        html = (self.stage / "index.html").read_text()
        loader = re.search(r"<script[^>]*>(.*?)</script>", html, flags=re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(loader.encode()).digest()).decode()
        policy = re.search(r'<head><meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
        self.assertEqual(
            policy,
            f"default-src 'none'; script-src 'sha256-{digest}' blob: 'wasm-unsafe-eval'; worker-src 'none'; style-src 'self'; "
            "connect-src 'self' wss://relay.example:8443; img-src 'self' blob:; base-uri 'none'; form-action 'self'",
        )

    def test_room_is_the_same_page_and_every_file_is_in_sha256sums(self):
        self.assertEqual(self.finish().returncode, 0)
        html = (self.stage / "index.html").read_bytes()
        self.assertEqual((self.stage / "room" / "index.html").read_bytes(), html)
        sums = (self.stage / "SHA256SUMS").read_text().splitlines()
        expected = {
            name: hashlib.sha256((self.stage / name).read_bytes()).hexdigest()
            for name in ("app-1a.js", "app-1a_bg.wasm", "index.html", "main-2b.css", "room/index.html")
        }
        self.assertEqual(sums, [f"{digest}  {name}" for name, digest in sorted(expected.items())])

    def test_wasm_bindgen_snippets_stop_the_build(self):
        (self.stage / "snippets").mkdir()
        result = self.finish()
        self.assertEqual(result.returncode, 1)
        self.assertIn("snippets/", result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1)

    def test_a_page_without_the_loader_marker_stops_the_build(self):
        result = self.finish(PAGE.replace("data-ec-loader ", ""))
        self.assertEqual(result.returncode, 1)
        self.assertIn("loader marker", result.stderr)


if __name__ == "__main__":
    unittest.main()
