"""keyrot's benchmark (`make bench`): cold start, peak memory, API calls per rotation, rotation latency, the
grace keeper over a large fleet, and the Lambda zips' sizes. One table on stdout; JSON in target/bench/.

Run by scripts/bench.sh, which builds the release binaries and the arm64 zips and starts a fresh moto (with
keyrot's table, topic and rotator function record) through scripts/moto.sh. Here:

- the release `keyrot-rotator` / `keyrot-grace-keeper` binaries run under a Lambda Runtime API emulator
  (bench/harness.py), started with posix_spawn as Lambda starts a provided.al2023 function;
- AWS calls go through a counting proxy in front of moto (AWS_ENDPOINT_URL points at it), classified by the
  SigV4 scope and X-Amz-Target / Action; provider and platform calls through one counting proxy per API in
  front of keyrot-sim (each KEYROT_*_BASE_URL points at its own). Counting runs use the proxies; timing runs
  talk to moto and the simulator directly;
- Secrets Manager's part (RotateSecret creating the AWSPENDING placeholder) is played with boto3 against
  moto directly, so it is never counted as the function's.

Nothing here asserts a timing: targets are compared and reported, never enforced.
"""

import argparse
import concurrent.futures
import datetime
import http.client
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections import Counter, OrderedDict

import boto3

sys.dont_write_bytecode = True  # no __pycache__ next to the driver
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
ROTATOR = os.path.join(RELEASE, "keyrot-rotator")
KEEPER = os.path.join(RELEASE, "keyrot-grace-keeper")
BARE = os.path.join(RELEASE, "examples", "bench_bare_lambda")
SIM = os.path.join(RELEASE, "keyrot-sim")
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
SERVICES = ["secretsmanager", "dynamodb", "sns", "openai", "vercel"]
SERVICE_LABEL = {"secretsmanager": "Secrets Manager", "dynamodb": "DynamoDB", "sns": "SNS",
                 "openai": "OpenAI (provider)", "vercel": "Vercel (target)"}
MIB = 1024.0

# Targets from the issue; compared and printed, never asserted.
TARGET_READY_MS = 15
TARGET_PEAK_MIB = 20
TARGET_SM_CALLS = 12
TARGET_ZIP_MIB = 8
LAMBDA_LIMIT_S = 15 * 60
# The stated latency of one Secrets Manager / DynamoDB call at real AWS, for the fleet extrapolation.
AWS_CALL_MS = 20
AWS_CALL_MS_PESSIMISTIC = 100
KEEPER_CONCURRENCY = 16  # src/keeper/mod.rs KeeperSettings::default


def log(text):
    print(text, file=sys.stderr, flush=True)


def pct(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def http_json(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


class BenchError(Exception):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="keyrot-bench.")
        self.moto = os.environ["AWS_ENDPOINT_URL"]
        self.rotator_arn = os.environ["KEYROT_TEST_ROTATOR_ARN"]
        self.region = os.environ.get("AWS_REGION", "us-east-1")
        self.sm = boto3.client("secretsmanager", endpoint_url=self.moto, region_name=self.region)
        self.ddb = boto3.client("dynamodb", endpoint_url=self.moto, region_name=self.region)
        self.table = os.environ["KEYROT_AUDIT_TABLE"]
        self.events_table = os.environ["KEYROT_EVENTS_TABLE"]
        self.recorder = harness.Recorder()
        self.proxies = []
        self.sim_process = None
        self.results = OrderedDict()

    # ---- stand-ins ---------------------------------------------------------------------------------

    def start(self):
        for path in (ROTATOR, KEEPER, BARE, SIM):
            if not os.path.exists(path):
                raise BenchError(f"{path} is missing: run scripts/bench.sh (it builds the release binaries)")
        self.sim_process = subprocess.Popen([SIM], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.sim = json.loads(self.sim_process.stdout.readline())
        base = self.sim["base_url"]
        # Redeploys are READY at once: latency then measures keyrot, moto and the simulator, not a
        # simulated build (testSecret polls a building deployment every 2 s).
        http_json("POST", f"{base}/_sim/build_millis", {"millis": 0})

        def role(secret_id):
            """The managed secret itself, or the admin secret (by name) that a call reads."""
            name = secret_id.split(":secret:", 1)[-1]
            if not name.startswith("keyrot-admin/"):
                return "managed"
            return name.rsplit("-", 1)[0] if ":secret:" in secret_id else name

        aws = harness.Proxy("aws", self.moto, self.recorder, "aws", managed_names=role)
        self.proxies.append(aws)
        self.aws_proxy = aws.url
        self.provider_proxies = {}
        for api in ("openai", "anthropic", "vercel", "render"):
            proxy = harness.Proxy(api, base, self.recorder, api)
            self.proxies.append(proxy)
            self.provider_proxies[api] = proxy.url

    def stop(self):
        for proxy in self.proxies:
            proxy.stop()
        if self.sim_process:
            self.sim_process.terminate()
            self.sim_process.wait(timeout=10)

    def function_env(self, proxied, **extra):
        """The environment Lambda gives a provided.al2023 function, plus keyrot's configuration."""
        sim = self.sim["base_url"]
        urls = self.provider_proxies if proxied else {k: sim for k in self.provider_proxies}
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_SESSION_TOKEN": os.environ.get("AWS_SESSION_TOKEN", "testing"),
            "AWS_ENDPOINT_URL": self.aws_proxy if proxied else self.moto,
            "KEYROT_AUDIT_TABLE": os.environ["KEYROT_AUDIT_TABLE"],
            "KEYROT_EVENTS_TABLE": os.environ["KEYROT_EVENTS_TABLE"],
            "KEYROT_ALERT_TOPIC_ARN": os.environ["KEYROT_ALERT_TOPIC_ARN"],
            "KEYROT_ROTATOR_ARN": self.rotator_arn,
            "KEYROT_OPENAI_BASE_URL": f"{urls['openai']}/v1",
            "KEYROT_ANTHROPIC_BASE_URL": urls["anthropic"],
            "KEYROT_VERCEL_BASE_URL": urls["vercel"],
            "KEYROT_RENDER_BASE_URL": urls["render"],
        }
        env.update(extra)
        return env

    def spawn(self, binary, name, proxied, **extra):
        return harness.Function(binary, name, self.function_env(proxied, **extra),
                                os.path.join(self.work, f"{name}.log"))

    # ---- secrets ---------------------------------------------------------------------------------

    def create_generic(self, name):
        value = {"provider": "generic", "api_key": "sk_live_" + secrets.token_urlsafe(36)[:48],
                 "generic": {"length": 48, "prefix": "sk_live_"}}
        self.sm.create_secret(Name=name, SecretString=json.dumps(value),
                              Tags=[{"Key": "keyrot:grace-hours", "Value": "24"}])

    def create_openai(self, name):
        """An OpenAI key a person made, in a Vercel project's env, onboarded as `keyrot onboard` does."""
        sim = self.sim["base_url"]
        if not getattr(self, "admin_secrets", False):
            # Each admin secret serves the managed secrets its keyrot-admin:serves tag names (docs/security.md).
            serves = [{"Key": "keyrot-admin:serves", "Value": "bench/ fleet/"}]
            self.sm.create_secret(Name="keyrot-admin/openai", SecretString=self.sim["openai_admin_key"], Tags=serves)
            self.sm.create_secret(Name="keyrot-admin/vercel", SecretString=self.sim["vercel_token"], Tags=serves)
            self.openai_project = http_json("POST", f"{sim}/_sim/openai/projects")["id"]
            self.admin_secrets = True
        person = http_json("POST", f"{sim}/_sim/openai/projects/{self.openai_project}/user_keys")
        project = http_json("POST", f"{sim}/_sim/vercel/projects", {"name": name.replace("/", "-")})["id"]
        team = self.sim["vercel_team_id"]
        http_json("POST", f"{sim}/v10/projects/{project}/env?upsert=true&teamId={team}",
                  {"key": "OPENAI_API_KEY", "value": person["value"], "type": "encrypted", "target": ["production"]},
                  {"Authorization": f"Bearer {self.sim['vercel_token']}"})
        value = {
            "provider": "openai", "api_key": person["value"], "api_key_id": person["id"],
            "openai": {"project_id": self.openai_project, "admin_key_secret": "keyrot-admin/openai"},
            "targets": [{"type": "vercel", "project": project, "team_id": team, "env_key": "OPENAI_API_KEY",
                         "environments": ["production"], "token_secret": "keyrot-admin/vercel"}],
        }
        self.sm.create_secret(Name=name, SecretString=json.dumps(value),
                              Tags=[{"Key": "keyrot:grace-hours", "Value": "24"}])

    def empty_audit_table(self):
        """Deletes every item of both tables (outside any measurement). moto deep-copies the tables on
        every TransactWriteItems (moto/dynamodb/models: transact_write_items), so without this each step
        would get slower as rotations pile up audit items; DynamoDB itself does not."""
        for table in (self.table, self.events_table):
            keys = [k["AttributeName"] for k in self.ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
            for page in self.ddb.get_paginator("scan").paginate(TableName=table, ProjectionExpression=",".join(keys)):
                for item in page["Items"]:
                    self.ddb.delete_item(TableName=table, Key={k: item[k] for k in keys})

    def start_rotation(self, name):
        """Secrets Manager's part: RotateSecret creates the AWSPENDING placeholder; returns (ARN, token)."""
        self.sm.rotate_secret(SecretId=name, RotationLambdaARN=self.rotator_arn,
                              RotationRules={"AutomaticallyAfterDays": 30})
        described = self.sm.describe_secret(SecretId=name)
        pending = [v for v, s in described["VersionIdsToStages"].items() if "AWSPENDING" in s]
        if len(pending) != 1:
            raise BenchError(f"{name}: expected one AWSPENDING version after RotateSecret, found {pending}")
        return described["ARN"], pending[0]

    def rotate(self, function, name, marks=False):
        """One rotation as Secrets Manager drives it: RotateSecret, then the four steps with its token.

        Returns [(step, invocation, calls, connections)] (calls only with `marks`)."""
        arn, token = self.start_rotation(name)
        steps = []
        for step in STEPS:
            mark = self.recorder.mark() if marks else None
            invocation = function.invoke({"Step": step, "SecretId": arn, "ClientRequestToken": token})
            if invocation.outcome != "response":
                raise BenchError(f"{name} {step} failed: {json.dumps(invocation.body)[:400]}")
            calls, connections = self.recorder.since(mark) if marks else ([], [])
            steps.append((step, invocation, calls, connections))
        return steps

    # ---- 1. cold start and memory ----------------------------------------------------------------

    def cold_start(self):
        runs = self.args.cold_runs
        log(f"cold start: {runs} runs of keyrot-rotator (a full generic rotation each) and of a bare "
            f"lambda_runtime binary, alternated")
        self.create_generic("bench/cold-generic")
        rotator, bare, one_cert = [], [], []
        os.makedirs(os.path.join(self.work, "one-cert"))
        self.one_cert = os.path.join(self.work, "one-cert", "root.pem")
        with open("/etc/ssl/certs/ca-certificates.crt") as bundle, open(self.one_cert, "w") as out:
            first = bundle.read().split("-----END CERTIFICATE-----")[0]
            out.write(first + "-----END CERTIFICATE-----\n")
        for i in range(runs):
            self.empty_audit_table()
            arn, token = self.start_rotation("bench/cold-generic")
            fn = self.spawn(ROTATOR, "keyrot-rotator", proxied=False)
            try:
                ready = fn.ready()
                at_ready = harness.proc_status(fn.pid)
                first = None
                for step in STEPS:
                    inv = fn.invoke({"Step": step, "SecretId": arn, "ClientRequestToken": token})
                    if inv.outcome != "response":
                        raise BenchError(f"cold run {i}: {step} failed: {json.dumps(inv.body)[:400]}")
                    if first is None:
                        first = (inv.done - fn.started, inv.seconds)
                peak = fn.memory_when_idle(4)
            finally:
                fn.stop()
            rotator.append({"ready_ms": ready * 1000, "first_invocation_end_ms": first[0] * 1000,
                            "first_invocation_ms": first[1] * 1000, "rss_at_ready_kib": at_ready["VmRSS"],
                            "peak_kib": peak["VmHWM"]})
            # Diagnostic: the same binary with a one-certificate root store, to show what loading the system
            # root certificates before the first request costs (rustls-native-certs reads SSL_CERT_FILE/DIR).
            fn = self.spawn(ROTATOR, "keyrot-rotator-one-cert", proxied=False,
                            SSL_CERT_FILE=self.one_cert, SSL_CERT_DIR=os.path.dirname(self.one_cert))
            try:
                one_cert.append({"ready_ms": fn.ready() * 1000})
            finally:
                fn.stop()
            fn = self.spawn(BARE, "bare-lambda-runtime", proxied=False)
            try:
                ready = fn.ready()
                fn.invoke({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token})
                peak = fn.memory_when_idle(1)
            finally:
                fn.stop()
            bare.append({"ready_ms": ready * 1000, "peak_kib": peak["VmHWM"]})
        summary = lambda rows, key: {"median": statistics.median(r[key] for r in rows),
                                     "p95": pct([r[key] for r in rows], 95),
                                     "min": min(r[key] for r in rows), "max": max(r[key] for r in rows)}
        self.results["cold_start"] = {
            "runs": runs,
            "rotator": {k: summary(rotator, k) for k in rotator[0]},
            "bare_lambda_runtime": {k: summary(bare, k) for k in bare[0]},
            "rotator_one_root_certificate": {k: summary(one_cert, k) for k in one_cert[0]},
            "samples": {"rotator": rotator, "bare": bare, "rotator_one_root_certificate": one_cert},
        }

    # ---- 2. API calls per rotation ---------------------------------------------------------------

    def calls(self):
        out = {}
        for kind, name, create in (("generic", "bench/count-generic", self.create_generic),
                                   ("openai_vercel", "bench/count-openai", self.create_openai)):
            log(f"calls: {self.args.count_rotations} {kind} rotations in one process, through the counting proxies")
            create(name)
            mark = self.recorder.mark()
            fn = self.spawn(ROTATOR, f"keyrot-rotator-count-{kind}", proxied=True)
            try:
                fn.ready()
                before_ready, _ = self.recorder.since(mark)
                rotations = []
                peak = None
                for i in range(self.args.count_rotations):
                    rotations.append(self.rotate(fn, name, marks=True))
                    if i == 0:
                        peak = fn.memory_when_idle(4)
            finally:
                fn.stop()
            per_step = []
            signatures = []
            for rotation in rotations:
                signatures.append([[(c.service, c.name()) for c in calls] for _, _, calls, _ in rotation])
            first = rotations[0]
            for step, invocation, calls, connections in first:
                by_service = Counter(c.service for c in calls)
                repeats = Counter((c.service, c.name(), c.request) for c in calls)
                per_step.append({
                    "step": step,
                    "calls": [c.as_json() for c in calls],
                    "by_service": {s: by_service.get(s, 0) for s in SERVICES},
                    "other": {s: n for s, n in by_service.items() if s not in SERVICES},
                    "repeated": [{"service": s, "call": n, "times": k} for (s, n, _), k in repeats.items() if k > 1],
                    "connections_opened": Counter(p for _, p in connections),
                    "errors": [c.as_json() for c in calls if c.status >= 400],
                })
            totals = Counter()
            for step in per_step:
                totals.update(step["by_service"])
                totals.update(step["other"])
            # Later rotations in the same warm process may differ (a cache, say): what each one did otherwise.
            differences = []
            for i, rotation in enumerate(rotations[1:], start=2):
                for (step, _, calls, _), (_, _, first_calls, _) in zip(rotation, first):
                    now_ = Counter((c.service, c.name()) for c in calls)
                    then = Counter((c.service, c.name()) for c in first_calls)
                    for (svc, name), k in (then - now_).items():
                        differences.append({"rotation": i, "step": step, "service": svc, "call": name, "change": -k})
                    for (svc, name), k in (now_ - then).items():
                        differences.append({"rotation": i, "step": step, "service": svc, "call": name, "change": k})
            out[kind] = {
                "calls_before_ready": [c.as_json() for c in before_ready],
                "per_step": per_step,
                "totals": dict(totals),
                "same_calls_every_rotation": all(s == signatures[0] for s in signatures),
                "differences_from_first_rotation": differences,
                "totals_by_rotation": [dict(Counter(c.service for _, _, calls, _ in r for c in calls)) for r in rotations],
                "rotations": len(rotations),
                "aws_connections_per_rotation": [sum(1 for s in r for _, p in s[3] if p == "aws") for r in rotations],
                "peak_kib_after_first_rotation": peak["VmHWM"],
            }
        self.results["calls"] = out

    # ---- 3. rotation latency ---------------------------------------------------------------------

    def latency(self):
        out = {}
        n = self.args.latency_rotations
        for kind, name, create in (("generic", "bench/latency-generic", self.create_generic),
                                   ("openai_vercel", "bench/latency-openai", self.create_openai)):
            log(f"latency: {n} {kind} rotations in one warm process (after one warm-up rotation), direct to moto and the simulator")
            create(name)
            fn = self.spawn(ROTATOR, f"keyrot-rotator-latency-{kind}", proxied=False)
            try:
                fn.ready()
                self.rotate(fn, name)  # warm-up: the first rotation of a process is the cold start's business
                rows = []
                cpu_used = 0.0
                for _ in range(n):
                    self.empty_audit_table()
                    cpu_before = harness.cpu_seconds(fn.pid)
                    rows.append({step: inv.seconds * 1000 for step, inv, _, _ in self.rotate(fn, name)})
                    cpu_used += harness.cpu_seconds(fn.pid) - cpu_before
                cpu_ms = cpu_used * 1000 / n
                peak = fn.memory_when_idle(4 * (n + 1))
            finally:
                fn.stop()
            totals = [sum(r.values()) for r in rows]
            mean_total = statistics.mean(totals)
            out[kind] = {
                "rotations": n,
                "total_ms": {"p50": pct(totals, 50), "p95": pct(totals, 95), "mean": mean_total},
                "steps": {step: {"p50": pct([r[step] for r in rows], 50), "p95": pct([r[step] for r in rows], 95),
                                 "share": statistics.mean(r[step] for r in rows) / mean_total}
                          for step in STEPS},
                "peak_kib_after_all": peak["VmHWM"],
                "invocations_in_process": 4 * (n + 1),
                "function_cpu_ms_per_rotation": cpu_ms,
                "samples_ms": rows,
            }
        self.results["latency"] = out

    # ---- 4. the grace keeper over a fleet --------------------------------------------------------

    def seed_fleet(self, start, stop):
        value = json.dumps({"provider": "generic", "api_key": "sk_live_" + "x" * 48,
                            "generic": {"length": 48, "prefix": "sk_live_"}})
        clients = {}

        def create(i):
            client = clients.setdefault(threading.get_ident(), boto3.client(
                "secretsmanager", endpoint_url=self.moto, region_name=self.region))
            client.create_secret(Name=f"fleet/s{i:05d}", SecretString=value,
                                 Tags=[{"Key": "keyrot:grace-hours", "Value": "24"}])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(start, stop)))

    def fleet(self):
        out = []
        seeded = 0
        for size in self.args.fleet:
            log(f"fleet: seeding {size - seeded} more secrets (fleet/ now {size}), then one grace keeper pass")
            self.seed_fleet(seeded, size)
            seeded = size
            listed_total = len(self.all_secret_names())
            moto_ms = self.moto_call_ms(f"fleet/s{size // 2:05d}")
            mark = self.recorder.mark()
            fn = self.spawn(KEEPER, f"keyrot-grace-keeper-{size}", proxied=True, KEYROT_MANAGED_PREFIX="fleet/")
            try:
                ready = fn.ready()
                before_ready, _ = self.recorder.since(mark)
                inv = fn.invoke({"version": "0", "id": "bench", "detail-type": "Scheduled Event",
                                 "source": "aws.events", "detail": {}}, timeout=1800)
                peak = fn.memory_when_idle(1)
            finally:
                fn.stop()
            if inv.outcome != "response":
                raise BenchError(f"grace keeper pass over {size} failed: {json.dumps(inv.body)[:400]}")
            calls, connections = self.recorder.since(mark)
            by_op = Counter(f"{c.service} {c.operation}" for c in calls)
            report = inv.body or {}
            out.append({
                "secrets": size,
                "secrets_in_account": listed_total,
                "managed_seen": report.get("secrets"),
                "report": report,
                "wall_s": inv.seconds,
                "ready_ms": ready * 1000,
                "peak_kib": peak["VmHWM"],
                "calls": len(calls),
                "calls_by_operation": dict(by_op),
                "errors": len([c for c in calls if c.status >= 400]),
                "connections": len(connections),
                "calls_before_ready": [c.as_json() for c in before_ready],
                "moto_get_secret_value_ms": moto_ms,
            })
        self.results["fleet"] = {"passes": out, "model": self.fleet_model(out)}

    def moto_call_ms(self, secret_id, n=100):
        """moto's own time for one GetSecretValue at the current fleet size (one connection, no SDK, no
        proxy): it scans every secret on each lookup, which is what makes its time grow with the fleet."""
        parts = urllib.parse.urlsplit(self.moto)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        body = json.dumps({"SecretId": secret_id, "VersionStage": "AWSCURRENT"})
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue",
                   "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20250101/{self.region}/secretsmanager/"
                                    "aws4_request, SignedHeaders=host, Signature=0"}
        times = []
        try:
            for _ in range(n):
                started = harness.now()
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchError(f"moto answered {response.status} to GetSecretValue({secret_id})")
                times.append((harness.now() - started) * 1000)
        finally:
            connection.close()
        return statistics.median(times)

    def all_secret_names(self):
        names = []
        for page in self.sm.get_paginator("list_secrets").paginate(MaxResults=100):
            names += [s["Name"] for s in page["SecretList"]]
        return names

    def fleet_model(self, passes):
        """Wall time of a pass at real AWS latencies, from the measured call counts: ListSecrets pages and
        everything else one after the other, GetSecretValue 16 at a time (the keeper's concurrency)."""
        models = []
        for p in passes:
            ops = p["calls_by_operation"]
            pages = ops.get("secretsmanager ListSecrets", 0)
            reads = ops.get("secretsmanager GetSecretValue", 0)
            other = p["calls"] - pages - reads
            rounds = math.ceil(reads / KEEPER_CONCURRENCY)
            for ms in (AWS_CALL_MS, AWS_CALL_MS_PESSIMISTIC):
                seconds = (pages + rounds + other) * ms / 1000
                models.append({"secrets": p["secrets"], "per_call_ms": ms, "list_pages": pages, "reads": reads,
                               "read_rounds": rounds, "other_calls": other, "seconds": seconds,
                               "share_of_15_min": seconds / LAMBDA_LIMIT_S})
        return models

    # ---- 5. artifacts ----------------------------------------------------------------------------

    def zips(self):
        out = {}
        for binary in ("keyrot-rotator", "keyrot-grace-keeper"):
            path = os.path.join(ROOT, "target", "lambda", binary, "bootstrap.zip")
            if os.path.exists(path):
                out[binary] = {"bytes": os.path.getsize(path), "built": datetime.datetime.fromtimestamp(
                    os.path.getmtime(path), datetime.timezone.utc).isoformat(timespec="seconds")}
            else:
                out[binary] = None
        self.results["zips"] = out

    # ---- the report ------------------------------------------------------------------------------

    def machine(self):
        info = harness.os_info()
        try:
            info["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
        except OSError:
            info["rustc"] = "unknown"
        import moto  # the venv's; only its version is wanted here

        info["moto"] = moto.__version__
        try:
            commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml",
                                    "Cargo.lock"], capture_output=True, text=True).stdout.strip()
            info["commit"] = commit + ("+uncommitted" if dirty else "")
        except OSError:
            info["commit"] = "unknown"
        try:
            info["load_average"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            pass
        return info


def verdict(ok):
    return "ok" if ok else "MISSED"


def fmt_ms(ms):
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def mib(kib):
    return kib / MIB


def render(results, machine, started, finished):
    lines = []
    add = lines.append
    cold = results.get("cold_start")
    calls = results.get("calls")
    lat = results.get("latency")
    fleet = results.get("fleet")
    zips = results.get("zips")
    add(f"keyrot benchmark, {started:%Y-%m-%d %H:%M} UTC, commit {machine.get('commit')}")
    add(f"machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
        f"Linux {machine.get('kernel')} {machine.get('arch')}; {machine.get('rustc')}; moto {machine.get('moto')}; "
        f"load average (1/5/15 min) {machine.get('load_average_at_start')} at the start, "
        f"{machine.get('load_average')} at the end (other work shares these cores)")
    add("")
    add("| measurement | result | target | |")
    add("| --- | --- | --- | --- |")
    if cold:
        r, b = cold["rotator"], cold["bare_lambda_runtime"]
        c = cold["rotator_one_root_certificate"]
        add(f"| cold start: exec to first request for work, keyrot-rotator (median of {cold['runs']}; p95; min) | "
            f"{fmt_ms(r['ready_ms']['median'])} ({fmt_ms(r['ready_ms']['p95'])}; {fmt_ms(r['ready_ms']['min'])}) | "
            f"<= {TARGET_READY_MS} ms | {verdict(r['ready_ms']['median'] <= TARGET_READY_MS)} |")
        add(f"| the same, bare lambda_runtime binary under the same harness (the floor); its peak RSS | "
            f"{fmt_ms(b['ready_ms']['median'])} ({fmt_ms(b['ready_ms']['p95'])}; {fmt_ms(b['ready_ms']['min'])}); "
            f"{mib(b['peak_kib']['median']):.1f} MiB | | |")
        add(f"| diagnostic: keyrot-rotator with a one-certificate root store (SSL_CERT_FILE/SSL_CERT_DIR) | "
            f"{fmt_ms(c['ready_ms']['median'])} ({fmt_ms(c['ready_ms']['p95'])}; {fmt_ms(c['ready_ms']['min'])}) | | |")
        add(f"| cold start: exec to end of the first invocation, a generic createSecret against moto (median; p95) | "
            f"{fmt_ms(r['first_invocation_end_ms']['median'])} ({fmt_ms(r['first_invocation_end_ms']['p95'])}) | | |")
        add(f"| peak RSS over a full rotation (4 invocations, one process), generic: median / max of {cold['runs']} | "
            f"{mib(r['peak_kib']['median']):.1f} / {mib(r['peak_kib']['max']):.1f} MiB | <= {TARGET_PEAK_MIB} MiB | "
            f"{verdict(mib(r['peak_kib']['max']) <= TARGET_PEAK_MIB)} |")
    if calls:
        ov = calls["openai_vercel"]
        add(f"| peak RSS over a full rotation, OpenAI + Vercel target | {mib(ov['peak_kib_after_first_rotation']):.1f} MiB | "
            f"<= {TARGET_PEAK_MIB} MiB | {verdict(mib(ov['peak_kib_after_first_rotation']) <= TARGET_PEAK_MIB)} |")
    if lat:
        g, o = lat["generic"], lat["openai_vercel"]
        add(f"| peak RSS after {g['invocations_in_process']} invocations in one process: generic / OpenAI + Vercel | "
            f"{mib(g['peak_kib_after_all']):.1f} / {mib(o['peak_kib_after_all']):.1f} MiB | <= {TARGET_PEAK_MIB} MiB | "
            f"{verdict(max(mib(g['peak_kib_after_all']), mib(o['peak_kib_after_all'])) <= TARGET_PEAK_MIB)} |")
    if calls:
        g = calls["generic"]
        sm = g["totals"].get("secretsmanager", 0)
        add(f"| Secrets Manager calls per generic rotation | {sm} | <= {TARGET_SM_CALLS} | {verdict(sm <= TARGET_SM_CALLS)} |")
        repeated = sum(r["times"] - 1 for k in calls.values() for s in k["per_step"] for r in s["repeated"])
        add(f"| calls repeating a request the same invocation already made (both kinds of rotation) | {repeated} | 0 | "
            f"{verdict(repeated == 0)} |")
        for kind, label in (("generic", "generic"), ("openai_vercel", "OpenAI + Vercel")):
            t = calls[kind]["totals"]
            later = [" / ".join(str(r.get(s, 0)) for s in SERVICES) for r in calls[kind]["totals_by_rotation"][1:]]
            differ = "" if calls[kind]["same_calls_every_rotation"] else (
                "; the next rotations in the same process: " + ", ".join(later))
            add(f"| calls per {label} rotation, first in a fresh process: " + " / ".join(SERVICE_LABEL[s] for s in SERVICES)
                + " | " + " / ".join(str(t.get(s, 0)) for s in SERVICES) + differ + " | | |")
        before = sum(len(calls[k]["calls_before_ready"]) for k in calls) + sum(
            len(p["calls_before_ready"]) for p in (fleet or {}).get("passes", []))
        processes = len(calls) + len((fleet or {}).get("passes", []))
        add(f"| network calls before the first request for work ({processes} fresh processes, counted by the proxies) | "
            f"{before} | 0 | {verdict(before == 0)} |")
    if lat:
        for kind, label in (("generic", "generic"), ("openai_vercel", "OpenAI + Vercel")):
            t = lat[kind]["total_ms"]
            add(f"| rotation latency, 4 steps, {label} (p50 / p95 of {lat[kind]['rotations']}); the function's own CPU time | "
                f"{fmt_ms(t['p50'])} / {fmt_ms(t['p95'])}; {fmt_ms(lat[kind]['function_cpu_ms_per_rotation'])} | | |")
    if fleet:
        passes = fleet["passes"]
        for p in passes:
            add(f"| grace keeper, one pass over {p['secrets']:,} managed secrets: wall time, calls | "
                f"{p['wall_s']:.2f} s, {p['calls']:,} calls ({p['calls'] / p['secrets']:.3f} per secret) | | |")
        if len(passes) >= 2:
            a, b = passes[0], passes[-1]
            ratio = (b["calls"] / b["secrets"]) / (a["calls"] / a["secrets"])
            add(f"| calls per secret, {b['secrets']:,} vs {a['secrets']:,} | x{ratio:.3f} | linear (x1.0) | "
                f"{verdict(abs(ratio - 1) < 0.05)} |")
        model = next((m for m in fleet["model"] if m["secrets"] == 1000 and m["per_call_ms"] == AWS_CALL_MS), None)
        if model:
            add(f"| grace keeper over 1,000 secrets at {AWS_CALL_MS} ms per AWS call (model, below) | "
                f"{model['seconds']:.1f} s ({model['share_of_15_min']:.2%} of 15 min) | well inside 900 s | "
                f"{verdict(model['share_of_15_min'] < 0.1)} |")
    if zips:
        for binary, z in zips.items():
            if z:
                add(f"| {binary} arm64 zip | {z['bytes'] / 1024 / 1024:.2f} MiB ({z['bytes']:,} bytes) | "
                    f"< {TARGET_ZIP_MIB} MiB | {verdict(z['bytes'] < TARGET_ZIP_MIB * 1024 * 1024)} |")
            else:
                add(f"| {binary} arm64 zip | not built | < {TARGET_ZIP_MIB} MiB | MISSED |")
    add("")

    if calls:
        add("Secrets Manager calls per generic rotation, step by step (target: one DescribeSecret per step, current "
            f"and pending reads only where needed, one Put, two UpdateSecretVersionStage = {TARGET_SM_CALLS}):")
        steps = calls["generic"]["per_step"]
        counts = []
        for s in steps:
            sm_calls = [c for c in s["calls"] if c["service"] == "secretsmanager"]
            counts.append(len(sm_calls))
            names = " + ".join(f"{c['operation']}({c['detail']})" if c["detail"] else c["operation"] for c in sm_calls)
            add(f"  {s['step']:<13} {names or '-'} = {len(sm_calls)}")
        total = sum(counts)
        add(f"  total         {' + '.join(map(str, counts))} = {total}"
            + ("" if total <= TARGET_SM_CALLS else f"  (target {TARGET_SM_CALLS}: {total - TARGET_SM_CALLS} over)"))
        add("")
        add("Calls per step, by service:")
        short = {"secretsmanager": "SecretsMgr", "dynamodb": "DynamoDB", "sns": "SNS", "openai": "OpenAI",
                 "vercel": "Vercel"}
        for kind, label in (("generic", "generic rotation"), ("openai_vercel", "OpenAI + Vercel rotation")):
            add(f"  {label:<30}" + "".join(f"{short[svc]:>11}" for svc in SERVICES) + f"{'total':>8}")
            sums = Counter()
            for s in calls[kind]["per_step"]:
                row = [s["by_service"].get(svc, 0) for svc in SERVICES]
                sums.update(dict(zip(SERVICES, row)))
                add(f"    {s['step']:<28}" + "".join(f"{n:>11}" for n in row) + f"{sum(row):>8}")
            add(f"    {'per rotation':<28}" + "".join(f"{sums[svc]:>11}" for svc in SERVICES) + f"{sum(sums.values()):>8}")
        add("")
        for kind, label in (("generic", "generic"), ("openai_vercel", "OpenAI with a Vercel target")):
            add(f"Every call per {label} rotation, step by step (" +
                ("same calls in each of the " + str(calls[kind]["rotations"]) + " rotations"
                 if calls[kind]["same_calls_every_rotation"] else
                 "the first of " + str(calls[kind]["rotations"]) + " rotations in one process; the others differ as shown") +
                f"; AWS connections opened per rotation: {calls[kind]['aws_connections_per_rotation']}):")
            for d in calls[kind]["differences_from_first_rotation"]:
                add(f"  rotation {d['rotation']}, {d['step']}: {'+' if d['change'] > 0 else ''}{d['change']} "
                    f"{d['service']} {d['call']} (compared with the first rotation, listed below)")
            for s in calls[kind]["per_step"]:
                grouped = Counter((c["service"], f"{c['operation']}({c['detail']})" if c["detail"] else c["operation"])
                                  for c in s["calls"])
                parts = [f"{SERVICE_LABEL.get(svc, svc).split(' ')[0]} {name}" + (f" x{n}" if n > 1 else "")
                         for (svc, name), n in grouped.items()]
                add(f"  {s['step']:<13} {len(s['calls']):>2}: " + ", ".join(parts))
                for r in s["repeated"]:
                    add(f"  {'':<13}     repeated within the invocation: {r['call']} x{r['times']} (identical request)")
                for e in s["errors"]:
                    expected = (" (expected: the AWSPENDING placeholder RotateSecret creates has no value yet)"
                                if e["operation"] == "GetSecretValue" and e["detail"] == "AWSPENDING" else "")
                    add(f"  {'':<13}     answered {e['status']}: {e['operation']} {e['detail']}{expected}")
            add("")
    if lat:
        add("Rotation latency by step (ms; p50 / p95; share of the mean total), against moto and keyrot-sim on "
            "loopback, redeploys READY at once, the audit table emptied before each rotation (moto copies the whole "
            "table on every TransactWriteItems):")
        for kind, label in (("generic", "generic"), ("openai_vercel", "OpenAI + Vercel")):
            steps = lat[kind]["steps"]
            add(f"  {label:<16} " + "  ".join(
                f"{step} {steps[step]['p50']:.1f}/{steps[step]['p95']:.1f} ({steps[step]['share']:.0%})" for step in STEPS))
        add("")
    if fleet:
        add("Grace keeper passes (one invocation each, through the counting proxy; moto scans every secret on "
            "each lookup, so its wall time grows faster than the calls do):")
        for p in fleet["passes"]:
            ops = ", ".join(f"{k} {v:,}" for k, v in sorted(p["calls_by_operation"].items()))
            add(f"  {p['secrets']:>6,} secrets ({p['secrets_in_account']:,} in the account): {p['wall_s']:.2f} s, "
                f"{p['wall_s'] * 1000 / p['secrets']:.2f} ms per secret (moto alone: {p['moto_get_secret_value_ms']:.2f} ms "
                f"per GetSecretValue), peak RSS {mib(p['peak_kib']):.1f} MiB; {ops}"
                + (f"; {p['errors']} calls answered with an error" if p["errors"] else ""))
        add(f"  Model at real AWS latencies: ListSecrets pages and every other call one after the other, GetSecretValue "
            f"{KEEPER_CONCURRENCY} at a time (src/keeper/mod.rs), each call taking the stated latency:")
        for m in fleet["model"]:
            add(f"  {m['secrets']:>6,} secrets at {m['per_call_ms']:>3} ms/call: ({m['list_pages']} pages + "
                f"ceil({m['reads']:,}/{KEEPER_CONCURRENCY}) = {m['read_rounds']} read rounds + {m['other_calls']} other) x "
                f"{m['per_call_ms']} ms = {m['seconds']:.1f} s = {m['share_of_15_min']:.2%} of the 900 s limit")
        add("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold-runs", type=int, default=20)
    parser.add_argument("--count-rotations", type=int, default=3)
    parser.add_argument("--latency-rotations", type=int, default=50)
    parser.add_argument("--fleet", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 5000])
    parser.add_argument("--only", default="cold,calls,latency,fleet,zips")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    args = parser.parse_args()
    only = set(args.only.split(","))

    started = datetime.datetime.now(datetime.timezone.utc)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    bench = Bench(args)
    try:
        bench.start()
        if "cold" in only:
            bench.cold_start()
        if "calls" in only:
            bench.calls()
        if "latency" in only:
            bench.latency()
        if "fleet" in only:
            bench.fleet()
        if "zips" in only:
            bench.zips()
    except BenchError as err:
        log(f"bench: FAILED: {err} (function logs in {bench.work})")
        return 1
    finally:
        bench.stop()
    finished = datetime.datetime.now(datetime.timezone.utc)
    machine = bench.machine()
    machine["load_average_at_start"] = load_at_start
    text = render(bench.results, machine, started, finished)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    document = {"started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
                "machine": machine, "targets": {"ready_ms": TARGET_READY_MS, "peak_mib": TARGET_PEAK_MIB,
                                                "secrets_manager_calls": TARGET_SM_CALLS, "zip_mib": TARGET_ZIP_MIB},
                "stated_aws_call_ms": AWS_CALL_MS, "results": bench.results}
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in ("latest.json", f"bench-{stamp}.json"):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(document, f, indent=2, default=list)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text + "\n")
    shutil.rmtree(bench.work, ignore_errors=True)
    log(f"bench: took {(finished - started).total_seconds():.0f} s; JSON in {os.path.join(args.out, 'latest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
