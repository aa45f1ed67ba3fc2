//! Operator actions over the same ports as the rotation: stage a key a person made, roll back to the
//! previous key during its grace period, repair a stuck rotation. The CLI calls these.

mod confirm;
mod orphans;
mod repair;
mod revoked;
mod rollback;
mod rotate;
mod stage;
mod validate;

#[cfg(test)]
mod tests;

use crate::ports::{Family, Ports};
use crate::rotation::RotatorSettings;
use crate::rotation::deploy::Deploys;

pub use confirm::Confirmed;
pub use orphans::OrphanDeletion;
pub use repair::Repaired;
pub use revoked::RecordedRevoked;
pub use rollback::RolledBack;
pub use rotate::{FollowEnd, RotateRequest, Started};
pub use stage::{Placeholder, Staged};
pub use validate::{Holds, TargetHolding, Validation};

/// The operator's actions (the CLI's commands that change things), over the same ports as the
/// rotation. The settings are the rotator's: an operator action follows redeploys as testSecret does.
pub struct Operator<'a, F: Family> {
    pub ports: &'a Ports<F>,
    pub settings: RotatorSettings,
}

impl<'a, F: Family> Operator<'a, F> {
    pub fn new(ports: &'a Ports<F>, settings: RotatorSettings) -> Self {
        Operator { ports, settings }
    }

    pub(crate) fn deploys(&self) -> Deploys<'_, F> {
        Deploys {
            ports: self.ports,
            settings: &self.settings,
        }
    }
}
