"""The lab process: the emulated AWS endpoint and the metadata service, on loopback.

    python -m labkit.labprocess.main --home DIR [--iam-delay SECONDS] [--sealed | --no-sealed]

Started in the background by `labkit up` or `labkit.connect()`; one per state directory. It
serves two ports on 127.0.0.1, both chosen free at start:

    api port   moto in server mode (IAM authorization on), and the lab's control endpoints
               under /_labkit/ (health, reset, shutdown, sandbox, run), which need the lab's secret
    imds port  the metadata service, reached by instances through `http_proxy`

With `--sealed` (kept for the next start, like `--iam-delay`), every running instance also gets a
sandbox of its own (labprocess/sandbox.py), where the lab serves its metadata service and the AWS
API on sockets inside the instance's network; where the host allows no namespaces, it says why in
one line and keeps the environment seal.

When both answer, it writes `lab.json` (ports, pid, administrator keys, secret) into the state
directory; clients read that file to find it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import io
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from labkit.labprocess import storage_limits
from labkit.labprocess.journal import Journal, action_of, changes_something
from labkit.labprocess.options import chosen_delay, chosen_sealed
from labkit.labprocess.recovery import ChangeNotSaved
from labkit.labprocess.wsgi import body_of, credential_scope, headers_of, reason
from labkit.protocol import CLI_SERVER_HOME, CLI_SERVER_USER_HOME, CLI_SOCKET, valid_delay
from labkit.seal import kernel, landlock
from labkit.statedir import (
    LabInfo,
    ensure_home,
    lab_home,
    owner,
    read_info,
    remove_info,
    take_ownership,
    write_info,
)

CONTROL_PREFIX = "/_labkit/"
LIFECYCLE = {"RunInstances", "StartInstances", "StopInstances", "TerminateInstances"}  # a sandbox starts or ends

StartResponse = Callable[..., Any]


class LabApp:
    """WSGI: the lab's control endpoints, then moto, one request at a time."""

    def __init__(self, moto_app: Any, cloud: Any, secret: str, stop: threading.Event) -> None:
        self.sandboxes: Any = None  # labprocess/sandbox.py's Sandboxes, when instances are sealed
        self.moto_app = moto_app
        self.cloud = cloud
        self.secret = secret
        self.stop = stop
        self.started_at = time.time()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(path[len(CONTROL_PREFIX) :], environ, start_response)
        if path.startswith("/moto-api"):
            return _json(start_response, 403, {"error": "moto's own control API is switched off in the lab; "
                                                        "use `labkit reset` instead."})  # fmt: skip
        request = _recorded(environ)
        environ["wsgi.input"] = io.BytesIO(base64.b64decode(request["body"]))
        answered: list[tuple[str, Any]] = []

        def hold(status: str, headers: Any, *rest: Any) -> Any:
            answered.append((status, headers))  # answered only once the change is on disk
            return lambda data: None

        try:
            with self.cloud.change(str(request["action"] or request["method"])) as change:
                too_large = storage_limits.lab_refusal(
                    {**request["headers"], "Content-Length": str(len(environ["wsgi.input"].getvalue()))},
                    method=request["method"],
                )
                if too_large is not None:  # past what the lab keeps in all: S3's refusal, nothing changed
                    start_response(f"{too_large.status} Bad Request", [("Content-Type", "application/xml")])
                    return [too_large.body]
                body = list(self.moto_app(environ, hold))
                if answered[0][0][:1] == "2" and changes_something(request["method"], request["action"]):
                    change.record = {"kind": "request", **request}
        except ChangeNotSaved as error:  # undone: AWS's answer to a request it failed to carry out
            return _service_failure(environ, start_response, str(error))
        if self.sandboxes is not None and request["action"] in LIFECYCLE and answered[0][0][:1] == "2":
            self.reconcile()
        start_response(*answered[0])
        return body

    def reconcile(self) -> None:
        """Sealed instances: a sandbox for each running instance, and no other."""
        try:
            self.sandboxes.reconcile(self.cloud.running_instances())
        except (OSError, RuntimeError) as error:
            print(f"labkit: {error}", flush=True)

    def replay(self, change: dict[str, Any]) -> int:
        """Send a journaled request to moto again; returns its HTTP status."""
        from werkzeug.test import EnvironBuilder

        builder = EnvironBuilder(
            method=change["method"],
            path=change["path"],
            query_string=change["query"],
            headers=change["headers"],
            data=base64.b64decode(change["body"]),
        )
        answered: list[str] = []
        list(self.moto_app(builder.get_environ(), lambda status, headers, *rest: answered.append(status)))
        return int(answered[0].split()[0])

    def _control(self, action: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given, self.secret):
            return _json(start_response, 401, {"error": "this lab's control endpoint needs the lab's secret"})
        method = environ.get("REQUEST_METHOD")
        if action == "health" and method == "GET":
            journal = {"changes": self.cloud.changes, "problem": self.cloud.problem, "broken": self.cloud.broken}
            return _json(start_response, 200, {"pid": os.getpid(), "started_at": self.started_at, "journal": journal})
        if action == "reset" and method == "POST":
            began = time.perf_counter()
            seed = parse_qs(environ.get("QUERY_STRING", "")).get("seed", [None])[0]
            try:
                self.cloud.reset(**({"seed": int(seed)} if seed is not None else {}))
            except ChangeNotSaved as error:
                return _json(start_response, 500, {"error": f"{error}."})
            if self.sandboxes is not None:
                self.reconcile()
            return _json(start_response, 200, {"seconds": time.perf_counter() - began})
        if action == "sandbox" and method == "GET":
            instance_id = parse_qs(environ.get("QUERY_STRING", "")).get("instance", [""])[0]
            if self.sandboxes is None:
                return _json(start_response, 404, {"error": "this lab does not seal its instances in namespaces"})
            box = self.sandboxes.find(instance_id)
            if box is None or not box.alive():
                self.reconcile()
                box = self.sandboxes.find(instance_id)
            if box is None:
                why = self.sandboxes.failed.get(instance_id, "it is not running")
                return _json(start_response, 404, {"error": f"instance {instance_id} has no sandbox: {why}"})
            return _json(start_response, 200, {"init": box.init, "nested": box.nested})
        if action == "run" and method == "GET":  # asked by the keepers of instances sealed by environment
            from labkit.labprocess import runs

            query = parse_qs(environ.get("QUERY_STRING", ""))
            instance_id, since = query.get("instance", [""])[0], query.get("since", [None])[0]
            try:
                wait = float(query.get("wait", ["0"])[0])
            except ValueError:
                wait = 0.0
            return _json(start_response, 200, {"run": runs.after(self.cloud, instance_id, since, wait, self.stop)})
        if action == "shutdown" and method == "POST":
            threading.Timer(0.05, self.stop.set).start()  # after this response has left
            return _json(start_response, 200, {"stopping": os.getpid()})
        return _json(start_response, 404, {"error": f"no control action {method} {action}"})


def _recorded(environ: dict[str, Any]) -> dict[str, Any]:
    """The parts of a WSGI request that replaying it needs; the body is read once, here."""
    body = body_of(environ)
    headers = headers_of(environ)
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    method, query = environ.get("REQUEST_METHOD", "GET"), environ.get("QUERY_STRING", "")
    return {
        "method": method,
        "path": environ.get("PATH_INFO", "/"),
        "query": query,
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "action": action_of(method, query, body, headers),
    }


FAILURES = {  # service: (its code for a request it failed to carry out, its XML namespace)
    "iam": ("ServiceFailure", "https://iam.amazonaws.com/doc/2010-05-08/"),
    "sts": ("InternalFailure", "https://sts.amazonaws.com/doc/2011-06-15/"),
}


def _service_failure(environ: dict[str, Any], start_response: StartResponse, said: str) -> list[bytes]:
    """AWS's answer when it fails to carry out a request: HTTP 500, ServiceFailure (IAM),
    InternalError (EC2, S3), InternalServerError (DynamoDB) or InternalFailure, with what happened and
    what to do."""
    scope = credential_scope(environ)
    service = scope[3] if len(scope) > 3 else ""
    if not service and storage_limits.for_s3({"Host": environ.get("HTTP_HOST", "")}):
        service = "s3"  # a request that is not signed, to an S3 endpoint's name
    said = f"{said[:1].upper()}{said[1:]}."
    message = escape(said)
    request_id = str(uuid.uuid4())
    if service == "dynamodb":  # JSON, as DynamoDB answers: InternalServerError
        answer = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": said})
        start_response("500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.0"),
                                                     ("Content-Length", str(len(answer.encode())))])  # fmt: skip
        return [answer.encode()]
    if service == "s3":
        body = (
            f"<Error><Code>InternalError</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        )
    elif service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>InternalError</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        code, namespace = FAILURES.get(service, ("InternalFailure", ""))
        xmlns = f' xmlns="{namespace}"' if namespace else ""
        body = (
            f"<ErrorResponse{xmlns}><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    data = f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode()
    start_response("500 Internal Server Error", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
    return [data]


def _json(start_response: StartResponse, status: int, data: dict[str, Any]) -> list[bytes]:
    body = json.dumps(data).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {reason(status)}", headers)
    return [body]


# What the warm `aws` server keeps of the lab process's environment: what Python and the CLI read as
# they start. Nothing else: its children, which a command may read, hold a copy (cliserver.py).
CLI_SERVER_ENV = ("PATH", "LANG", "TZ", "TMPDIR", "LC_", "PYTHON", "AWS_", "SSL_CERT_", "REQUESTS_CA_BUNDLE")


class WarmLink:
    """The lab's end of the line to the warm `aws` server: it hands over the socket and namespaces of
    each instance sealed by the kernel as its sandbox starts (labprocess/sandbox.py), and says when one
    ends. Messages wait in the line until the server, still starting, reads them."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ours.settimeout(5.0)
        self.lock = threading.Lock()

    def __call__(self, instance_id: str, fds: list[int] | None) -> None:
        message = json.dumps({"instance": instance_id}).encode()
        with self.lock, contextlib.suppress(OSError):  # a server gone: instances run the plain aws CLI
            socket.send_fds(self.ours, [message], fds or [])

    def started(self) -> None:
        """The server holds its end now (or never will): the lab keeps only its own."""
        self.theirs.close()


def _start_cli_server(
    home: Path, ports: tuple[int, int], link: WarmLink | None = None
) -> subprocess.Popen[bytes] | None:
    """The warm `aws` of the lab's instances (labkit/labprocess/cliserver.py); it ends when this process does.
    `link`: where it learns of the instances sealed by the kernel (their sockets are their sandboxes')."""
    path = home / CLI_SOCKET
    if len(str(path)) > 100:  # a Unix socket's path must be short; instances then run the real aws
        print(f"labkit: {path} is too long for a socket; instances run the plain aws CLI", flush=True)
        return None
    private = home / CLI_SERVER_HOME  # its own HOME: it never reads the student's
    private.mkdir(mode=0o700, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key.startswith(CLI_SERVER_ENV)}
    env.pop("PYTHONHASHSEED", None)  # as any aws process
    env["HOME"] = str(private)
    env[CLI_SERVER_USER_HOME] = os.environ.get("HOME", "")  # hidden from the commands it runs, as from instances
    served = [str(path), str(os.getpid()), ",".join(map(str, ports))]
    command = [sys.executable, "-m", "labkit.labprocess.cliserver", *served]
    passed: tuple[int, ...] = ()
    if link is not None:
        command.append(str(link.theirs.fileno()))
        passed = (link.theirs.fileno(),)
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env, pass_fds=passed)


def _serve_inside(app: LabApp, service: Any, cloud: Any) -> Callable[..., list[Any]]:
    """What the lab serves inside one sealed instance, on the sockets its sandbox made there."""
    from labkit.labprocess.gate import ApiServer
    from labkit.labprocess.imds import InstanceMetadataServer

    def serve(instance_id: str, imds_sockets: list[Any], api_socket: Any, context: Any) -> list[Any]:
        servers: list[Any] = [
            InstanceMetadataServer(service, cloud.instance_facts, instance_id, s) for s in imds_sockets
        ]
        servers.append(
            ApiServer(app, unsigned=(CONTROL_PREFIX, "/moto-api"), fd=api_socket.fileno(), ssl_context=context)
        )
        api_socket.close()  # the server holds its own copy
        for server in servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return servers

    return serve


def serve(home: Path, *, iam_delay: float | None = None, sealed: bool | None = None) -> None:
    """Run the lab until it is told to stop (shutdown endpoint, SIGTERM or SIGINT). `iam_delay`:
    the seconds IAM changes take to reach role sessions and EC2 (labkit/labprocess/propagation.py);
    None: the delay this lab was last started with, if any."""
    from labkit.labprocess import propagation
    from labkit.labprocess.backends import Cloud, configure_moto
    from labkit.labprocess.keys import new_admin_keys

    configure_moto()
    propagation.configure(chosen_delay(home, iam_delay))
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from labkit.labprocess import motofixes
    from labkit.labprocess.gate import ApiServer
    from labkit.labprocess.imds import ImdsProxy, MetadataService, Tokens

    try:
        fixes_missing = motofixes.apply(motofixes.LAB)
    except motofixes.RequiredFixMissing as error:  # one line, the last in lab.log: `labkit up` shows it
        print(error, flush=True)
        sys.exit(1)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    secret = secrets.token_hex(32)
    cloud = Cloud(home, new_admin_keys(), journal=Journal(home))
    stop = threading.Event()
    app = LabApp(motofixes.wrap(DomainDispatcherApplication(create_backend_app)), cloud, secret, stop)
    restored = cloud.restore(app.replay)
    if restored is None:
        cloud.reset()
    api = ApiServer(app, unsigned=(CONTROL_PREFIX, "/moto-api"))  # what the port takes: labprocess/gate.py
    imds = ImdsProxy(MetadataService(cloud.role_session, Tokens(secret)), cloud.instance_facts, secret)
    for server in (api, imds):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    seal_asked = chosen_sealed(home, sealed)
    link: WarmLink | None = None
    seal_note = f"instances are sealed by environment only: the lab was started with --no-sealed; {landlock.said()}"
    if seal_asked:
        from labkit.labprocess import sandbox

        why = kernel.refusal()
        if why is None:
            link = WarmLink()
            app.sandboxes = sandbox.Sandboxes(home, _serve_inside(app, imds.service, cloud), warm=link)
            app.reconcile()  # the instances running when the lab stopped get theirs again
            seal_note = ""
        else:
            seal_note = f"instances are sealed by environment only on this host: {why}; {landlock.said()}"
            print(f"labkit: {seal_note}", flush=True)

    info = LabInfo(
        pid=os.getpid(),
        api_port=api.server_port,
        imds_port=imds.port,
        admin_access_key_id=cloud.admin_keys[0],
        admin_secret_access_key=cloud.admin_keys[1],
        secret=secret,
        started_at=app.started_at,
        restored=restored.changes if restored else -1,
        problem=restored.problem if restored else "",
        fixes_missing=fixes_missing,
        iam_delay=propagation.delay(),
        sealed=app.sandboxes is not None,
        seal_asked=seal_asked,
        seal_note=seal_note,
    )
    write_info(home, info)
    cli = _start_cli_server(home, (info.api_port, info.imds_port), link)
    if link is not None:
        link.started()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"labkit lab {os.getpid()} serving AWS on {info.api_url}, metadata on port {info.imds_port}", flush=True)
    stop.wait()
    if cli is not None:
        cli.terminate()
    if app.sandboxes is not None:
        app.sandboxes.end_all()
    api.shutdown()
    imds.shutdown()
    current = read_info(home)
    if current is not None and current.pid == os.getpid():
        remove_info(home)
    sys.stdout.flush()
    os._exit(0)  # the lab's state is discarded anyway: skip tearing down moto's objects one by one


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labkit.labprocess.main", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="the lab's state directory (default: $LABKIT_HOME)")
    parser.add_argument("--iam-delay", type=valid_delay, metavar="SECONDS",
                        help="IAM changes reach role sessions and EC2 this late, as on AWS (kept for the "
                        "next start; default: the last one given, else 0)")  # fmt: skip
    parser.add_argument("--sealed", action=argparse.BooleanOptionalAction, default=None,
                        help="each instance in namespaces of its own (kept for the next start)")  # fmt: skip
    args = parser.parse_args(argv)
    home = ensure_home(lab_home(args.home))
    if take_ownership(home) is None:  # the lock stays held until this process ends
        print(f"labkit: another lab process (pid {owner(home)}) owns {home}; this one stops.", flush=True)
        sys.exit(1)
    serve(home, iam_delay=args.iam_delay, sealed=args.sealed)


if __name__ == "__main__":
    main()
