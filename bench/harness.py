"""The benchmark's instruments: a counting HTTP proxy and a Lambda Runtime API emulator.

Both are plain standard-library HTTP servers on loopback. Neither changes what the binaries do: the proxy
forwards every request unchanged (but for Host) and records what it was; the emulator is the Runtime API a
`provided.al2023` function talks to (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

Every response is written with one send and TCP_NODELAY, so that Nagle's algorithm and delayed ACKs never add
their 40 ms to a measurement.
"""

import hashlib
import http.client
import itertools
import json
import os
import queue
import re
import signal
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def now():
    return time.perf_counter()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that goes away (a killed function) is normal here; keep the benchmark's output clean.
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body=b"", headers=()):
        head = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
        for name, value in headers:
            head.append(f"{name}: {value}")
        head.append(f"Content-Length: {len(body)}")
        head.append("\r\n")
        self.wfile.write("\r\n".join(head).encode("latin-1") + body)


# ---------------------------------------------------------------------------------------------------------
# The counting proxy


class Call:
    __slots__ = ("seq", "at", "proxy", "service", "operation", "detail", "status", "connection", "request")

    def __init__(self, seq, at, proxy, service, operation, detail, status, connection, request):
        self.seq, self.at, self.proxy = seq, at, proxy
        self.service, self.operation, self.detail = service, operation, detail
        self.status, self.connection = status, connection
        # What makes two requests the same question: method, path with query, body (not the signature).
        self.request = request

    def name(self):
        return f"{self.operation} {self.detail}".strip()

    def as_json(self):
        return {"service": self.service, "operation": self.operation, "detail": self.detail, "status": self.status}


class Recorder:
    """Every proxied call, in the order the answers went back to the caller, and every connection opened."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        self.connections = []  # (at, proxy)
        self.seq = itertools.count()

    def add(self, call):
        with self.lock:
            self.calls.append(call)

    def connected(self, proxy):
        with self.lock:
            self.connections.append((now(), proxy))

    def mark(self):
        with self.lock:
            return len(self.calls), len(self.connections)

    def since(self, mark):
        with self.lock:
            return self.calls[mark[0]:], self.connections[mark[1]:]


ID_SEGMENT = re.compile(r"^(?!v\d+$).*(\d.*\d|[A-Za-z0-9_-]{20,}).*$")


def path_template(path):
    """/v1/organization/projects/proj_a1b2/service_accounts -> /v1/organization/projects/{id}/service_accounts"""
    return "/".join("{id}" if ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


def classify_aws(headers, body, managed_names):
    """(service, operation, detail) of an AWS SDK request, from its SigV4 scope and X-Amz-Target or Action."""
    auth = headers.get("Authorization", "")
    scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", auth)
    service = scope.group(1) if scope else "unknown"
    target = headers.get("X-Amz-Target")
    detail = ""
    if target:
        operation = target.rsplit(".", 1)[-1]
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        if service == "secretsmanager":
            secret = doc.get("SecretId")
            if secret is not None:
                role = managed_names(secret)
                if operation == "GetSecretValue":
                    stage = doc.get("VersionStage") or ("(version id)" if doc.get("VersionId") else "")
                    detail = stage if role == "managed" else role
                elif role != "managed":
                    detail = role
            if operation == "UpdateSecretVersionStage":
                detail = doc.get("VersionStage", "") + (" move" if doc.get("MoveToVersionId") else "") + (
                    " remove" if doc.get("RemoveFromVersionId") else "")
        elif service == "dynamodb":
            detail = dynamo_detail(operation, doc)
    else:
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        operation = (form.get("Action") or ["?"])[0]
    return service, operation, detail


def sort_key_kind(item):
    sk = (item or {}).get("sk", {}).get("S", "")
    return sk.split("#", 1)[0] + "#" if "#" in sk else sk


def dynamo_detail(operation, doc):
    if operation in ("PutItem",):
        return sort_key_kind(doc.get("Item"))
    if operation in ("GetItem", "UpdateItem", "DeleteItem"):
        return sort_key_kind(doc.get("Key"))
    if operation == "TransactWriteItems":
        kinds = []
        for entry in doc.get("TransactItems", []):
            for verb, spec in entry.items():
                kinds.append(f"{verb}:{sort_key_kind(spec.get('Item') or spec.get('Key'))}")
        return "+".join(kinds)
    if operation == "Query":
        return doc.get("IndexName") or "table"
    return ""


class Proxy:
    """A forwarding proxy in front of one upstream, recording each request as (service, operation, detail).

    kind "aws": classified by SigV4 scope and X-Amz-Target / Action; any other kind (a provider's or a
    platform's API) by method and path template.
    """

    def __init__(self, name, upstream, recorder, kind, managed_names=lambda s: "managed"):
        self.name, self.kind, self.recorder = name, kind, recorder
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.managed_names = managed_names
        proxy = self

        class ProxyHandler(Handler):
            def setup(self):
                super().setup()
                self.upstream = None
                proxy.recorder.connected(proxy.name)

            def finish(self):
                if self.upstream is not None:
                    self.upstream.close()
                super().finish()

            def forward(self, method, path, headers, body):
                for attempt in range(2):
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=600)
                        self.upstream.connect()
                        self.upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    try:
                        self.upstream.request(method, path, body=body, headers=headers)
                        response = self.upstream.getresponse()
                        return response.status, response.getheaders(), response.read()
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                        self.upstream.close()
                        self.upstream = None
                        if attempt:
                            raise

            def handle_any(self):
                body = self.read_body()
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP and k.lower() not in ("host", "content-length")}
                headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
                if body or self.command in ("POST", "PUT", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                status, answer_headers, answer = self.forward(self.command, self.path, headers, body)
                if proxy.kind == "aws":
                    service, operation, detail = classify_aws(self.headers, body, proxy.managed_names)
                else:
                    service = proxy.name
                    operation = f"{self.command} {path_template(urlsplit(self.path).path)}"
                    detail = ""
                request = hashlib.sha256(f"{self.command} {self.path}\n".encode() + body).hexdigest()[:16]
                proxy.recorder.add(Call(next(proxy.recorder.seq), now(), proxy.name, service, operation, detail,
                                        status, id(self), request))
                kept = [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
                self.reply(status, answer, kept)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

        self.server = QuietServer(("127.0.0.1", 0), ProxyHandler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------------------
# The Lambda Runtime API emulator, and a function process under it


class Invocation:
    def __init__(self, request_id, payload):
        self.request_id = request_id
        self.payload = payload
        self.delivered = None
        self.done = None
        self.outcome = None  # "response" | "error"
        self.body = None
        self.finished = threading.Event()

    @property
    def seconds(self):
        return self.done - self.delivered


class RuntimeApi:
    """One function's Runtime API: GET .../invocation/next long-polls for the next queued event."""

    def __init__(self, function_arn):
        self.pending = queue.Queue()
        self.by_id = {}
        self.next_requests = []  # perf_counter of every GET /next
        self.next_seen = threading.Condition()
        self.init_error = None
        api = self

        class RuntimeHandler(Handler):
            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b'{"errorMessage":"not found"}')
                with api.next_seen:
                    api.next_requests.append(now())
                    api.next_seen.notify_all()
                invocation = api.pending.get()
                if invocation is None:
                    return self.reply(500, b'{"errorMessage":"emulator stopping"}')
                body = json.dumps(invocation.payload).encode()
                deadline = int(time.time() * 1000) + 300_000
                invocation.delivered = now()
                self.reply(200, body, [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn", function_arn),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
                ])

            def do_POST(self):
                body = self.read_body()
                at = now()
                parts = self.path.strip("/").split("/")
                if self.path == "/2018-06-01/runtime/init/error":
                    api.init_error = body.decode("utf-8", "replace")
                    with api.next_seen:
                        api.next_seen.notify_all()
                    return self.reply(202, b'{"status":"OK"}')
                if len(parts) == 5 and parts[2] == "invocation" and parts[4] in ("response", "error"):
                    invocation = api.by_id.get(parts[3])
                    if invocation is None:
                        return self.reply(400, b'{"errorMessage":"unknown request id"}')
                    invocation.done, invocation.outcome = at, parts[4]
                    try:
                        invocation.body = json.loads(body) if body else None
                    except ValueError:
                        invocation.body = body.decode("utf-8", "replace")
                    self.reply(202, b'{"status":"OK"}')
                    invocation.finished.set()
                    return None
                return self.reply(404, b'{"errorMessage":"not found"}')

        class RuntimeServer(QuietServer):
            def get_request(self):
                connection = super().get_request()
                api.accepts.append(now())
                return connection

        self.accepts = []  # perf_counter of every connection the function opened to the Runtime API
        self.server = RuntimeServer(("127.0.0.1", 0), RuntimeHandler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for_next(self, count, timeout):
        """Waits until the function has asked for work `count` times; returns when it did."""
        deadline = now() + timeout
        with self.next_seen:
            while len(self.next_requests) < count and self.init_error is None:
                left = deadline - now()
                if left <= 0:
                    raise TimeoutError(f"the function did not ask for invocation #{count} within {timeout}s")
                self.next_seen.wait(left)
            if self.init_error is not None:
                raise RuntimeError(f"the function reported an init error: {self.init_error}")
            return self.next_requests[count - 1]

    def invoke(self, payload, timeout=300):
        invocation = Invocation(str(uuid.uuid4()), payload)
        self.by_id[invocation.request_id] = invocation
        self.pending.put(invocation)
        if not invocation.finished.wait(timeout):
            raise TimeoutError(f"no answer to {json.dumps(payload)[:120]} within {timeout}s")
        return invocation

    def stop(self):
        for _ in range(4):
            self.pending.put(None)
        self.server.shutdown()
        self.server.server_close()


def proc_status(pid):
    """VmHWM (peak resident set) and VmRSS of a live process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid):
    """User + system CPU time a live process has used, in seconds (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Function:
    """A release binary started as Lambda starts a provided.al2023 function, under its own RuntimeApi."""

    def __init__(self, binary, name, env, log_path):
        self.name = name
        arn = f"arn:aws:lambda:{env.get('AWS_REGION', 'us-east-1')}:123456789012:function:{name}"
        self.api = RuntimeApi(arn)
        self.env = {
            **env,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2025/01/01/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "_HANDLER": "bootstrap",
        }
        self.log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        actions = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, self.log, 1),
                   (os.POSIX_SPAWN_DUP2, self.log, 2)]
        # posix_spawn (vfork + exec in glibc) rather than subprocess: Popen's fork and exec-status pipe add
        # milliseconds of the harness's own to a measurement that starts here.
        self.started = now()
        self.pid = os.posix_spawn(binary, [binary], self.env, file_actions=actions)
        self.exited = None

    def ready(self, timeout=30):
        """Seconds from exec to the first request for work: the moment the function connected to the
        Runtime API to send its first GET .../invocation/next (the GET itself is parsed a fraction of a
        millisecond later by this Python server; that part is the harness's, not the function's)."""
        got_next = self.api.wait_for_next(1, timeout)
        return min([got_next, *self.api.accepts[:1]]) - self.started

    def invoke(self, payload, timeout=300):
        return self.api.invoke(payload, timeout)

    def memory_when_idle(self, invocations_done, timeout=30):
        """VmHWM/VmRSS once the function asks for work after `invocations_done` invocations."""
        self.api.wait_for_next(invocations_done + 1, timeout)
        return proc_status(self.pid)

    def alive(self):
        if self.exited is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exited = status
        return self.exited is None

    def stop(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            _, self.exited = os.waitpid(self.pid, 0)
        self.api.stop()
        os.close(self.log)
        os.close(self.devnull)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def os_info():
    info = {"cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown")
        with open("/proc/meminfo") as f:
            kib = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            info["memory_gib"] = round(kib / 1024 / 1024, 1)
        info["kernel"] = os.uname().release
        info["arch"] = os.uname().machine
    except (OSError, StopIteration):
        pass
    return info
