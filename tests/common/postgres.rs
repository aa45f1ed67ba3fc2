//! The test PostgreSQL server (`scripts/postgres.sh` starts it and sets KEYROT_TEST_POSTGRES), and the
//! scene a database's owner would set: shared by the adapter's tests and the rotation's.

#![allow(dead_code)]

use keyrot::domain::postgres::{Endpoint, Login, MasterCredentials};
use secrecy::SecretString;
use tokio_postgres::NoTls;

/// The test server's superuser, or None (and a loud note) when no server was started.
pub fn server() -> Option<(Endpoint, Login)> {
    let Ok(spec) = std::env::var("KEYROT_TEST_POSTGRES") else {
        eprintln!(
            "SKIPPED: no PostgreSQL server (KEYROT_TEST_POSTGRES is not set): run `scripts/postgres.sh cargo test --test postgres`, as `make test` does"
        );
        return None;
    };
    let field = |name: &str| {
        spec.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("KEYROT_TEST_POSTGRES has no {name}"))
            .to_owned()
    };
    let endpoint = Endpoint {
        host: field("host"),
        port: field("port").parse().expect("port"),
        dbname: field("dbname"),
    };
    Some((
        endpoint,
        Login {
            username: field("user"),
            password: SecretString::from(field("password")),
        },
    ))
}

pub fn login(user: &str, password: &str) -> Login {
    Login {
        username: user.to_owned(),
        password: SecretString::from(password.to_owned()),
    }
}

pub fn conninfo(endpoint: &Endpoint, user: &str, password: &str) -> String {
    format!(
        "host={} port={} dbname={} user={user} password={password} sslmode=disable",
        endpoint.host, endpoint.port, endpoint.dbname
    )
}

/// A superuser session, to set the scene (roles and tables) the way a database's owner would.
pub async fn admin(endpoint: &Endpoint, master: &Login) -> tokio_postgres::Client {
    use secrecy::ExposeSecret;
    let (client, connection) = tokio_postgres::connect(
        &conninfo(endpoint, &master.username, master.password.expose_secret()),
        NoTls,
    )
    .await
    .expect("superuser connects");
    tokio::spawn(connection);
    client
}

/// A fresh application role `base` with a table it owns and one row, and a master user with CREATEROLE.
pub async fn scene(endpoint: &Endpoint, superuser: &Login, base: &str) -> MasterCredentials {
    let db = admin(endpoint, superuser).await;
    let master = format!("{base}_master");
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {base}_orders; DROP ROLE IF EXISTS {base}_clone; DROP ROLE IF EXISTS {base}; DROP ROLE IF EXISTS {master};
         CREATE ROLE {master} WITH LOGIN CREATEROLE PASSWORD 'master-pw-{base}';
         CREATE ROLE {base} WITH LOGIN PASSWORD 'first-pw-{base}';
         GRANT {base} TO {master} WITH ADMIN OPTION;
         CREATE TABLE {base}_orders (id int); INSERT INTO {base}_orders VALUES (1);
         ALTER TABLE {base}_orders OWNER TO {base};"
    ))
    .await
    .expect("scene");
    MasterCredentials {
        login: login(&master, &format!("master-pw-{base}")),
        endpoint: endpoint.clone(),
        sslmode: None,
    }
}
