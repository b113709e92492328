"""Throw-away certificates (openssl CLI) and a TLS-only etcd for the TLS tests."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from typing import Dict, List, Optional

from tests.fixtures.etcd import ETCD_BIN
from tests.fixtures.ports import free_port

OPENSSL = shutil.which("openssl")


def _run(args: List[str], cwd: str) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def _ca(directory: str, name: str) -> None:
    _run([str(OPENSSL), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}"], directory)


def _signed(directory: str, name: str, ca: str, usage: str) -> None:
    _run([str(OPENSSL), "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"], directory)
    with open(os.path.join(directory, f"{name}.ext"), "w", encoding="ascii") as f:
        f.write(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _run([str(OPENSSL), "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
          "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext"], directory)


def make_certs(directory: str) -> Dict[str, str]:
    """ca, server cert/key (127.0.0.1), client cert/key, and an unrelated CA."""
    os.makedirs(directory, exist_ok=True)
    _ca(directory, "ca")
    _ca(directory, "other-ca")
    _signed(directory, "server", "ca", "serverAuth,clientAuth")
    _signed(directory, "client", "ca", "clientAuth")
    names = ["ca.pem", "other-ca.pem", "server.pem", "server.key", "client.pem", "client.key"]
    for name in names:
        os.chmod(os.path.join(directory, name), 0o644)
    return {name.replace(".", "_"): os.path.join(directory, name) for name in names}


class TlsEtcd:
    """A single etcd serving clients only over https, requiring client certificates."""

    def __init__(self, work_dir: str, certs: Dict[str, str]) -> None:
        self.work_dir = work_dir
        self.certs = certs
        self.client_port, self.peer_port = free_port(), free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        c = self.certs
        args = [ETCD_BIN, "--name", "tls", "--data-dir", os.path.join(self.work_dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"tls={peer}", "--cert-file", c["server_pem"], "--key-file", c["server_key"],
                "--trusted-ca-file", c["ca_pem"], "--client-cert-auth"]
        with open(os.path.join(self.work_dir, "etcd.log"), "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        context = ssl.create_default_context(cafile=c["ca_pem"])
        context.load_cert_chain(c["client_pem"], c["client_key"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/version", timeout=1, context=context):
                    return
            except Exception:  # not up yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("TLS etcd did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
