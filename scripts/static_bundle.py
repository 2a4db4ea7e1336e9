#!/usr/bin/env python3
"""Trunk hooks of the static bundle (Trunk.toml).

    static_bundle.py --check-origin   pre_build (and `make static`): EC_RELAY_ORIGIN must be a
                                      bare origin, or the build stops with one line saying why.
    static_bundle.py                  post_build: finishes the bundle in $TRUNK_STAGING_DIR.

Finishing the bundle:
- Puts the loader (frontend/loader.js) where Trunk left its marker (Trunk.toml's
  pattern_script), with the JS's and the WASM's names and SHA-384 digests: the loader starts the
  app only from bytes that match them.
- Puts a Content-Security-Policy <meta> first in <head>: scripts only the loader (by its
  SHA-256) and blob: (the loader imports the verified JS from one), no workers, WASM
  compilation, and connections only to the bundle's origin and the relay named by
  EC_RELAY_ORIGIN.
- Copies index.html to room/index.html, so the invite path /room works on any static host.
- Writes SHA256SUMS (sha256sum format) over every file, for publishing and checking.
"""
import base64
import hashlib
import ipaddress
import json
import os
import pathlib
import re
import string
import sys

LOADER = pathlib.Path(__file__).resolve().parent.parent / "frontend" / "loader.js"
LOADER_DATA = "__EC_BUNDLE__"
MARKER = re.compile(r'<script data-ec-loader data-js="([^"]+)" data-wasm="([^"]+)"></script>')
EXPECTED = "expected scheme://host[:port] with scheme http or https, e.g. https://relay.example"
HOST_CHARS = set(string.ascii_letters + string.digits + "-")


class BundleError(Exception):
    """Why the bundle cannot be built, as the one line the build prints."""


def check_host(host: str) -> None:
    """A DNS name of letters, digits and hyphens, or a dotted-quad IPv4 address."""
    if not host:
        raise ValueError("it has no host")
    labels = host.split(".")
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv4 address") from None
        return
    if len(host) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise ValueError(f"{host!r} is not a host name (an empty or overlong label, or a trailing dot)")
    for label in labels:
        if not set(label) <= HOST_CHARS or label[0] == "-" or label[-1] == "-":
            raise ValueError(f"{host!r} is not a host name (letters, digits and inner hyphens only)")


def check_port(port: str) -> None:
    """Empty, or a colon and a decimal port from 1 to 65535 without leading zeros."""
    if not port:
        return
    digits = port[1:]
    if port[0] != ":" or not digits:
        raise ValueError(f"{port!r} after the host is not a :port")
    if not digits.isdigit() or digits[0] == "0" or int(digits) > 65535:
        raise ValueError(f"{digits!r} is not a port (1 to 65535)")


def parse_relay_origin(value: str) -> str:
    """`value` when it is a bare http(s) origin (scheme, host, optional port, nothing else);
    otherwise ValueError saying what is wrong with it. The origin goes verbatim into the page's
    CSP and into the app (which makes the relay's ws(s)://host[:port]/ws of it), so anything
    more than an origin would end up meaning something else there."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("it must start with https:// or http:// (lowercase)")
    if any(c not in string.printable or c in string.whitespace for c in rest):
        raise ValueError("it has a space, a control or a non-ASCII character (write a name as xn--…)")
    for char, what in (("/", "a path"), ("?", "a query"), ("#", "a fragment"), ("@", "user info"), ("\\", "a backslash")):
        if char in rest:
            raise ValueError(f"it has {what} ({char!r})")
    if rest.startswith("["):
        address, closed, port = rest[1:].partition("]")
        try:
            if not closed or "%" in address:
                raise ValueError
            ipaddress.IPv6Address(address)
        except ValueError:
            raise ValueError(f"{rest!r} is not a bracketed IPv6 address") from None
    else:
        host, colon, digits = rest.partition(":")
        check_host(host)
        port = colon + digits
    check_port(port)
    return value


def relay_origin_from_env() -> str:
    origin = os.environ.get("EC_RELAY_ORIGIN")
    if not origin:
        raise BundleError("set EC_RELAY_ORIGIN to the relay's origin, e.g. https://relay.example")
    try:
        return parse_relay_origin(origin)
    except ValueError as why:
        raise BundleError(f"EC_RELAY_ORIGIN={origin!r} is not a bare origin: {why}; {EXPECTED}") from None


def relay_ws_origin(origin: str) -> str:
    scheme, _, rest = origin.partition("://")
    return {"https": "wss", "http": "ws"}[scheme] + "://" + rest


def sri(path: pathlib.Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def render_loader(stage: pathlib.Path, js_url: str, wasm_url: str) -> str:
    """The loader's inline <script>, naming the two files and their digests."""
    if (stage / "snippets").exists():
        raise BundleError(
            "wasm-bindgen wrote snippets/ (JS modules its bindings import), which the loader cannot "
            "import from a blob: URL; frontend/loader.js would have to verify and map them too"
        )
    files = {}
    for kind, url in (("js", js_url), ("wasm", wasm_url)):
        path = stage / url.lstrip("/")
        if not path.is_file():
            raise BundleError(f"index.html names {url}, which Trunk did not write")
        files[kind] = {"url": url, "integrity": sri(path)}
    source = LOADER.read_text()
    if source.count(LOADER_DATA) != 1 or "</script" in source.lower():
        raise BundleError(f"{LOADER} must hold {LOADER_DATA} once and no </script")
    data = json.dumps(files, separators=(",", ":")).replace("<", "\\u003c")
    return '<script type="module">\n' + source.replace(LOADER_DATA, data) + "</script>"


def content_security_policy(html: str, origin: str) -> str:
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline
    )
    return (
        "default-src 'none'; "
        f"script-src {hashes} blob: 'wasm-unsafe-eval'; "
        # blob: is for the loader's import of the checked JS; workers would fall back to it.
        "worker-src 'none'; "
        "style-src 'self'; "
        f"connect-src 'self' {relay_ws_origin(origin)}; "
        "img-src 'self' blob:; base-uri 'none'; form-action 'self'"
    )


def finish(stage: pathlib.Path, origin: str) -> None:
    index = stage / "index.html"
    html = index.read_text()
    markers = MARKER.findall(html)
    if len(markers) != 1:
        raise BundleError("index.html must hold one loader marker (Trunk.toml's pattern_script)")
    loader = render_loader(stage, *markers[0])
    html = MARKER.sub(lambda _: loader, html)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(html, origin)}">'
    html, n = re.subn(r"<head>", lambda _: "<head>" + meta, html, count=1)
    if n != 1:
        raise BundleError("index.html has no <head>")
    index.write_text(html)
    (stage / "room").mkdir(exist_ok=True)
    (stage / "room" / "index.html").write_text(html)

    files = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(stage).as_posix()}" for p in files]
    (stage / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    try:
        origin = relay_origin_from_env()
        if argv == ["--check-origin"]:
            return 0
        if argv:
            raise BundleError(f"unknown arguments {argv}; see {__file__}")
        finish(pathlib.Path(os.environ["TRUNK_STAGING_DIR"]), origin)
    except BundleError as why:
        print(f"static bundle: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
