"""The README's main job: the emulator plus the daemon, sealing the sample invoices over HTTP.

It runs ``fiscal up`` (emulator + daemon) as a child process on a profile, waits for its socket,
POSTs each invoice to ``/api/v1/invoices`` exactly as a POS would, reads the outlet status,
downloads the audit export and verifies it offline with the device's public key, then stops
``fiscal up`` (unless ``keep`` is set).
"""

import os
import tempfile
import time

from hostd.client import call_json, request
from hostd.errors import HostdError
from hostd.export import load_export, verify_export
from hostd.supervisor import spawn_ready, stop_process

SAMPLES = ("invoice-002-services.json", "invoice-000-goods.json")


def start_up(profile, socket_path, timeout=30.0):
    """Start ``fiscal up``; return the process once its socket is served."""
    return spawn_ready(["up", "--profile", profile, "--socket", socket_path], "fiscal up:", "fiscal up", timeout)[0]


def stop_up(proc):
    stop_process(proc, 15)


def run_demo(profile=None, files=()):
    from hostd.cli import samples_dir

    if profile is None:
        profile = tempfile.mkdtemp(prefix="fiscal-demo-")
    files = list(files) or [os.path.join(samples_dir(), name) for name in SAMPLES]
    socket_path = os.path.join(profile, "api.sock")
    proc = start_up(profile, socket_path)
    try:
        sealed = []
        for path in files:
            with open(path, "rb") as fh:
                status, doc = call_json(socket_path, "POST", "/api/v1/invoices", fh.read(),
                                        {"Content-Type": "application/json",
                                         "Idempotency-Key": "demo-%s-%s" % (os.path.basename(path), time.time())})
            if status != 200:
                raise HostdError("%s: %s %s" % (os.path.basename(path), doc.get("code"), doc.get("detail")),
                                 doc.get("field"))
            payload = doc["payload"]
            payload["file"] = os.path.basename(path)
            sealed.append(payload)
        status_doc = call_json(socket_path, "GET", "/api/v1/outlets/local/status")[1]["payload"]
        export = request(socket_path, "GET", "/api/v1/audit/export")[2]
    finally:
        stop_up(proc)
    export_path = os.path.join(profile, "journal-export.json")
    with open(export_path, "wb") as fh:
        fh.write(export)
    summary = verify_export(load_export(export))
    return {"profile": profile, "socket": socket_path, "sealed": sealed, "device": status_doc,
            "export": export_path, "journal": summary}
