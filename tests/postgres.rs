//! The PostgreSQL adapter against a real server: `scripts/postgres.sh` (which `make test` runs around the
//! tests) starts one with TLS and sets KEYROT_TEST_POSTGRES to its superuser's connection. Without it these
//! tests say loudly that they were skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keyrot::adapters::postgres::{Database, PostgresDatabase};
use keyrot::domain::postgres::{Endpoint, MasterCredentials, SslMode};
use keyrot::error::Error;
use secrecy::SecretString;
use tokio_postgres::NoTls;

#[path = "common/postgres.rs"]
mod pg;

use pg::{admin, conninfo, login, scene, server};

fn at(endpoint: &Endpoint, sslmode: SslMode) -> Database<'_> {
    Database {
        secret: "prod/db",
        endpoint,
        sslmode,
    }
}

#[tokio::test]
async fn alternating_users_keep_every_connection_working() {
    let Some((endpoint, superuser)) = server() else {
        return;
    };
    let master = scene(&endpoint, &superuser, "shop").await;
    let db = PostgresDatabase::new(Duration::from_secs(10)).expect("adapter");
    let tls = SslMode::Require;

    // A client pool that keeps querying as the application, opening a new connection every time with
    // the credentials it was last given, as an app restarted onto the new secret would.
    let current = Arc::new(std::sync::Mutex::new((
        "shop".to_owned(),
        "first-pw-shop".to_owned(),
    )));
    let (stop, queries, failures) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let pool = {
        let (current, stop, queries, failures, endpoint) = (
            current.clone(),
            stop.clone(),
            queries.clone(),
            failures.clone(),
            endpoint.clone(),
        );
        tokio::spawn(async move {
            let (user, password) = current.lock().expect("lock").clone();
            let (held, connection) =
                tokio_postgres::connect(&conninfo(&endpoint, &user, &password), NoTls)
                    .await
                    .expect("first login");
            tokio::spawn(connection);
            while !stop.load(Ordering::SeqCst) {
                // One long-lived connection, and one new login with the credentials of the moment.
                let (user, password) = current.lock().expect("lock").clone();
                let fresh =
                    tokio_postgres::connect(&conninfo(&endpoint, &user, &password), NoTls).await;
                let ok = match fresh {
                    Ok((client, connection)) => {
                        tokio::spawn(connection);
                        client
                            .query_one("SELECT count(*) FROM shop_orders", &[])
                            .await
                            .is_ok()
                    }
                    Err(_) => false,
                };
                let held_ok = held
                    .query_one("SELECT count(*) FROM shop_orders", &[])
                    .await
                    .is_ok();
                queries.fetch_add(1, Ordering::SeqCst);
                if !(ok && held_ok) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Rotation 1: the clone does not exist yet; it is created as a member of shop, with shop's privileges.
    let second = SecretString::from("second-pw-shop".to_owned());
    db.set_password(at(&endpoint, tls), &master, "shop_clone", "shop", &second)
        .await
        .expect("clone created");
    db.set_password(at(&endpoint, tls), &master, "shop_clone", "shop", &second)
        .await
        .expect("a repeated step is harmless");
    db.check_login(at(&endpoint, tls), &login("shop_clone", "second-pw-shop"))
        .await
        .expect("the clone logs in");
    db.check_login(at(&endpoint, tls), &login("shop", "first-pw-shop"))
        .await
        .expect("the old role still logs in (grace)");
    *current.lock().expect("lock") = ("shop_clone".to_owned(), "second-pw-shop".to_owned());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Grace over: the old role's password stops working; the role, its table and open sessions stay.
    db.lock_out(at(&endpoint, tls), &master, "shop")
        .await
        .expect("locked out");
    let err = db
        .check_login(at(&endpoint, tls), &login("shop", "first-pw-shop"))
        .await
        .expect_err("old password refused");
    assert!(matches!(err, Error::KeyRejected { .. }), "{err}");
    assert!(!err.to_string().contains("first-pw-shop"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Rotation 2: back to the first role, with a new password.
    db.set_password(
        at(&endpoint, tls),
        &master,
        "shop",
        "shop_clone",
        &SecretString::from("third-pw-shop".to_owned()),
    )
    .await
    .expect("first role again");
    db.check_login(at(&endpoint, tls), &login("shop", "third-pw-shop"))
        .await
        .expect("logs in");
    *current.lock().expect("lock") = ("shop".to_owned(), "third-pw-shop".to_owned());
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::SeqCst);
    pool.await.expect("pool");
    let (queries, failures) = (
        queries.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst),
    );
    println!(
        "pool: {queries} rounds of queries through two rotations and a revocation, {failures} failed"
    );
    assert!(queries > 10, "the pool ran ({queries})");
    assert_eq!(failures, 0, "no query failed");
}

#[tokio::test]
async fn the_connection_is_encrypted_unless_the_secret_says_disable() {
    let Some((endpoint, superuser)) = server() else {
        return;
    };
    let master = scene(&endpoint, &superuser, "tlsapp").await;
    admin(&endpoint, &superuser)
        .await
        .batch_execute("DO $$ BEGIN CREATE ROLE tls_only NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; GRANT tls_only TO tlsapp")
        .await
        .expect("tls_only");
    let db = PostgresDatabase::new(Duration::from_secs(10)).expect("adapter");
    // With sslmode require the master's password travels encrypted; the server says so.
    db.set_password(
        at(&endpoint, SslMode::Require),
        &master,
        "tlsapp",
        "tlsapp",
        &SecretString::from("tls-pw".to_owned()),
    )
    .await
    .expect("over TLS");
    db.check_login(at(&endpoint, SslMode::Require), &login("tlsapp", "tls-pw"))
        .await
        .expect("over TLS");
    // The server refuses members of tls_only without TLS (scripts/postgres.sh's pg_hba.conf): so with
    // sslmode disable the same login is refused, which shows the other logins were encrypted.
    let err = db
        .check_login(at(&endpoint, SslMode::Disable), &login("tlsapp", "tls-pw"))
        .await
        .expect_err("plain TCP");
    assert!(err.to_string().contains("refused role tlsapp"), "{err}");
    admin(&endpoint, &superuser)
        .await
        .batch_execute("REVOKE tls_only FROM tlsapp")
        .await
        .expect("revoke");
    db.check_login(at(&endpoint, SslMode::Disable), &login("tlsapp", "tls-pw"))
        .await
        .expect("plain TCP where allowed");
    // The test server's certificate is self-signed: verify-full refuses it, finally.
    let err = db
        .check_login(
            at(&endpoint, SslMode::VerifyFull),
            &login("tlsapp", "tls-pw"),
        )
        .await
        .expect_err("unverified");
    assert!(
        !err.is_retryable(),
        "a certificate that does not verify will not start to: {err}"
    );
    assert!(err.to_string().contains("verify-full"), "{err}");
}

#[tokio::test]
async fn bad_master_credentials_are_refused_naming_the_field() {
    let Some((endpoint, superuser)) = server() else {
        return;
    };
    let master = scene(&endpoint, &superuser, "badmaster").await;
    let db = PostgresDatabase::new(Duration::from_secs(10)).expect("adapter");
    let wrong = MasterCredentials {
        login: login(&master.login.username, "WRONG-MASTER-PW"),
        endpoint: endpoint.clone(),
        sslmode: None,
    };
    let err = db
        .set_password(
            at(&endpoint, SslMode::Require),
            &wrong,
            "badmaster_clone",
            "badmaster",
            &SecretString::from("x".to_owned()),
        )
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("masterarn") && text.contains("refused the master user"),
        "{text}"
    );
    assert!(!text.contains("WRONG-MASTER-PW"), "{text}");

    // A master user without CREATEROLE cannot make the clone.
    admin(&endpoint, &superuser)
        .await
        .batch_execute("ALTER ROLE badmaster_master NOCREATEROLE")
        .await
        .expect("alter");
    let err = db
        .set_password(
            at(&endpoint, SslMode::Require),
            &master,
            "badmaster_clone",
            "badmaster",
            &SecretString::from("y".to_owned()),
        )
        .await
        .expect_err("no CREATEROLE");
    assert!(err.to_string().contains("CREATEROLE"), "{err}");
    let db_check = admin(&endpoint, &superuser).await;
    let clone = db_check
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = 'badmaster_clone'",
            &[],
        )
        .await
        .expect("query");
    assert!(clone.is_none(), "nothing was created");

    // An unreachable database is worth retrying.
    let closed = Endpoint {
        host: "127.0.0.1".into(),
        port: 1,
        dbname: "app".into(),
    };
    let err = db
        .check_login(at(&closed, SslMode::Require), &login("x", "y"))
        .await
        .expect_err("unreachable");
    assert!(err.is_retryable(), "{err}");
}
