//! PostgreSQL, as the alternating-users rotation uses it (`domain::postgres`): a login checked with
//! `SELECT 1`, a password set on a role through the master user (the clone created on first use, as a member
//! of the application role so it has the same privileges), and a retired role locked out with a password
//! nobody knows. Never a dropped role: objects it owns and sessions it has stay.
//!
//! Passwords reach the server already hashed (SCRAM-SHA-256, as PostgreSQL stores them), so the plaintext is
//! never in a statement the server could log.
//!
//! [`PostgresIssuer`] is the provider of the rotation: createSecret draws the new password (nothing is
//! written then, so any attempt's value may win), setSecret sets it on the role not in use (`install`),
//! and revocation locks the old role out. The master credentials are read from their admin secret.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::adapters::admin_keys::AdminKeys;
use crate::adapters::random;
use crate::domain::ManagedSecret;
use crate::domain::admin::AdminRequest;
use crate::domain::audit::{KeyHandle, RevocationStatus};
use crate::domain::keys::{NewKey, redacted};
use crate::domain::postgres::{
    CLONE_SUFFIX, Endpoint, Login, MasterCredentials, PostgresSettings, SslMode,
};
use crate::error::{Error, Result, Transience};

const SYSTEM: &str = "postgres";

/// One database, reached with the TLS its secret asks for.
#[derive(Clone)]
pub struct PostgresDatabase {
    timeout: Duration,
    /// TLS without a certificate check (`require`), and with one (`verify-full`, built on first use:
    /// loading the system's roots costs milliseconds a cold start should not pay).
    require: Arc<ClientConfig>,
    verify_full: Arc<OnceLock<Arc<ClientConfig>>>,
}

/// Which database a call is for, and which managed secret it is on behalf of (for errors).
#[derive(Debug, Clone, Copy)]
pub struct Database<'a> {
    pub secret: &'a str,
    pub endpoint: &'a Endpoint,
    pub sslmode: SslMode,
}

/// Who keyrot connects as, for messages: the application's role, or the master user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    Application,
    Master,
}

impl PostgresDatabase {
    pub fn new(timeout: Duration) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let require = tls_builder(&provider)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider.clone())))
            .with_no_client_auth();
        Ok(PostgresDatabase {
            timeout,
            require: Arc::new(require),
            verify_full: Arc::default(),
        })
    }

    fn verify_full(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = self.verify_full.get() {
            return Ok(config.clone());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let config = tls_builder(&provider)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(self.verify_full.get_or_init(|| Arc::new(config)).clone())
    }

    /// Logs in as the master user and runs `SELECT 1`: a wrong master password is refused before a
    /// rotation stores anything.
    pub async fn check_master(&self, db: Database<'_>, master: &MasterCredentials) -> Result<()> {
        self.select_one(db, &master.login, As::Master).await
    }

    /// Logs in as `login` and runs `SELECT 1`. A refused password is [`Error::KeyRejected`].
    pub async fn check_login(&self, db: Database<'_>, login: &Login) -> Result<()> {
        self.select_one(db, login, As::Application).await
    }

    async fn select_one(&self, db: Database<'_>, login: &Login, who: As) -> Result<()> {
        let client = self.connect(db, login, who).await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|err| self.failure(db.secret, db.endpoint, login, who, &err))?;
        Ok(())
    }

    /// Sets `password` on `role` as the master user. A role that does not exist yet is created as a member of
    /// `member_of` (the application role it alternates with), so it holds the same privileges.
    pub async fn set_password(
        &self,
        db: Database<'_>,
        master: &MasterCredentials,
        role: &str,
        member_of: &str,
        password: &SecretString,
    ) -> Result<()> {
        let Database {
            secret, endpoint, ..
        } = db;
        let client = self.connect(db, &master.login, As::Master).await?;
        let fail = |err: &tokio_postgres::Error| {
            self.failure(secret, endpoint, &master.login, As::Master, err)
        };
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(|err| fail(&err))?
            .is_some();
        let alter = format!(
            "ALTER ROLE {} WITH LOGIN {}",
            ident(role),
            password_clause(password)
        );
        if exists {
            return client.batch_execute(&alter).await.map_err(|err| fail(&err));
        }
        let create = format!(
            "CREATE ROLE {} WITH LOGIN {} IN ROLE {}",
            ident(role),
            password_clause(password),
            ident(member_of)
        );
        match client.batch_execute(&create).await {
            // Two attempts of one step may both see no role: the second one's CREATE finds it made.
            Err(err) if err.code() == Some(&SqlState::DUPLICATE_OBJECT) => {
                client.batch_execute(&alter).await.map_err(|err| fail(&err))
            }
            other => other.map_err(|err| fail(&err)),
        }
    }

    /// Gives `role` a random password nobody is told, so its old password stops working; the role, what it
    /// owns and its open sessions stay.
    pub async fn lock_out(
        &self,
        db: Database<'_>,
        master: &MasterCredentials,
        role: &str,
    ) -> Result<()> {
        let Database {
            secret, endpoint, ..
        } = db;
        let client = self.connect(db, &master.login, As::Master).await?;
        let statement = format!(
            "ALTER ROLE {} WITH {}",
            ident(role),
            password_clause(&random::alphanumeric(48)?)
        );
        client
            .batch_execute(&statement)
            .await
            .map_err(|err| self.failure(secret, endpoint, &master.login, As::Master, &err))
    }

    async fn connect(&self, db: Database<'_>, login: &Login, who: As) -> Result<Client> {
        let Database {
            secret,
            endpoint,
            sslmode,
        } = db;
        let mut config = Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .dbname(&endpoint.dbname)
            .user(&login.username)
            .password(login.password.expose_secret())
            .application_name("keyrot")
            .connect_timeout(self.timeout);
        let fail = |err: tokio_postgres::Error| self.failure(secret, endpoint, login, who, &err);
        let client = match sslmode {
            SslMode::Disable => {
                let (client, connection) = config
                    .ssl_mode(tokio_postgres::config::SslMode::Disable)
                    .connect(NoTls)
                    .await
                    .map_err(fail)?;
                tokio::spawn(connection);
                client
            }
            SslMode::Require | SslMode::VerifyFull => {
                let tls = if sslmode == SslMode::Require {
                    self.require.clone()
                } else {
                    self.verify_full()?
                };
                let connector = MakeRustlsConnect::new((*tls).clone());
                let (client, connection) = config
                    .ssl_mode(tokio_postgres::config::SslMode::Require)
                    .connect(connector)
                    .await
                    .map_err(fail)?;
                tokio::spawn(connection);
                client
            }
        };
        Ok(client)
    }

    /// A PostgreSQL error in the secret's terms: which login, which field to fix, and whether to retry.
    fn failure(
        &self,
        secret: &str,
        endpoint: &Endpoint,
        login: &Login,
        who: As,
        err: &tokio_postgres::Error,
    ) -> Error {
        let at = format!("{}:{}/{}", endpoint.host, endpoint.port, endpoint.dbname);
        match (err.code(), who) {
            (Some(code), As::Application) if refused_login(code) => Error::KeyRejected {
                secret: secret.to_owned(),
                provider: SYSTEM.to_owned(),
                hint: redacted(&login.password),
                detail: format!("{at} refused role {}: {}", login.username, code.code()),
            },
            (Some(code), As::Master) if refused_login(code) => Error::config(
                secret,
                "masterarn",
                format!("{at} refused the master user {}", login.username),
                "put the master user's current password in the master secret",
            ),
            (Some(code), As::Master) if *code == SqlState::INSUFFICIENT_PRIVILEGE => Error::config(
                secret,
                "masterarn",
                format!(
                    "the master user {} may not create or alter roles at {at}",
                    login.username
                ),
                "name a master secret whose user has CREATEROLE (RDS's master user has it)",
            ),
            (Some(code), _) => Error::external(
                SYSTEM,
                format!("{at} as {}", login.username),
                format!("SQLSTATE {}", code.code()),
                Transience::Final,
            ),
            (None, _) if tls_refusal(err).is_some() => Error::config(
                secret,
                "postgres.sslmode",
                format!(
                    "{at}: TLS failed ({})",
                    tls_refusal(err).unwrap_or_default()
                ),
                "give the server a certificate the system's roots sign for its host name (verify-full), or use sslmode require",
            ),
            // No SQLSTATE: the connection failed or timed out, which a later attempt may get past.
            (None, _) => Error::external(
                SYSTEM,
                format!("connect to {at} as {}", login.username),
                err,
                Transience::Retryable,
            ),
        }
    }
}

fn tls_builder(
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::external(SYSTEM, "TLS setup", err, Transience::Final))
}

/// The provider of `"engine": "postgres"` secrets, over [`PostgresDatabase`] and the master secret.
#[derive(Clone)]
pub struct PostgresIssuer {
    database: PostgresDatabase,
    admin: AdminKeys,
}

/// The length of a new password: letters and digits only (about 238 bits), so it needs no quoting in a
/// connection string, an env var or a shell.
const PASSWORD_LEN: usize = 40;

impl PostgresIssuer {
    pub fn new(database: PostgresDatabase, admin: AdminKeys) -> Self {
        PostgresIssuer { database, admin }
    }

    /// The next login: the role not in use, with a new random password. Only the master login is
    /// checked; nothing is written until setSecret installs the value that was stored.
    pub async fn mint(&self, secret_name: &str, settings: &PostgresSettings) -> Result<NewKey> {
        self.logged_in_master(secret_name, settings).await?;
        let login = Login {
            username: settings.next_username(),
            password: random::alphanumeric(PASSWORD_LEN)?,
        };
        Ok(NewKey {
            api_key: settings.connection_string(&login),
            key_id: Some(login.username),
            api_key_id: None,
            leftovers: Vec::new(),
            password: Some(login.password),
        })
    }

    /// Sets the pending value's password on its role (creating the clone on first use, a member of the
    /// role it alternates with). Repeating it sets the same password again.
    pub async fn install(&self, secret_name: &str, pending: &ManagedSecret) -> Result<()> {
        let (settings, login) = login_of(secret_name, pending)?;
        let master = self.master(secret_name, settings).await?;
        let db = as_master(secret_name, settings, &master);
        self.database
            .set_password(
                db,
                &master,
                &login.username,
                &settings.next_username(),
                &login.password,
            )
            .await
    }

    /// The role a person's value logs in as, once the master credentials are checked: onboarding
    /// records it as the id keyrot may later lock out.
    pub async fn identify(
        &self,
        secret_name: &str,
        value: &ManagedSecret,
    ) -> Result<Option<String>> {
        let (settings, login) = login_of(secret_name, value)?;
        self.logged_in_master(secret_name, settings).await?;
        Ok(Some(login.username))
    }

    /// Logs in with the value's credentials. A refused login is [`Error::KeyRejected`].
    pub async fn validate(&self, secret_name: &str, value: &ManagedSecret) -> Result<()> {
        let (settings, login) = login_of(secret_name, value)?;
        let db = Database {
            secret: secret_name,
            endpoint: &settings.endpoint,
            sslmode: settings.sslmode,
        };
        self.database.check_login(db, &login).await
    }

    /// Locks the handle's role out, on the database its master secret names. The caller has made sure
    /// no later version logs in as that role (`revocation.rs`).
    pub async fn revoke(&self, handle: &KeyHandle) -> Result<RevocationStatus> {
        let (Some(role), Some(master_secret)) = (&handle.key_id, &handle.admin_key_secret) else {
            return Ok(RevocationStatus::Manual);
        };
        let master = self
            .read_master(&handle.secret_name, master_secret, role)
            .await?;
        let db = Database {
            secret: &handle.secret_name,
            endpoint: &master.endpoint,
            sslmode: master.sslmode(None),
        };
        self.database.lock_out(db, &master, role).await?;
        Ok(RevocationStatus::Revoked)
    }

    /// The master credentials of the value's database, once their secret may serve this one and
    /// names the same host and port.
    async fn master(
        &self,
        secret_name: &str,
        settings: &PostgresSettings,
    ) -> Result<MasterCredentials> {
        let master = self
            .read_master(secret_name, &settings.master_secret, &settings.username)
            .await?;
        settings.check_master(secret_name, &master)?;
        Ok(master)
    }

    /// [`PostgresIssuer::master`], once the master user has logged in: a wrong master password is
    /// refused before anything is stored or recorded.
    async fn logged_in_master(&self, secret_name: &str, settings: &PostgresSettings) -> Result<()> {
        let master = self.master(secret_name, settings).await?;
        let db = as_master(secret_name, settings, &master);
        self.database.check_master(db, &master).await
    }

    /// Reads the master secret for `role`: its `keyrot-admin:scope` tag must name the role's pair (by
    /// the first role's name, `app` for `app` and `app_clone`).
    async fn read_master(
        &self,
        secret_name: &str,
        master_secret: &str,
        role: &str,
    ) -> Result<MasterCredentials> {
        let pair = role
            .strip_suffix(CLONE_SUFFIX)
            .filter(|base| !base.is_empty())
            .unwrap_or(role);
        let value = self
            .admin
            .read_scoped_value(AdminRequest {
                wants: None,
                managed: secret_name,
                field: "masterarn",
                admin_secret: master_secret,
                resources: &[pair],
            })
            .await?;
        MasterCredentials::parse(secret_name, master_secret, &value)
    }
}

/// Where keyrot connects as the master user: the value's database, with TLS no weaker than the master
/// secret asks.
fn as_master<'a>(
    secret: &'a str,
    settings: &'a PostgresSettings,
    master: &MasterCredentials,
) -> Database<'a> {
    Database {
        secret,
        endpoint: &settings.endpoint,
        sslmode: master.sslmode(Some(settings.sslmode)),
    }
}

fn login_of<'a>(secret: &str, value: &'a ManagedSecret) -> Result<(&'a PostgresSettings, Login)> {
    match (&value.provider, value.login()) {
        (crate::domain::ProviderSettings::Postgres(settings), Some(login)) => Ok((settings, login)),
        _ => Err(Error::protocol(secret, "the value is not a database's")),
    }
}

/// The TLS error under a failed connection, if that is what failed.
fn tls_refusal(err: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(tls) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.to_string());
        }
        source = cause.source();
    }
    None
}

fn refused_login(code: &SqlState) -> bool {
    *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
}

/// `PASSWORD '<verifier>'`: the password as the server stores it (SCRAM-SHA-256), so the plaintext is in
/// no statement the server could log.
fn password_clause(password: &SecretString) -> String {
    let hashed = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    format!("PASSWORD {}", literal(&hashed))
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// libpq's `sslmode=require`: the connection is encrypted, the server's certificate not checked (its
/// signatures are still verified, so the handshake is a real one).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
