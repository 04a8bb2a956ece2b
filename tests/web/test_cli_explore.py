"""``seethrough explore`` from the command line: it prints its URL, serves the views, binds
127.0.0.1 unless told otherwise, and warns when it is reachable from elsewhere."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seethrough.cli import app


def _serve(*args: str):
    script = Path(sys.executable).with_name("seethrough")  # the console script pip installed beside python
    proc = subprocess.Popen([str(script), "explore", "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # wait for the URL line: the server is listening once it is printed
        lines.append(line)
        if "seethrough explorer:" in line:
            break
    return proc, "".join(lines)


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_explore_prints_its_url_and_serves(host, warned):
    proc, out = _serve("--model", "lenet-digits", "--port", "0", "--host", host, "--threads", "1")
    try:
        url = re.search(r"http://\S+", out).group(0)
        assert ("no authentication" in out) == warned
        if host == "127.0.0.1":
            assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        port = url.rsplit(":", 1)[1].strip("/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=30) as r:
            info = json.load(r)
        assert info["model"] == "lenet-digits" and info["inputs"][0] == "digit-0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_options_are_one_line_errors():
    runner = CliRunner()
    r = runner.invoke(app, ["explore", "--model", "lenet-digits", "--workers", "0", "--no-browser"])
    assert r.exit_code == 2 and "--workers must be at least 1" in r.output
    r = runner.invoke(app, ["explore", "--model", "no-such-model", "--no-browser"])
    assert r.exit_code == 2 and "unknown model" in r.output


@pytest.mark.parametrize("port", ["99999", "-1", "99999999999999999999"])
def test_a_port_out_of_range_is_one_line_and_exit_2(port):
    r = CliRunner().invoke(app, ["explore", "--model", "lenet-digits", "--no-browser", "--port", port])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert line.startswith(f"error: --port ") and port in line and "\n" not in line, r.output
    if port != "99999999999999999999":  # that one the CLI's own integer check refuses first
        assert line == f"error: --port must be a whole number from 0 to 65535 (0 picks a free one), got {port}"


def test_a_host_that_cannot_be_bound_is_one_line_and_exit_2():
    r = CliRunner().invoke(app, ["explore", "--model", "lenet-digits", "--no-browser", "--host", "no-such-host.invalid"])
    line = r.output.strip()
    assert r.exit_code == 2 and line.startswith("error: cannot listen on no-such-host.invalid:0") and "\n" not in line, r.output
