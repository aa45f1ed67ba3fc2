//! In-memory fakes of every port, one file each, and the fixture the unit tests of the rotation, the
//! grace keeper and the operator actions share: a [`World`] of fakes with one managed secret.

mod alerts;
mod audit;
mod clock;
mod issuer;
mod metrics;
mod store;
mod targets;

use std::cell::Cell;
use std::ops::Deref;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::domain::{RotationEvent, Step};
use crate::error::Result;
use crate::keeper::{GraceKeeper, KeeperSettings};
use crate::operator::Operator;
use crate::ports::{Family, Ports};
use crate::rotation::{Invocation, Progress, Rotator, RotatorSettings};

pub(crate) use alerts::FakeAlerts;
pub(crate) use audit::FakeAudit;
pub(crate) use clock::FixedClock;
pub(crate) use issuer::FakeIssuer;
pub(crate) use metrics::FakeMetrics;
pub(crate) use store::{FakeStore, Stored, Version};
pub(crate) use targets::FakeTargets;

pub(crate) const NAME: &str = "prod/generic";
pub(crate) const OLD_KEY: &str = "sk_live_OLDOLDOLDOLDOLDOLDOLD0ld1";

/// The in-memory family of ports.
pub(crate) struct Fake;

impl Family for Fake {
    type Store = FakeStore;
    type Issuer = FakeIssuer;
    type Targets = FakeTargets;
    type Audit = FakeAudit;
    type Alerts = FakeAlerts;
    type Metrics = FakeMetrics;
    type Clock = FixedClock;
}

/// The fakes of one test, with the settings its rotator and operator run with. Derefs to its ports,
/// so a test reads `world.store.stages()`.
pub(crate) struct World {
    pub(crate) ports: Ports<Fake>,
    pub(crate) settings: RotatorSettings,
}

impl Deref for World {
    type Target = Ports<Fake>;

    fn deref(&self) -> &Ports<Fake> {
        &self.ports
    }
}

impl World {
    pub(crate) fn rotator(&self) -> Rotator<'_, Fake> {
        Rotator::new(&self.ports, self.settings.clone())
    }

    pub(crate) fn operator(&self) -> Operator<'_, Fake> {
        Operator::new(&self.ports, self.settings.clone())
    }

    /// The grace keeper of a deployment whose rotator is `keyrot-rotator`.
    pub(crate) fn keeper(&self) -> GraceKeeper<'_, Fake> {
        GraceKeeper::new(
            &self.ports,
            KeeperSettings {
                rotator_arn: Some(
                    "arn:aws:lambda:us-east-1:123456789012:function:keyrot-rotator:live".into(),
                ),
                revocation_check: FAKE_PATIENCE,
                ..KeeperSettings::default()
            },
        )
    }
}

/// A provider in memory answers at once: a little patience is enough.
pub(crate) const FAKE_PATIENCE: crate::patience::Patience = crate::patience::Patience::new(
    std::time::Duration::from_millis(20),
    std::time::Duration::from_millis(1),
);

/// The event Secrets Manager sends for `step` of the rotation `token` of the fakes' secret.
pub(crate) fn event(step: Step, token: &str) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: NAME.into(),
        client_request_token: token.into(),
        rotation_token: None,
    }
}

/// Runs one step as Secrets Manager invokes it.
pub(crate) async fn run(world: &World, step: Step, token: &str) -> Result<Progress> {
    let invocation = Invocation {
        actor: "req-1".into(),
        deadline: None,
    };
    world
        .rotator()
        .handle(&event(step, token), &invocation)
        .await
}

/// rotate-secret, then the four steps; a failing step fails the test. Returns each step's progress.
pub(crate) async fn rotate(world: &World, token: &str) -> Vec<Progress> {
    world.store.start_rotation(token);
    let mut progress = Vec::new();
    for step in Step::ALL {
        progress.push(
            run(world, step, token)
                .await
                .unwrap_or_else(|err| panic!("{step}: {err}")),
        );
    }
    progress
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A world whose secret's AWSCURRENT value is `value`, onboarded: its key's ids are on record.
pub(crate) fn world_with(value: Value) -> World {
    let audit = FakeAudit::default();
    vouch_for(&audit, &value);
    World {
        ports: Ports {
            store: FakeStore::with_current(value),
            issuer: FakeIssuer::default(),
            targets: FakeTargets::default(),
            audit,
            alerts: FakeAlerts::default(),
            metrics: FakeMetrics::default(),
            clock: FixedClock(Cell::new(now())),
        },
        settings: RotatorSettings {
            deploy_poll_interval: std::time::Duration::from_millis(1),
            fresh_key_patience: std::time::Duration::from_millis(20),
            fresh_key_retry: std::time::Duration::from_millis(1),
            revocation_check: FAKE_PATIENCE,
            ..RotatorSettings::default()
        },
    }
}

/// A world with one generic secret.
pub(crate) fn world() -> World {
    world_with(
        json!({"provider": "generic", "api_key": OLD_KEY, "generic": {"length": 32}, "team": "ml"}),
    )
}

/// Records the ids of `value`'s key as `keyrot onboard` would. A value that does not parse (the tests
/// of bad input) has no key to vouch for.
fn vouch_for(audit: &FakeAudit, value: &Value) {
    use crate::domain::provenance::{KeyIds, KeyRecord, Origin};
    let text = secrecy::SecretString::from(value.to_string());
    let Ok(managed) = crate::domain::ManagedSecret::parse(NAME, "AWSCURRENT", &text) else {
        return;
    };
    let record = KeyRecord::new(
        (NAME, "v0"),
        &managed.provider,
        &managed.key_view(),
        KeyIds {
            key_id: managed.key_id.as_deref(),
            api_key_id: managed.api_key_id.as_deref(),
        },
        (Origin::Onboarded, now(), "operator"),
    );
    audit.keys.borrow_mut().insert(
        (record.secret_name.clone(), record.fingerprint.clone()),
        record,
    );
}
