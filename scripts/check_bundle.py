#!/usr/bin/env python3
"""Checks a served static bundle against published hashes.

    python3 scripts/check_bundle.py https://chat.example SHA256SUMS

Downloads every file SHA256SUMS lists from the given origin and compares its SHA-256. Exit 0
when all match; otherwise names each file that differs or is missing, and exits 1. `index.html`
is also checked as served at `/` and `room/index.html` as served at `/room`, the addresses
people open.
"""
import hashlib
import sys
import urllib.error
import urllib.request


def fetch(url: str) -> bytes | None:
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return None


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, sums = sys.argv[1].rstrip("/"), sys.argv[2]
    expected = {}
    for line in open(sums, encoding="utf-8"):
        digest, _, name = line.rstrip("\n").partition("  ")
        if digest and name:
            expected[name] = digest
    if not expected:
        print(f"{sums}: no hashes", file=sys.stderr)
        return 2
    paths = {name: "/" + name for name in expected}
    for alias, name in (("/", "index.html"), ("/room", "room/index.html")):
        if name in expected:
            paths[f"{name} (as {alias})"] = alias
            expected[f"{name} (as {alias})"] = expected[name]
    bad = 0
    for label, path in sorted(paths.items()):
        body = fetch(base + path)
        if body is None:
            print(f"MISSING  {label}")
            bad += 1
        elif hashlib.sha256(body).hexdigest() != expected[label]:
            print(f"CHANGED  {label}")
            bad += 1
    print(f"{len(paths) - bad} of {len(paths)} files match" + ("" if bad else ": the bundle is the published one"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
