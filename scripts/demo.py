"""keyrot's demo and end-to-end test: an OpenAI key with a Vercel target, and a PostgreSQL password under a
live connection pool, rotated with zero downtime on this machine's stand-ins.

moto plays AWS; keyrot-sim plays OpenAI and Vercel; `cargo lambda watch` runs the real keyrot-rotator and
keyrot-grace-keeper binaries behind a local Lambda Invoke API; the AWS CLI plays Secrets Manager and the
operator; the `keyrot` CLI is the operator's tool. A "service" thread calls the provider all along with
whatever key the live Vercel deployment serves, and must never see a 401.

Every claim the demo prints is checked: a check that fails stops the demo with exit code 1, which is what
makes it the end-to-end test `make test` runs. Run through scripts/demo.sh, which starts moto and a
PostgreSQL server (scripts/postgres.sh, KEYROT_TEST_POSTGRES).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOR = sys.stdout.isatty()
SECRET = "demo/openai-key"
DATABASE = "demo/orders-db"
FEATURES = "sim-clock"


def paint(code, text):
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def stage(title):
    print("\n" + paint("1", f"== {title} =="), flush=True)


def say(text):
    print(f"  {text}", flush=True)


def note(text):
    print("  " + paint("2", text), flush=True)


class DemoFailure(Exception):
    pass


def check(condition, claim):
    """Prints a checked claim; a false one ends the demo with a failure."""
    if not condition:
        raise DemoFailure(claim)
    print("  " + paint("32", "ok") + f"  {claim}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, stdin=None, env=None, check_ok=True):
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env)
    if check_ok and result.returncode != 0:
        raise DemoFailure(f"{' '.join(args[:4])} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def aws(*args):
    out = run(["aws", *args, "--output", "json"]).stdout
    return json.loads(out) if out.strip() else None


def sqs(*args):
    # The AWS CLI v1 sends SQS calls in us-east-1 to its legacy global endpoint unless told the URL.
    return aws("--endpoint-url", os.environ["AWS_ENDPOINT_URL"], "sqs", *args)


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as err:
        return err.code, None


def hint(key):
    return f"{key[:3]}...{key[-4:]}" if key else "(none)"


class Service(threading.Thread):
    """A service that uses whatever key its live Vercel deployment serves, ten times a second."""

    def __init__(self, sim, project):
        super().__init__(daemon=True)
        self.sim, self.project = sim, project
        self.calls, self.failures, self.keys = 0, [], []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            _, served = http("GET", f"{self.sim}/_sim/vercel/projects/{self.project}/served?target=production&key=OPENAI_API_KEY")
            key = (served or {}).get("value")
            status, _ = http("GET", f"{self.sim}/v1/models", headers={"Authorization": f"Bearer {key}"})
            self.calls += 1
            if not self.keys or self.keys[-1] != key:
                self.keys.append(key)
            if status != 200:
                self.failures.append((time.strftime("%H:%M:%S"), status, hint(key)))
            self.stopping.wait(0.1)


class Pool(threading.Thread):
    """An application's connection pool, as AWS's rotation guide has it: each connection logs in with the
    secret's AWSCURRENT value when it opens and lives a second; every connection queries all the time."""

    def __init__(self, size=4):
        super().__init__(daemon=True)
        import boto3
        import psycopg
        self.psycopg, self.sm = psycopg, boto3.client("secretsmanager")
        self.size, self.queries, self.failures, self.roles = size, 0, [], []
        self.login = None
        self.stopping = threading.Event()

    def credentials(self):
        # A read that fails (moto moves labels in two writes) keeps the last value, as a cached client does.
        try:
            got = self.sm.get_secret_value(SecretId=DATABASE, VersionStage="AWSCURRENT")
            self.login = json.loads(got["SecretString"])
        except Exception:  # noqa: BLE001 - any failed read keeps the cached value
            pass
        return self.login

    def connect(self):
        v = self.credentials()
        if not self.roles or self.roles[-1] != v["username"]:
            self.roles.append(v["username"])
        conn = self.psycopg.connect(host=v["host"], port=v["port"], dbname=v["dbname"], user=v["username"],
                                    password=v["password"], sslmode="require", connect_timeout=5)
        return conn, time.monotonic()

    def run(self):
        pool = []
        while not self.stopping.is_set():
            try:
                kept = []
                for conn, opened in pool:
                    if time.monotonic() - opened < 1.0:
                        kept.append((conn, opened))
                    else:
                        conn.close()
                        kept.append(self.connect())
                pool = kept
                while len(pool) < self.size:
                    pool.append(self.connect())
                for conn, _ in pool:
                    conn.execute("SELECT count(*) FROM orders").fetchone()
                    self.queries += 1
            except Exception as error:  # noqa: BLE001 - every failure is what the demo counts
                self.failures.append((time.strftime("%H:%M:%S"), type(error).__name__, str(error)[:120]))
                pool = []
            self.stopping.wait(0.02)


class Watch:
    """`cargo lambda watch`: the Lambda runtime API emulator running the real binaries."""

    def __init__(self, env, log):
        self.port = free_port()
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            ["cargo", "lambda", "watch", "--quiet", "--ignore-changes", "--features", FEATURES,
             "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise DemoFailure("cargo lambda watch did not start")

    def invoke(self, function, payload):
        out = os.path.join(os.path.dirname(self.log.name), "invoke.json")
        run(["aws", "lambda", "invoke", "--endpoint-url", f"http://127.0.0.1:{self.port}", "--function-name", function,
             "--payload", json.dumps(payload), out])
        with open(out) as f:
            return json.load(f)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def labels(name):
    described = aws("secretsmanager", "describe-secret", "--secret-id", name)
    return {v: s for v, s in described.get("VersionIdsToStages", {}).items() if s}


def version_with(name, stage_label):
    return next((v for v, s in labels(name).items() if stage_label in s), None)


def value(name, stage_label):
    got = aws("secretsmanager", "get-secret-value", "--secret-id", name, "--version-stage", stage_label)
    return json.loads(got["SecretString"])


def key_works(sim, key):
    return http("POST", f"{sim}/_sim/check", {"provider": "openai", "key": key})[1]["works"]


def clear_configuration_test(name=SECRET):
    """moto's gap: onboard's RotateImmediately=false configuration test leaves its AWSPENDING version, which AWS
    removes once testSecret ran, and without which AWS (and keyrot's moto) refuses the next rotation. Play AWS's part."""
    pending = version_with(name, "AWSPENDING")
    if pending and pending != version_with(name, "AWSCURRENT"):
        aws("secretsmanager", "update-secret-version-stage", "--secret-id", name, "--version-stage", "AWSPENDING",
            "--remove-from-version-id", pending)


def run_steps(rotator, name, token):
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"]:
        answer = rotator.invoke("keyrot-rotator", {"Step": step, "SecretId": name, "ClientRequestToken": token})
        if answer.get("errorMessage"):
            raise DemoFailure(f"{step}: {answer['errorMessage']}")
        say(f"{paint('32', step):<24} {answer.get('outcome')}")


def database_scene(env):
    """What a team has before keyrot: an application role `app` that owns its table, and a master user
    `app_master` with CREATEROLE, whose credentials live in an admin secret as RDS writes one."""
    import psycopg
    server = dict(part.split("=", 1) for part in env["KEYROT_TEST_POSTGRES"].split())
    with psycopg.connect(**server, autocommit=True) as db:
        db.execute("CREATE ROLE app_master WITH LOGIN CREATEROLE PASSWORD 'master-demo-pw'")
        db.execute("CREATE ROLE app WITH LOGIN PASSWORD 'first-demo-pw'")
        db.execute("GRANT app TO app_master WITH ADMIN OPTION")
        db.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)")
        db.execute("ALTER TABLE orders OWNER TO app")
    master = {"engine": "postgres", "username": "app_master", "password": "master-demo-pw",
              "host": server["host"], "port": int(server["port"]), "dbname": server["dbname"]}
    aws("secretsmanager", "create-secret", "--name", "keyrot-admin/orders-db-master", "--secret-string", json.dumps(master),
        "--tags", "Key=keyrot-admin:serves,Value=demo/", "Key=keyrot-admin:scope,Value=app")
    return server


def logs_in(server, user, password):
    import psycopg
    try:
        psycopg.connect(host=server["host"], port=server["port"], dbname=server["dbname"], user=user,
                        password=password, sslmode="require", connect_timeout=5).close()
        return True
    except psycopg.OperationalError:
        return False


def database_stage(env, keyrot, rotator, keeper, rotator_arn):
    server = database_scene(env)
    out = run([keyrot, "onboard", DATABASE, "--provider", "postgres", "--username", "app", "--host", server["host"],
               "--port", server["port"], "--dbname", server["dbname"], "--master-secret", "keyrot-admin/orders-db-master",
               "--every-days", "90", "--grace-hours", "1", "--rotator-arn", rotator_arn], stdin="first-demo-pw", env=env)
    say(out.stdout.strip())
    clear_configuration_test(DATABASE)
    pool = Pool()
    pool.start()
    time.sleep(1.5)
    check(pool.queries > 0 and not pool.failures, f"an application's pool of {pool.size} connections queries as app")
    before = set(labels(DATABASE))
    aws("secretsmanager", "rotate-secret", "--secret-id", DATABASE, "--rotation-lambda-arn", rotator_arn)
    token = next(v for v, s in labels(DATABASE).items() if "AWSPENDING" in s and v not in before)
    run_steps(rotator, DATABASE, token)
    current = value(DATABASE, "AWSCURRENT")
    check(current["username"] == "app_clone", "AWSCURRENT logs in as app_clone, which keyrot created from app")
    check(logs_in(server, "app", "first-demo-pw"), "app keeps its password through the 1 h grace period")
    time.sleep(2.5)
    check(pool.roles[-1] == "app_clone", f"the pool's new connections log in as app_clone ({' -> '.join(pool.roles)})")
    report = keeper.invoke("keyrot-grace-keeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
    say(f"grace keeper pass: {json.dumps({k: v for k, v in report.items() if v})}")
    check(report.get("revoked") == 1, "the grace keeper locked the old login out")
    check(not logs_in(server, "app", "first-demo-pw"), "app's old password is refused now")
    time.sleep(1.5)
    pool.stopping.set()
    pool.join(timeout=10)
    check(not pool.failures, f"{pool.queries} queries through the rotation and the revocation, none failed {pool.failures[:2]}")
    return current["password"]


def admin_key_stage(env, sim, keyrot, rotator, keeper, rotator_arn, first):
    """keyrot's own OpenAI admin key, rotated as a secret of its own: minted by the current admin key,
    the old one deleted by the new one after its grace."""
    name = "keyrot-admin/openai"
    out = run([keyrot, "onboard", name, "--provider", "openai-admin", "--every-days", "90", "--grace-hours", "1",
               "--rotator-arn", rotator_arn], stdin=first, env=env)
    say(out.stdout.strip())
    clear_configuration_test(name)
    tags = {t["Key"]: t["Value"] for t in aws("secretsmanager", "describe-secret", "--secret-id", name).get("Tags", [])}
    check(tags.get("keyrot-admin:rotated") == "true", "onboard tagged it keyrot-admin:rotated=true, the owner's consent IAM asks for")
    before = set(labels(name))
    aws("secretsmanager", "rotate-secret", "--secret-id", name, "--rotation-lambda-arn", rotator_arn)
    token = next(v for v, s in labels(name).items() if "AWSPENDING" in s and v not in before)
    run_steps(rotator, name, token)
    admin = value(name, "AWSCURRENT")
    works = lambda key: http("POST", f"{sim}/_sim/check", {"provider": "openai-admin", "key": key})[1]["works"]
    check(admin["provider"] == "openai-admin" and admin["admin_key"] != first and works(admin["admin_key"]),
          f"AWSCURRENT holds a new admin key {hint(admin['admin_key'])}, minted by the old one")
    check(works(first), f"the old admin key {hint(first)} keeps working through its 1 h grace")
    report = keeper.invoke("keyrot-grace-keeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
    say(f"grace keeper pass: {json.dumps({k: v for k, v in report.items() if v})}")
    check(report.get("revoked") == 1 and not works(first), "the new admin key deleted the old one after its grace")
    check(not report.get("errors"), "the rest of that pass used the new admin key (one credential reader per process)")
    return admin["admin_key"]


def rotate_with_steps(rotator, sim, project, rotator_arn):
    """What Secrets Manager does on a rotation: RotateSecret creates AWSPENDING, then the four steps."""
    before = set(labels(SECRET))
    aws("secretsmanager", "rotate-secret", "--secret-id", SECRET, "--rotation-lambda-arn", rotator_arn)
    token = next(v for v, s in labels(SECRET).items() if "AWSPENDING" in s and v not in before)
    say(f"rotate-secret created the AWSPENDING version {token[:8]}")
    note("(on AWS, Secrets Manager now invokes the Lambda with each step by itself; here the AWS CLI does it)")
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"]:
        answer = rotator.invoke("keyrot-rotator", {"Step": step, "SecretId": SECRET, "ClientRequestToken": token})
        if answer.get("errorMessage"):
            raise DemoFailure(f"{step}: {answer['errorMessage']}")
        say(f"{paint('32', step):<24} {answer.get('outcome')}")
        if step == "setSecret":
            state = http("GET", f"{sim}/_sim/state")[1]["vercel"]
            project_state = next(p for p in state["projects"] if p["id"] == project)
            env = next(e for e in project_state["env"] if e["key"] == "OPENAI_API_KEY")
            building = [d for d in project_state["deployments"] if d["ready_state"] != "READY"]
            say(f"   Vercel OPENAI_API_KEY now has fingerprint {env['fingerprint']} (comment {env['comment']!r});"
                f" redeploy {building[-1]['id'] if building else '(done)'} {building[-1]['ready_state'] if building else ''}")
    return token


def main():
    env = dict(os.environ)
    work = env.get("KEYROT_DEMO_WORK", "/tmp")
    stage("1. Stand-ins")
    say(f"moto_server (Secrets Manager, DynamoDB, SNS, SQS) at {env['AWS_ENDPOINT_URL']}")
    run(["cargo", "build", "--quiet", "--features", FEATURES, "--bin", "keyrot", "--bin", "keyrot-rotator",
         "--bin", "keyrot-grace-keeper"], env=env)
    run(["cargo", "build", "--quiet", "-p", "keyrot-sim", "--bin", "keyrot-sim"], env=env)
    sim_process = subprocess.Popen([os.path.join(ROOT, "target/debug/keyrot-sim")], stdout=subprocess.PIPE, text=True)
    watches = []
    service = None
    try:
        ready = json.loads(sim_process.stdout.readline())
        sim = ready["base_url"]
        say(f"keyrot-sim (OpenAI and Vercel, stateful) at {sim}")
        http("POST", f"{sim}/_sim/build_millis", {"millis": 1500})

        # What a person set up before keyrot: an OpenAI key in a Vercel project, deployed.
        project_openai = http("POST", f"{sim}/_sim/openai/projects")[1]["id"]
        person_key = http("POST", f"{sim}/_sim/openai/projects/{project_openai}/user_keys")[1]
        vercel_project = http("POST", f"{sim}/_sim/vercel/projects", {"name": "web"})[1]["id"]
        team, vercel_token = ready["vercel_team_id"], ready["vercel_token"]
        auth = {"Authorization": f"Bearer {vercel_token}"}
        status, _ = http("POST", f"{sim}/v10/projects/{vercel_project}/env?upsert=true&teamId={team}",
                         {"key": "OPENAI_API_KEY", "value": person_key["value"], "type": "encrypted", "target": ["production"]}, auth)
        check(status in (200, 201), "the web app's Vercel project holds the OpenAI key a person made")
        _, listed = http("GET", f"{sim}/v6/deployments?projectId={vercel_project}&target=production&state=READY&limit=1&teamId={team}", headers=auth)
        latest = listed["deployments"][0]
        http("POST", f"{sim}/v13/deployments?teamId={team}", {"name": latest["name"], "deploymentId": latest["uid"], "target": "production"}, auth)
        for _ in range(50):
            served = http("GET", f"{sim}/_sim/vercel/projects/{vercel_project}/served?target=production&key=OPENAI_API_KEY")[1]["value"]
            if served:
                break
            time.sleep(0.2)
        check(served == person_key["value"], f"its live deployment serves {hint(served)}")
        service = Service(sim, vercel_project)
        service.start()
        say("a service starts calling OpenAI ten times a second with whatever key its live deployment serves")

        # keyrot's AWS side, as the stack creates it.
        aws("secretsmanager", "create-secret", "--name", "keyrot-admin/openai", "--secret-string", ready["openai_admin_key"])
        aws("secretsmanager", "create-secret", "--name", "keyrot-admin/vercel", "--secret-string", vercel_token)
        queue = sqs("create-queue", "--queue-name", "keyrot-demo-alerts")["QueueUrl"]
        queue_arn = sqs("get-queue-attributes", "--queue-url", queue, "--attribute-names", "QueueArn")["Attributes"]["QueueArn"]
        aws("sns", "subscribe", "--topic-arn", env["KEYROT_ALERT_TOPIC_ARN"], "--protocol", "sqs", "--notification-endpoint", queue_arn)
        rotator_arn = env["KEYROT_TEST_ROTATOR_ARN"]
        env.update({
            "KEYROT_OPENAI_BASE_URL": f"{sim}/v1", "KEYROT_VERCEL_BASE_URL": sim, "KEYROT_ANTHROPIC_BASE_URL": sim,
            "KEYROT_RENDER_BASE_URL": sim, "KEYROT_ROTATOR_ARN": rotator_arn, "KEYROT_MANAGED_PREFIX": "demo/",
        })
        rotator = Watch(env, os.path.join(work, "rotator.log"))
        watches.append(rotator)
        say(f"the real keyrot-rotator binary runs under 'cargo lambda watch' at http://127.0.0.1:{rotator.port}")

        stage("2. Onboard the key (keyrot onboard)")
        keyrot = os.path.join(ROOT, "target/debug/keyrot")
        out = run([keyrot, "onboard", SECRET, "--provider", "openai", "--project-id", project_openai,
                   "--admin-key-secret", "keyrot-admin/openai", "--api-key-id", person_key["id"],
                   "--vercel", f"{vercel_project}:OPENAI_API_KEY", "--vercel-team", team, "--vercel-env", "production",
                   "--every-days", "30", "--grace-hours", "24", "--rotator-arn", rotator_arn],
                  stdin=person_key["value"], env=env)
        say(out.stdout.strip())
        clear_configuration_test()
        first = value(SECRET, "AWSCURRENT")["api_key"]

        stage("3. A rotation, as the 30-day schedule starts it")
        rotate_with_steps(rotator, sim, vercel_project, rotator_arn)
        current = value(SECRET, "AWSCURRENT")["api_key"]
        check(current != first and current.startswith("sk-svcacct-"), f"AWSCURRENT holds a newly minted key {hint(current)}")
        check(version_with(SECRET, "AWSPREVIOUS") is not None, "the old key is AWSPREVIOUS")
        served = http("GET", f"{sim}/_sim/vercel/projects/{vercel_project}/served?target=production&key=OPENAI_API_KEY")[1]["value"]
        check(served == current, "the live Vercel deployment serves the new key (redeployed and READY before finishSecret)")
        check(key_works(sim, first), f"the old key {hint(first)} still works: its grace period runs 24 h")

        stage("4. Secrets Manager repeats a step: nothing happens twice")
        token = version_with(SECRET, "AWSCURRENT")
        for step in ["createSecret", "finishSecret"]:
            answer = rotator.invoke("keyrot-rotator", {"Step": step, "SecretId": SECRET, "ClientRequestToken": token})
            check(answer.get("outcome") == "already-done", f"{step} again: already done")

        stage("5. The evidence (keyrot audit, alerts, keyrot status)")
        audit = run([keyrot, "audit", "--secret", SECRET], env=env).stdout
        for line in audit.strip().splitlines():
            say(line)
        check(audit.count("succeeded") >= 4, "one succeeded event per step")
        messages = sqs("receive-message", "--queue-url", queue, "--max-number-of-messages", "10") or {}
        events = [json.loads(m["Body"])["MessageAttributes"]["event"]["Value"] for m in messages.get("Messages", [])]
        say(f"alerts received: {', '.join(events) or '(none)'}")
        check("rotation_succeeded" in events, "rotation_succeeded reached the alert subscribers")
        status = run([keyrot, "status"], env=env).stdout
        for line in status.strip().splitlines():
            say(line)
        check("GRACE" in status, "keyrot status shows the grace period")

        stage("6. After the grace period: the grace keeper revokes the old key")
        note("(the keeper runs with its clock 25 h ahead: the sim-clock feature's KEYROT_CLOCK_OFFSET_SECS)")
        keeper = Watch({**env, "KEYROT_CLOCK_OFFSET_SECS": str(25 * 3600)}, os.path.join(work, "keeper.log"))
        watches.append(keeper)
        report = keeper.invoke("keyrot-grace-keeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
        say(f"grace keeper pass: {json.dumps({k: v for k, v in report.items() if v})}")
        check(report.get("revoked") == 1, "one old key revoked")
        check(not key_works(sim, first), f"the old key {hint(first)} is now refused (401)")
        check(key_works(sim, current), f"the new key {hint(current)} works")

        stage("7. An emergency rotation (keyrot rotate --emergency): the old key dies now")
        out = run([keyrot, "rotate", SECRET, "--emergency"], env=env)
        for line in out.stdout.strip().splitlines():
            say(line)
        token = next(v for v, s in labels(SECRET).items() if "AWSPENDING" in s)
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"]:
            answer = rotator.invoke("keyrot-rotator", {"Step": step, "SecretId": SECRET, "ClientRequestToken": token})
            if answer.get("errorMessage"):
                raise DemoFailure(f"{step}: {answer['errorMessage']}")
            say(f"{paint('32', step):<24} {answer.get('outcome')}")
        newest = value(SECRET, "AWSCURRENT")["api_key"]
        check(not key_works(sim, current), f"the previous key {hint(current)} was revoked in finishSecret")
        check(key_works(sim, newest), f"the new key {hint(newest)} works and is live on Vercel")
        tags = [t["Key"] for t in aws("secretsmanager", "describe-secret", "--secret-id", SECRET).get("Tags", [])]
        check("keyrot:next-grace-hours" not in tags and "keyrot:trigger" not in tags, "the one-shot tags are gone; the 24 h policy stays")

        stage("8. A database password, rotated under a live connection pool (alternating users)")
        db_password = database_stage(env, keyrot, rotator, keeper, rotator_arn)

        stage("9. keyrot's own OpenAI admin key, on a schedule and an audit trail of its own")
        new_admin = admin_key_stage(env, sim, keyrot, rotator, keeper, rotator_arn, ready["openai_admin_key"])

        stage("Secrets never leak")
        for watch in watches:
            watch.log.flush()
        logs = "".join(open(w.log.name).read() for w in watches)
        evidence = logs + audit + status + json.dumps(messages)
        keys = (first, current, newest, ready["openai_admin_key"], new_admin, vercel_token, db_password, "master-demo-pw",
                "first-demo-pw")
        leaked = [hint(k) for k in keys if k and k[-12:] in evidence]
        check(not leaked, f"no key value in the functions' logs, the audit trail, the alerts or the CLI output ({len(logs.splitlines())} log lines scanned)")

        stage("The service's view")
        service.stopping.set()
        service.join(timeout=5)
        say(f"{service.calls} calls with the served key, through {len(service.keys)} keys: {', '.join(hint(k) for k in service.keys)}")
        check(not service.failures, f"no call failed ({len(service.failures)} failures: {service.failures[:3]})")
        print("\n" + paint("1", "Done: three keys, a database password and keyrot's own admin key, five rotations, zero downtime. Everything started is stopped now."))
        return 0
    except DemoFailure as failure:
        print("\n" + paint("31", f"FAILED: {failure}"), flush=True)
        for watch in watches:
            watch.log.flush()
            print(f"  (the function's log: {watch.log.name})")
        return 1
    finally:
        if service:
            service.stopping.set()
        for watch in watches:
            watch.stop()
        sim_process.terminate()
        sim_process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
