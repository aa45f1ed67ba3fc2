//! PostgreSQL passwords with alternating users, in AWS's own multi-user secret format: what a value and its
//! master secret say, which role a rotation sets a password on, and the connection string targets receive.
//!
//! The value is `{"engine": "postgres", "username", "password", "host", "port", "dbname", "masterarn"}`
//! (plus an optional `"postgres": {"sslmode", "url_template"}` block), so that a secret AWS's rotation
//! templates manage can be handed to keyrot unchanged. Each rotation sets a new password on the role *not*
//! in use (`app` and `app_clone`, as AWS names them), so AWSPREVIOUS's role keeps logging in through the
//! grace period.
//!
//! Trust: the master credentials go only to the database their own secret names. A value's writer picks
//! `masterarn`, but that secret must be an admin secret that serves this one (`domain::admin`), and the
//! value's host and port must be the master secret's: a writer cannot send another database's master
//! password to a server of their choosing.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::domain::fields::Fields;
use crate::error::{Error, Result};

/// The suffix AWS's multi-user rotation gives the second role.
pub const CLONE_SUFFIX: &str = "_clone";
/// What targets receive when the value has no `postgres.url_template`.
pub const DEFAULT_URL_TEMPLATE: &str =
    "postgres://{username}:{password}@{host}:{port}/{dbname}?sslmode=require";
/// PostgreSQL's limit on identifiers (NAMEDATALEN - 1), which the clone's name must fit.
const MAX_ROLE_LEN: usize = 63;

/// How keyrot's connections to the database are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// TLS, without checking the server's certificate (libpq's `require`): the default.
    Require,
    /// TLS, with the certificate checked against the system's roots and the host name.
    VerifyFull,
    /// No TLS: for a database on the same host or in a test.
    Disable,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
            SslMode::Disable => "disable",
        }
    }

    fn parse(text: &str) -> Option<SslMode> {
        [SslMode::Require, SslMode::VerifyFull, SslMode::Disable]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

/// Where a database is, as a value or a master secret says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

/// A `"engine": "postgres"` value, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// The role this version logs in as.
    pub username: String,
    pub endpoint: Endpoint,
    /// The admin secret with the master credentials (`masterarn`: an ARN or a name).
    pub master_secret: String,
    pub sslmode: SslMode,
    pub url_template: String,
}

/// A role and its password: one login.
pub struct Login {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PostgresSettings {
    /// Parses the fields of a postgres value (the caller has taken `password` out).
    pub(crate) fn parse(doc: &Fields<'_>) -> Result<Self> {
        let username = doc.required_str(
            "username",
            "set username to the role the application logs in as",
        )?;
        role_name(doc, "username", &username)?;
        let endpoint = endpoint_fields(doc, true)?;
        let master_secret = doc.required_str(
            "masterarn",
            "set masterarn to the ARN of the admin secret holding the master credentials",
        )?;
        let block = doc.block("postgres")?;
        let sslmode = match block.as_ref().map(|b| b.optional_str("sslmode")).transpose()?.flatten() {
            None => SslMode::Require,
            Some(text) => SslMode::parse(&text).ok_or_else(|| {
                doc.bad("postgres.sslmode", "is not require, verify-full or disable", "use \"require\" (the default), \"verify-full\", or \"disable\" for a local server")
            })?,
        };
        let url_template = match block
            .as_ref()
            .map(|b| b.optional_str("url_template"))
            .transpose()?
            .flatten()
        {
            None => DEFAULT_URL_TEMPLATE.to_owned(),
            Some(template) => check_template(doc, template)?,
        };
        Ok(PostgresSettings {
            username,
            endpoint,
            master_secret,
            sslmode,
            url_template,
        })
    }

    /// The role the next rotation sets a password on: the other of the pair.
    pub fn next_username(&self) -> String {
        match self.username.strip_suffix(CLONE_SUFFIX) {
            Some(base) if !base.is_empty() => base.to_owned(),
            _ => format!("{}{CLONE_SUFFIX}", self.username),
        }
    }

    /// What targets receive for `login`: the template with each placeholder filled in, the user name and
    /// password percent-encoded (a URL's userinfo).
    pub fn connection_string(&self, login: &Login) -> SecretString {
        let e = &self.endpoint;
        let text = self
            .url_template
            .replace("{username}", &percent_encode(&login.username))
            .replace("{host}", &e.host)
            .replace("{port}", &e.port.to_string())
            .replace("{dbname}", &percent_encode(&e.dbname))
            .replace(
                "{password}",
                &percent_encode(login.password.expose_secret()),
            );
        SecretString::from(text)
    }

    /// Refuses master credentials for another database than the value's.
    pub fn check_master(&self, secret: &str, master: &MasterCredentials) -> Result<()> {
        let (ours, theirs) = (&self.endpoint, &master.endpoint);
        if !ours.host.eq_ignore_ascii_case(&theirs.host) || ours.port != theirs.port {
            return Err(Error::config(
                secret,
                "host",
                format!(
                    "is {}:{}, but the master secret {} is for {}:{}",
                    ours.host, ours.port, self.master_secret, theirs.host, theirs.port
                ),
                "set host and port to the master secret's, or name the master secret of this database in masterarn",
            ));
        }
        if self.sslmode == SslMode::Disable && master.sslmode != Some(SslMode::Disable) {
            return Err(Error::config(
                secret,
                "postgres.sslmode",
                format!(
                    "is disable, but the master secret {} does not allow connections without TLS",
                    self.master_secret
                ),
                "use \"require\" or \"verify-full\"; for a local server, add \"sslmode\": \"disable\" to the master secret",
            ));
        }
        if master.login.username == self.username || master.login.username == self.next_username() {
            return Err(Error::config(
                secret,
                "username",
                format!(
                    "is the master user {} (or its clone)",
                    master.login.username
                ),
                "rotate an application role, never the master user, with alternating users",
            ));
        }
        Ok(())
    }
}

/// The master secret's value: `{"username", "password", "host", "port", "dbname"?}` as RDS writes it, with
/// an optional `"sslmode"`: the admin's word on TLS, which a managed value cannot weaken.
pub struct MasterCredentials {
    pub login: Login,
    pub endpoint: Endpoint,
    pub sslmode: Option<SslMode>,
}

impl MasterCredentials {
    /// Parses the master secret's value. `secret` is the managed secret, `field` names `masterarn`.
    pub fn parse(secret: &str, master: &str, text: &SecretString) -> Result<Self> {
        let path = format!("masterarn {master}: ");
        let bad = |problem: &str| {
            Error::config(
                secret,
                "masterarn",
                format!("names {master}, which {problem}"),
                "store the master credentials there as RDS does: {\"username\", \"password\", \"host\", \"port\"}",
            )
        };
        let mut fields = json_object(text).ok_or_else(|| bad("is not a JSON object"))?;
        let password =
            take_password(secret, &path, &mut fields).map_err(|_| bad("has no password"))?;
        let doc = Fields::new(secret, path, &fields);
        let username = doc.required_str("username", "store the master user's name in username")?;
        let mut endpoint = endpoint_fields(&doc, false)?;
        if endpoint.dbname.is_empty() {
            endpoint.dbname = "postgres".to_owned();
        }
        let sslmode = match doc.optional_str("sslmode")? {
            None => None,
            Some(text) => Some(SslMode::parse(&text).ok_or_else(|| {
                bad("has an sslmode that is not require, verify-full or disable")
            })?),
        };
        Ok(MasterCredentials {
            login: Login { username, password },
            endpoint,
            sslmode,
        })
    }

    /// The TLS keyrot uses as the master user: the value's `wanted` mode, but never less than the
    /// master secret's (verify-full there is verify-full here), and `require` where only the master
    /// secret speaks (a revocation).
    pub fn sslmode(&self, wanted: Option<SslMode>) -> SslMode {
        match (self.sslmode, wanted) {
            (Some(SslMode::VerifyFull), _) => SslMode::VerifyFull,
            (_, Some(wanted)) => wanted,
            (Some(own), None) => own,
            (None, None) => SslMode::Require,
        }
    }
}

fn endpoint_fields(doc: &Fields<'_>, dbname_required: bool) -> Result<Endpoint> {
    let host = doc.required_str("host", "set host to the database's address")?;
    if host.is_empty()
        || host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
    {
        return Err(doc.bad(
            "host",
            "is not a host name or address",
            "set host to the database's host name, such as db.abc123.us-east-1.rds.amazonaws.com",
        ));
    }
    let port = match doc.get("port") {
        None => 5432,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                doc.bad(
                    "port",
                    format!("{n} is not a port"),
                    "use the database's port, such as 5432",
                )
            })?,
        // RDS writes the port as a number; some tools write a string.
        Some(Value::String(s)) => s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            doc.bad(
                "port",
                "is not a port",
                "use the database's port, such as 5432",
            )
        })?,
        Some(_) => {
            return Err(doc.bad(
                "port",
                "must be a number",
                "use the database's port, such as 5432",
            ));
        }
    };
    let dbname = match doc.optional_str("dbname")? {
        Some(name) => name,
        None if dbname_required => {
            return Err(doc.bad(
                "dbname",
                "is missing",
                "set dbname to the application's database",
            ));
        }
        None => String::new(),
    };
    Ok(Endpoint { host, port, dbname })
}

fn json_object(text: &SecretString) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text.expose_secret()) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

/// Takes `password` out of a value's fields: a string of 1 to 1024 bytes.
pub(crate) fn take_password(
    secret: &str,
    path: &str,
    fields: &mut Map<String, Value>,
) -> Result<SecretString> {
    match fields.remove("password") {
        Some(Value::String(p)) if !p.is_empty() && p.len() <= 1024 => Ok(SecretString::from(p)),
        _ => Err(Error::config(
            secret,
            format!("{path}password"),
            "is missing, empty, longer than 1024 bytes or not a string",
            "put the role's current password in password",
        )),
    }
}

/// A role name keyrot will quote into SQL: letters, digits, `_` and `$`, short enough for its clone.
fn role_name(doc: &Fields<'_>, field: &str, name: &str) -> Result<()> {
    let fits = !name.is_empty()
        && name.len() + CLONE_SUFFIX.len() <= MAX_ROLE_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if fits {
        Ok(())
    } else {
        Err(doc.bad(
            field,
            format!(
                "must be 1 to {} letters, digits, _ or $",
                MAX_ROLE_LEN - CLONE_SUFFIX.len()
            ),
            "use the application role's name, such as app",
        ))
    }
}

fn check_template(doc: &Fields<'_>, template: String) -> Result<String> {
    if !template.contains("{password}") || template.len() > 1024 {
        return Err(doc.bad(
            "postgres.url_template",
            "must hold {password} (and be at most 1024 characters)",
            "use a template such as postgres://{username}:{password}@{host}:{port}/{dbname}?sslmode=require",
        ));
    }
    Ok(template)
}

/// RFC 3986 userinfo encoding: every byte but unreserved characters as %XX.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(value: Value) -> Result<crate::domain::ManagedSecret> {
        let text = SecretString::from(value.to_string());
        crate::domain::ManagedSecret::parse("prod/db", "AWSCURRENT", &text)
    }

    fn settings(value: Value) -> Result<PostgresSettings> {
        match parsed(value)?.provider {
            crate::domain::ProviderSettings::Postgres(settings) => Ok(settings),
            other => panic!("not a database: {other:?}"),
        }
    }

    fn value() -> Value {
        json!({"engine": "postgres", "username": "app", "password": "CURRENT-PASSWORD", "host": "db.example.com", "port": 5432,
               "dbname": "shop", "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:keyrot-admin/db-AbCdEf"})
    }

    #[test]
    fn roles_alternate_between_the_user_and_its_clone() {
        let first = settings(value()).expect("valid");
        assert_eq!(first.next_username(), "app_clone");
        let mut v = value();
        v["username"] = json!("app_clone");
        assert_eq!(settings(v).expect("valid").next_username(), "app");
        assert_eq!(first.sslmode, SslMode::Require);
        assert_eq!(first.url_template, DEFAULT_URL_TEMPLATE);
    }

    #[test]
    fn the_connection_string_encodes_what_a_url_cannot_hold() {
        let mut v = value();
        v["postgres"] = json!({"url_template": "postgresql://{username}:{password}@{host}:{port}/{dbname}?application_name=web"});
        let s = settings(v).expect("valid");
        let login = Login {
            username: "app".into(),
            password: SecretString::from("p@ss:w/rd"),
        };
        assert_eq!(
            s.connection_string(&login).expose_secret(),
            "postgresql://app:p%40ss%3Aw%2Frd@db.example.com:5432/shop?application_name=web"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_field_and_the_fix() {
        let cases = [
            (
                "username",
                json!("app; DROP ROLE x"),
                "username: must be 1 to 57 letters",
            ),
            ("username", json!(""), "username: is empty"),
            (
                "host",
                json!("db.example.com/evil?"),
                "host: is not a host name",
            ),
            ("port", json!(70000), "port: 70000 is not a port"),
            ("dbname", Value::Null, "dbname"),
            ("masterarn", Value::Null, "masterarn: is missing"),
            ("password", Value::Null, "password: is missing"),
            (
                "password",
                json!(5),
                "password: is missing, empty, longer than 1024 bytes or not a string",
            ),
            (
                "postgres",
                json!({"sslmode": "allow"}),
                "postgres.sslmode: is not require",
            ),
            (
                "postgres",
                json!({"url_template": "postgres://{username}@{host}"}),
                "postgres.url_template: must hold {password}",
            ),
        ];
        for (field, bad, expected) in cases {
            let mut v = value();
            if bad.is_null() {
                v.as_object_mut().expect("object").remove(field);
            } else {
                v[field] = bad;
            }
            let text = settings(v).expect_err(expected).to_string();
            assert!(text.contains("secret prod/db"), "{text}");
            assert!(text.contains(expected), "{expected}: {text}");
            assert!(text.contains("fix:"), "{text}");
            assert!(!text.contains("CURRENT-PASSWORD"), "{text}");
        }
        let login = parsed(value()).expect("valid").login().expect("a login");
        assert_eq!(login.username, "app");
        assert_eq!(login.password.expose_secret(), "CURRENT-PASSWORD");
    }

    fn master(host: &str, user: &str) -> MasterCredentials {
        let text = json!({"username": user, "password": "MASTER-PASSWORD-VALUE", "host": host, "port": 5432, "engine": "postgres"});
        MasterCredentials::parse(
            "prod/db",
            "keyrot-admin/db",
            &SecretString::from(text.to_string()),
        )
        .expect("master")
    }

    #[test]
    fn master_credentials_go_only_to_their_own_database() {
        let s = settings(value()).expect("valid");
        s.check_master("prod/db", &master("DB.example.com", "postgres"))
            .expect("same host");
        let err = s
            .check_master("prod/db", &master("db.other.com", "postgres"))
            .expect_err("another host")
            .to_string();
        assert!(
            err.contains("host: is db.example.com:5432, but the master secret"),
            "{err}"
        );
        assert!(!err.contains("MASTER-PASSWORD"), "{err}");
        let err = s
            .check_master("prod/db", &master("db.example.com", "app_clone"))
            .expect_err("master is the clone")
            .to_string();
        assert!(err.contains("username: is the master user"), "{err}");
    }

    #[test]
    fn a_master_secret_without_a_password_is_refused_without_quoting_it() {
        for text in [
            "not json",
            "[1]",
            r#"{"username": "postgres", "host": "h"}"#,
        ] {
            let err =
                MasterCredentials::parse("prod/db", "keyrot-admin/db", &SecretString::from(text))
                    .err()
                    .expect("refused")
                    .to_string();
            assert!(err.contains("masterarn: names keyrot-admin/db"), "{err}");
        }
        let m = master("db.example.com", "postgres");
        assert_eq!(m.endpoint.dbname, "postgres", "RDS's default database");
        assert!(
            !format!("{:?}", m.login).contains("MASTER"),
            "Debug never shows the password"
        );
    }
}
