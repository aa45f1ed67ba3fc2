//! SNS in memory: the alerts sent.

use std::cell::{Cell, RefCell};

use crate::error::{Error, Result};
use crate::ports::{Alert, AlertKind, Alerts};

#[derive(Default)]
pub(crate) struct FakeAlerts {
    pub(crate) sent: RefCell<Vec<Alert>>,
    pub(crate) fail: Cell<bool>,
}

impl FakeAlerts {
    /// The kinds of the alerts sent, in order.
    pub(crate) fn kinds(&self) -> Vec<AlertKind> {
        self.sent.borrow().iter().map(|a| a.event).collect()
    }
}

impl Alerts for FakeAlerts {
    async fn send(&self, alert: &Alert) -> Result<()> {
        if self.fail.get() {
            return Err(Error::external(
                "sns",
                "Publish",
                "unavailable",
                crate::error::Transience::Retryable,
            ));
        }
        self.sent.borrow_mut().push(alert.clone());
        Ok(())
    }
}
