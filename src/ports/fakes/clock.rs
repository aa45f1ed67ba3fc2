//! A clock tests set and move.

use std::cell::Cell;

use chrono::{DateTime, Utc};

use crate::ports::Clock;

pub(crate) struct FixedClock(pub(crate) Cell<DateTime<Utc>>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.get()
    }
}
