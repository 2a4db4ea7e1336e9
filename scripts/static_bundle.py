#!/usr/bin/env python3
"""Trunk post-build hook: finishes the static bundle in $TRUNK_STAGING_DIR.

- Puts a Content-Security-Policy <meta> first in <head>: scripts only from the bundle's origin
  plus Trunk's inline loader (by its SHA-256), WASM compilation, and connections only to the
  bundle's origin and the relay named by EC_RELAY_ORIGIN.
- Copies index.html to room/index.html, so the invite path /room works on any static host.
- Writes SHA256SUMS (sha256sum format) over every file, for publishing and checking.
"""
import base64
import hashlib
import os
import pathlib
import re
import sys


def relay_ws_origin(origin: str) -> str:
    origin = origin.rstrip("/")
    if origin.startswith("https://"):
        return "wss://" + origin[len("https://"):]
    if origin.startswith("http://"):
        return "ws://" + origin[len("http://"):]
    sys.exit(f"static bundle: EC_RELAY_ORIGIN must start with https:// or http://, got {origin!r}")


def main() -> None:
    origin = os.environ.get("EC_RELAY_ORIGIN")
    if not origin:
        sys.exit("static bundle: set EC_RELAY_ORIGIN to the relay's origin, e.g. https://relay.example")
    stage = pathlib.Path(os.environ["TRUNK_STAGING_DIR"])
    index = stage / "index.html"
    html = index.read_text()

    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline
    )
    policy = (
        "default-src 'none'; "
        f"script-src 'self' {hashes} 'wasm-unsafe-eval'; "
        "style-src 'self'; "
        f"connect-src 'self' {relay_ws_origin(origin)}; "
        "img-src 'self'; base-uri 'none'; form-action 'self'"
    )
    meta = f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    html, n = re.subn(r"<head>", "<head>" + meta, html, count=1)
    if n != 1:
        sys.exit("static bundle: index.html has no <head>")
    index.write_text(html)
    (stage / "room").mkdir(exist_ok=True)
    (stage / "room" / "index.html").write_text(html)

    files = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(stage).as_posix()}" for p in files]
    (stage / "SHA256SUMS").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
