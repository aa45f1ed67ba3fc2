//! [`Clock`] on the system time; with the `sim-clock` feature, shifted by `KEYROT_CLOCK_OFFSET_SECS` so
//! that tests and the demo can step past a grace period. Release artifacts leave the feature off.

use chrono::{DateTime, Utc};

use crate::ports::Clock;

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    #[cfg(feature = "sim-clock")]
    offset: chrono::Duration,
}

impl SystemClock {
    pub fn from_env() -> Self {
        #[cfg(feature = "sim-clock")]
        {
            let seconds: f64 = std::env::var("KEYROT_CLOCK_OFFSET_SECS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            SystemClock {
                offset: chrono::Duration::milliseconds((seconds * 1000.0) as i64),
            }
        }
        #[cfg(not(feature = "sim-clock"))]
        SystemClock {}
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        #[cfg(feature = "sim-clock")]
        return Utc::now() + self.offset;
        #[cfg(not(feature = "sim-clock"))]
        Utc::now()
    }
}
