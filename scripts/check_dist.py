#!/usr/bin/env python3
"""Checks a release tarball as an operator would use it: unpacked into an empty directory, its
checksums verified, its systemd unit verified (where systemd-analyze exists), and the relay
started from it alone (no checkout, no cargo, a clean environment) to carry message journeys
end to end; stopped, it leaves no message row behind.

Usage: check_dist.py TARBALL LOADGEN_BIN
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

# The highest `systemd-analyze security` exposure the unit may have (0 best, 10 worst; below 2
# is what systemd calls "OK").
MAX_EXPOSURE = 2.0
EXPECTED = ["bin/ephemeral-chat-relay", "bin/ephemeral-chat", "site", "ephemeral-chat.service", "env.sample", "OPERATING.md", "SHA256SUMS"]


def fail(message):
    print(f"check_dist: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    tarball, loadgen = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="ec-dist-")
    try:
        check(tarball, loadgen, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(tarball, loadgen, work):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        if any(name.startswith("/") or ".." in name.split("/") for name in names):
            fail("the tarball has absolute or parent paths")
        archive.extractall(work, filter="data")
    (top,) = {name.split("/")[0] for name in names}
    root = os.path.join(work, top)
    for path in EXPECTED:
        if not os.path.exists(os.path.join(root, path)):
            fail(f"{path} is missing from the tarball")
    sums = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=root, capture_output=True, text=True)
    if sums.returncode != 0:
        fail(f"SHA256SUMS does not match: {sums.stdout}{sums.stderr}")
    listed = {line.split(None, 1)[1].strip() for line in open(os.path.join(root, "SHA256SUMS"))}
    on_disk = {
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    } - {"SHA256SUMS"}
    if listed != on_disk:
        fail(f"SHA256SUMS lists {sorted(listed ^ on_disk)} differently from the files")
    print(f"check_dist: {len(listed)} files, checksums match")

    check_unit(root, work)

    run = os.path.join(work, "run")  # an empty directory, far from any checkout
    os.mkdir(run)
    relay = os.path.join(root, "bin", "ephemeral-chat-relay")
    help_text = subprocess.run([relay, "--help"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd=run)
    for setting in ["TLS_CERT", "METRICS_ADDR", "LOG_FORMAT", "PGSSLMODE", "MAX_CONNECTIONS"]:
        if setting not in help_text.stdout:
            fail(f"--help does not name {setting}")

    port = free_port()
    data = os.path.join(run, "data")
    env = {
        "PATH": "/usr/bin:/bin",
        "PORT": str(port),
        "DATA_DIR": data,
        "LEPTOS_SITE_ROOT": os.path.join(root, "site"),
    }
    log_path = os.path.join(work, "relay.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen([relay], cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                fail(f"the relay did not start from the tarball: {open(log_path).read()}")
            time.sleep(0.1)
        status, page = get(f"{base}/")
        page = page.decode()
        if status != 200 or "/pkg/ephemeral-chat" not in page:
            fail("the landing page does not load the app's bundle")
        status, body = get(f"{base}/pkg/ephemeral-chat.wasm")
        if status != 200 or not body.startswith(b"\0asm"):
            fail("the app's WASM is not served from the tarball's site")
        journey = subprocess.run(
            [loadgen, "journey", "--url", f"ws://127.0.0.1:{port}/ws", "--rooms", "2", "--messages", "5"],
            capture_output=True, text=True, timeout=120, cwd=run,
        )
        if journey.returncode != 0:
            fail(f"the message journey failed: {journey.stdout}{journey.stderr}")
        report = json.loads(journey.stdout)["report"]
        print(f"check_dist: journeys through the unpacked relay: {report['completed']} messages sent, read and burned")
        check_cli(os.path.join(root, "bin", "ephemeral-chat"), base, run)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            fail("the relay did not stop on SIGTERM")
    if code != 0:
        fail(f"the relay exited {code}: {open(log_path).read()}")
    database = sqlite3.connect(os.path.join(data, "ephemeral-chat.db"))
    (rows,) = database.execute("SELECT COUNT(*) FROM messages").fetchone()
    database.close()
    if rows != 0:
        fail(f"{rows} message rows left behind")
    print("check_dist: the relay stopped cleanly and left no message row")


def check_cli(cli, base, run):
    """The tarball's terminal client: a fresh code, a message sent through the unpacked relay
    from standard input and received on standard output, and a usage error's exit code."""
    env = {"PATH": "/usr/bin:/bin"}
    new = subprocess.run([cli, "new", "--relay", base], capture_output=True, text=True, env=env, cwd=run, timeout=60)
    code = next((line.split()[1] for line in new.stdout.splitlines() if line.startswith("Code:")), None)
    if new.returncode != 0 or not code or f"{base}/room#{code}" not in new.stdout:
        fail(f"ephemeral-chat new: {new.stdout}{new.stderr}")
    secret = "token from the tarball"
    sent = subprocess.run([cli, "send", f"{base}/room#{code}", "--name", "ops"], input=secret + "\n",
                          capture_output=True, text=True, env=env, cwd=run, timeout=60)
    if sent.returncode != 0:
        fail(f"ephemeral-chat send exited {sent.returncode}: {sent.stderr}")
    got = subprocess.run([cli, "receive", code, "--relay", base, "--timeout", "30s"],
                         capture_output=True, text=True, env=env, cwd=run, timeout=60)
    if got.returncode != 0 or got.stdout != secret + "\n" or "From ops" not in got.stderr:
        fail(f"ephemeral-chat receive exited {got.returncode}: {got.stdout!r} {got.stderr}")
    usage = subprocess.run([cli, "send", code, "hi"], capture_output=True, text=True, env=env, cwd=run, timeout=60)
    if usage.returncode != 2:
        fail(f"a bare code without --relay exited {usage.returncode}, not 2")
    print("check_dist: the terminal client sent and received through the unpacked relay")


def check_unit(root, work):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("check_dist: no systemd-analyze on this machine: the unit's checks are left out")
        return
    # The unit names /opt/ephemeral-chat; verify it where this tarball was unpacked.
    unit = os.path.join(work, "ephemeral-chat.service")
    with open(os.path.join(root, "ephemeral-chat.service")) as source, open(unit, "w") as out:
        out.write(source.read().replace("/opt/ephemeral-chat", root))
    verify = subprocess.run([analyze, "verify", unit], capture_output=True, text=True)
    problems = [line for line in (verify.stdout + verify.stderr).splitlines() if "ephemeral-chat" in line]
    if verify.returncode != 0 or problems:
        fail(f"systemd-analyze verify: {verify.stdout}{verify.stderr}")
    security = subprocess.run([analyze, "security", "--offline=yes", unit], capture_output=True, text=True)
    last = (security.stdout.strip().splitlines() or [""])[-1]
    try:
        exposure = float(last.split(":")[1].split()[0])
    except (IndexError, ValueError):
        fail(f"systemd-analyze security said: {security.stdout}{security.stderr}")
    if exposure > MAX_EXPOSURE:
        fail(f"the unit's exposure is {exposure}, above {MAX_EXPOSURE}: {security.stdout}")
    print(f"check_dist: systemd-analyze verify passes; exposure {exposure} (0 best, 10 worst)")


if __name__ == "__main__":
    main()
