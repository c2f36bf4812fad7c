"""docs/editor.md, as an editor does it: yaml-language-server reads the schema through the
spec's ``$schema`` modeline, reports a bad attribute on its line, and hovers an op.

The server is installed from the npm registry on first use (into .venv/, about 10 s);
without node and npm the test is skipped, saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from archspec.spec import json_schema

ROOT = Path(__file__).resolve().parent.parent
SERVER_DIR = ROOT / ".venv" / "yaml-language-server"
VERSION = "1.19.2"


def _server() -> list[str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run yaml-language-server")
    main = SERVER_DIR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    if not main.exists():
        SERVER_DIR.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(SERVER_DIR),
                            f"yaml-language-server@{VERSION}"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"could not install yaml-language-server from the npm registry: {r.stderr[-300:]}")
    return ["node", str(main), "--stdio"]


class Client:
    """A minimal LSP client over stdio: requests, notifications, and the server's requests."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.notes: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while (line := self.proc.stdout.readline().strip()):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        rid = self.next_id
        self.send({"id": rid, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == rid and "method" not in m)["result"]

    def wait(self, want: Any, timeout: float = 60) -> dict[str, Any]:
        for msg in self.notes:
            if want(msg):
                self.notes.remove(msg)
                return msg
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.read()
            if "method" in msg and "id" in msg:  # the server asks: settings, capabilities
                result: Any = [{"validate": True, "hover": True, "schemaStore": {"enable": False}}] * len(
                    msg.get("params", {}).get("items", [None])) if msg["method"] == "workspace/configuration" else None
                self.send({"id": msg["id"], "result": result})
                continue
            if want(msg):
                return msg
            self.notes.append(msg)
        raise AssertionError("yaml-language-server did not answer")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


SPEC = """\
# yaml-language-server: $schema={schema}
archspec: 1
name: my_net
inputs: {{x: [3, 32, 32]}}
nodes:
  conv1: {{op: conv, out: 64, k: 3, stride: -1}}
  relu1: {{op: relu}}
outputs: [relu1]
"""


def test_yaml_language_server_checks_and_explains_a_spec(tmp_path: Path) -> None:
    cmd = _server()
    schema = tmp_path / "archspec.schema.json"
    schema.write_text(json.dumps(json_schema()))
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(schema="archspec.schema.json"))  # relative to the spec, as the docs say
    uri = spec.as_uri()
    client = Client(cmd)
    try:
        client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {
            "workspace": {"configuration": True},
            "textDocument": {"hover": {"contentFormat": ["markdown", "plaintext"]}}}})
        client.send({"method": "initialized", "params": {}})
        client.send({"method": "workspace/didChangeConfiguration", "params": {"settings": {"yaml": {
            "validate": True, "hover": True, "schemaStore": {"enable": False}}}}})
        client.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "yaml", "version": 1, "text": spec.read_text()}}})
        diag = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                           and m["params"]["uri"] == uri and m["params"]["diagnostics"])
        problems = diag["params"]["diagnostics"]
        assert [d["range"]["start"]["line"] for d in problems] == [5], problems  # the conv1 line
        assert "minimum" in problems[0]["message"].lower() or ">= 1" in problems[0]["message"], problems
        hover = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                      "position": {"line": 5, "character": 14}})  # on `conv`
        text = json.dumps(hover)
        assert "conv: Convolution" in text, text
        assert "#### Op" not in text, text
    finally:
        client.close()
