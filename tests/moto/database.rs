//! A PostgreSQL password rotated by the real rotator and grace keeper, on moto and the test server that
//! `scripts/postgres.sh` starts, with applications querying through the rotation and the revocation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use keyrot::domain::postgres::{Endpoint, Login, MasterCredentials};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use crate::keeper::{Keeper, scope};
use crate::pg::{admin, conninfo, scene, server};
use crate::support::cli::cli;
use crate::support::{AlertQueue, World, assert_no_key, captured_logs, unique};

/// One test's database: a fresh role pair (`base` and its clone) with a table and a master user on the
/// test server, and a world of moto and the simulator.
struct Db {
    endpoint: Endpoint,
    superuser: Login,
    base: String,
    master: MasterCredentials,
    world: World,
}

impl Db {
    /// None (and a loud note) without a test server.
    async fn start() -> Option<Db> {
        let (endpoint, superuser) = server()?;
        let base = format!("it{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let master = scene(&endpoint, &superuser, &base).await;
        let world = World::new().await;
        Some(Db {
            endpoint,
            superuser,
            base,
            master,
            world,
        })
    }

    /// A master secret as RDS writes one, holding `password` for the master user, under the admin
    /// prefix and tagged to serve the test's secrets and the role pair `scope`. Returns its ARN.
    async fn master_secret(&self, password: &str, scope: &str) -> String {
        let name = format!("keyrot-admin/{}", unique("db-master"));
        let e = &self.endpoint;
        let value = json!({"engine": "postgres", "username": self.master.login.username, "password": password,
            "host": e.host, "port": e.port, "dbname": e.dbname});
        let tags = [
            ("keyrot-admin:serves", "it/"),
            ("keyrot-admin:scope", scope),
        ];
        self.world
            .moto
            .create_secret_named(&name, &value, &tags)
            .await;
        self.world.moto.arn(&name).await
    }

    /// [`Db::master_secret`] with the master user's own password, serving this test's role pair.
    async fn own_master_secret(&self) -> String {
        self.master_secret(self.master.login.password.expose_secret(), &self.base)
            .await
    }

    /// The application's value in AWS's multi-user format: the first role with `password`.
    fn value(&self, password: &str, masterarn: &str) -> Value {
        let e = &self.endpoint;
        json!({"engine": "postgres", "username": self.base, "password": password,
            "host": e.host, "port": e.port, "dbname": e.dbname, "masterarn": masterarn})
    }
}

/// Applications of the database: one session opened before the rotation and kept, and a new login
/// every few milliseconds with the value they were last deployed with (`deploy`), as a redeployed app
/// reads its secret once at start.
struct Apps {
    value: Arc<Mutex<Value>>,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Apps {
    async fn start(value: &Value, table: &str) -> Apps {
        let value = Arc::new(Mutex::new(value.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let (queries, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (v, s, q, f) = (
            value.clone(),
            stop.clone(),
            queries.clone(),
            failures.clone(),
        );
        let sql = format!("SELECT count(*) FROM {table}");
        let first = v.lock().expect("lock").clone();
        let held = connect(&first).await.expect("first login");
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let deployed = v.lock().expect("lock").clone();
                let fresh = match connect(&deployed).await {
                    Some(client) => client.query_one(&sql, &[]).await.is_ok(),
                    None => false,
                };
                let kept = held.query_one(&sql, &[]).await.is_ok();
                q.fetch_add(1, Ordering::SeqCst);
                if !(fresh && kept) {
                    eprintln!("apps: a query failed as {}", deployed["username"]);
                    f.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
        });
        Apps {
            value,
            stop,
            queries,
            failures,
            task,
        }
    }

    fn deploy(&self, value: &Value) {
        *self.value.lock().expect("lock") = value.clone();
    }

    async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("apps");
        (
            self.queries.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }
}

async fn current(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Option<Value> {
    let out = sm.get_secret_value().secret_id(name).send().await.ok()?;
    serde_json::from_str(out.secret_string()?).ok()
}

async fn connect(value: &Value) -> Option<tokio_postgres::Client> {
    let endpoint = Endpoint {
        host: value["host"].as_str()?.to_owned(),
        port: u16::try_from(value["port"].as_u64()?).ok()?,
        dbname: value["dbname"].as_str()?.to_owned(),
    };
    let info = conninfo(
        &endpoint,
        value["username"].as_str()?,
        value["password"].as_str()?,
    );
    let (client, connection) = tokio_postgres::connect(&info, NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

#[tokio::test]
async fn a_database_password_rotates_under_live_connections_and_the_old_role_is_locked_out() {
    let Some(db) = Db::start().await else {
        return;
    };
    let (world, base) = (&db.world, &db.base);
    let (keeper_scope, prefix) = scope();
    let masterarn = db.own_master_secret().await;
    // A password with nothing of the role's name in it, so that the scan below finds only leaks.
    let first_password = format!("Pw{}", uuid::Uuid::new_v4().simple());
    admin(&db.endpoint, &db.superuser)
        .await
        .batch_execute(&format!("ALTER ROLE {base} PASSWORD '{first_password}'"))
        .await
        .expect("first password");
    let value = db.value(&first_password, &masterarn);
    let name = world
        .moto
        .onboard_secret(&prefix, &value, &[("keyrot:grace-hours", "1")])
        .await;
    let alerts = AlertQueue::subscribe(&world.moto.config.alert_topic_arn, &name);
    let apps = Apps::start(&value, &format!("{base}_orders")).await;

    world.rotate(&name).await;
    let rotated = current(&world.moto.sm, &name).await.expect("AWSCURRENT");
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    apps.deploy(&rotated);
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert_eq!(
        rotated["username"],
        format!("{base}_clone"),
        "the role not in use"
    );
    assert_eq!(
        rotated["masterarn"],
        masterarn.as_str(),
        "AWS's format is kept"
    );
    assert!(connect(&rotated).await.is_some(), "the new login works");
    assert!(
        connect(&value).await.is_some(),
        "the old login works through its grace"
    );

    let keeper = Keeper::new(world, &keeper_scope).await;
    let report = keeper.pass_at(Duration::minutes(61)).await;
    assert_eq!(report.revoked, 1, "{report:?}");
    assert!(
        connect(&value).await.is_none(),
        "the old password is refused after the grace"
    );
    assert!(connect(&rotated).await.is_some());
    tokio::time::sleep(StdDuration::from_millis(300)).await;

    let (queries, failures) = apps.stop().await;
    println!(
        "apps: {queries} rounds of queries through a rotation and a revocation, {failures} failed"
    );
    assert!(queries > 5, "the apps ran ({queries})");
    assert_eq!(failures, 0, "no query failed");
    let trail = world.moto.audit_trail(&name).await;
    assert_eq!(
        trail.iter().filter(|(a, _)| a == "revoke").count(),
        1,
        "{trail:?}"
    );

    let sent = alerts.drain();
    assert!(!sent.is_empty(), "the rotation was alerted");
    let items = format!("{:?}", world.moto.items(&name).await);
    for password in [
        first_password.as_str(),
        rotated["password"].as_str().expect("password"),
    ] {
        for (what, text) in [
            ("alerts", format!("{sent:?}")),
            ("audit items", items.clone()),
            ("logs", captured_logs()),
        ] {
            assert_no_key(&text, password, what);
        }
    }
}

#[tokio::test]
async fn a_master_secret_that_may_not_serve_or_does_not_log_in_is_refused_with_nothing_stored() {
    let Some(db) = Db::start().await else {
        return;
    };
    let (world, base) = (&db.world, &db.base);
    // Tagged for another role pair: it may not set this role's password.
    let other_roles = db
        .master_secret(db.master.login.password.expose_secret(), "billing")
        .await;
    // Tagged for this pair, with a wrong password.
    let wrong_password = db.master_secret("WRONG-MASTER-PASSWORD", base).await;
    for (masterarn, expected) in [
        (other_roles, "keyrot-admin:scope tag does not include"),
        (wrong_password, "refused the master user"),
    ] {
        let value = db.value(&format!("first-pw-{base}"), &masterarn);
        let name = world.moto.onboard_secret("db-bad", &value, &[]).await;
        let token = world.moto.rotate_secret(&name, true).await;
        let err = world
            .step("createSecret", &name, &token)
            .await
            .expect_err("refused");
        assert!(err.contains("masterarn") && err.contains(expected), "{err}");
        assert!(!err.contains("WRONG-MASTER-PASSWORD"), "{err}");
        assert_eq!(
            world.moto.value(&name, "AWSPENDING", Some(&token)).await,
            None,
            "nothing stored"
        );
    }
}

#[tokio::test]
async fn onboard_puts_a_database_password_under_keyrot_in_aws_format_checked_first() {
    let Some(db) = Db::start().await else {
        return;
    };
    let (world, base, endpoint) = (&db.world, &db.base, &db.endpoint);
    let masterarn = db.own_master_secret().await;
    let name = unique("cli-db");
    let onboard = |password: &str| {
        cli(world)
            .args(["onboard", &name])
            .flag("--provider", "postgres")
            .flag("--username", base)
            .flag("--host", &endpoint.host)
            .flag("--port", endpoint.port.to_string())
            .flag("--dbname", &endpoint.dbname)
            .flag("--master-secret", &masterarn)
            .flag("--every-days", "90")
            .stdin(password)
    };
    let refused = onboard("WRONG-ROLE-PASSWORD").run().await;
    refused
        .exits_with(1)
        .says(&[&format!("refused role {base}")]);
    assert_no_key(&refused.text(), "WRONG-ROLE-PASSWORD", "onboard's output");
    assert!(
        world.moto.value(&name, "AWSCURRENT", None).await.is_none(),
        "nothing written"
    );

    onboard(&format!("first-pw-{base}")).run().await.success();
    let value = world
        .moto
        .value(&name, "AWSCURRENT", None)
        .await
        .expect("written");
    assert_eq!(value["engine"], "postgres");
    assert_eq!(value["username"], base.as_str());
    assert!(
        value.get("api_key").is_none() && value.get("key_id").is_none(),
        "{value}"
    );
    // Secrets Manager's configuration test, on the version onboard's rotate-secret labelled
    // AWSPENDING: the role logs in. moto leaves that label behind (AWS removes it): play AWS's part.
    let placeholder = world
        .moto
        .version_of(&name, "AWSPENDING")
        .await
        .expect("the configuration test's version");
    world
        .step("testSecret", &name, &placeholder)
        .await
        .expect("the configuration test passes");
    world.moto.clear_pending(&name).await;
    world.rotate(&name).await;
    let rotated = current(&world.moto.sm, &name).await.expect("AWSCURRENT");
    assert_eq!(rotated["username"], format!("{base}_clone"));
    assert!(
        connect(&rotated).await.is_some(),
        "the first rotation works"
    );
}
