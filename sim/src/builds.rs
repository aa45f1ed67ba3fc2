//! Build timing shared by Vercel deployments and Render deploys: how long a
//! build takes and which builds fail.
//!
//! Nothing runs in the background. A build records when it will finish; the
//! platform settles it the first time its state is looked at after that
//! instant (see `Shared::vercel`). Tests therefore see the same state machine
//! whether or not a tokio runtime is polling, and a simulator that is never
//! asked never does any work.

use std::time::{Duration, Instant};

/// The default build time: long enough that a client must poll at least once,
/// short enough to keep tests quick.
pub(crate) const DEFAULT_BUILD_MILLIS: u64 = 300;

/// What the next builds will do; each platform owns one.
pub(crate) struct BuildPlan {
    build_millis: u64,
    /// How many of the next builds end in failure.
    fail_next: u32,
}

/// A build in progress.
#[derive(Clone, Copy)]
pub(crate) struct Build {
    pub(crate) finishes_at: Instant,
    /// Wall-clock time (unix milliseconds) of the same instant, for the
    /// timestamps a finished deployment reports.
    pub(crate) finishes_at_millis: i64,
    pub(crate) fails: bool,
}

impl BuildPlan {
    pub(crate) fn new() -> Self {
        Self {
            build_millis: DEFAULT_BUILD_MILLIS,
            fail_next: 0,
        }
    }

    /// Applies to builds started from now on; running builds keep their time.
    pub(crate) fn set_build_millis(&mut self, millis: u64) {
        self.build_millis = millis;
    }

    /// Replaces (rather than adds to) any failures still pending.
    pub(crate) fn fail_next(&mut self, n: u32) {
        self.fail_next = n;
    }

    /// Starts a build at `started_millis` (unix ms), using up one pending failure if any.
    pub(crate) fn start(&mut self, started_millis: i64) -> Build {
        let fails = self.fail_next > 0;
        self.fail_next = self.fail_next.saturating_sub(1);
        let millis = i64::try_from(self.build_millis).unwrap_or(i64::MAX);
        Build {
            finishes_at: Instant::now() + Duration::from_millis(self.build_millis),
            finishes_at_millis: started_millis.saturating_add(millis),
            fails,
        }
    }
}

impl Build {
    pub(crate) fn is_finished(&self, now: Instant) -> bool {
        now >= self.finishes_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_used_up_one_build_at_a_time() {
        let mut plan = BuildPlan::new();
        plan.fail_next(2);
        let fails: Vec<bool> = (0..3).map(|_| plan.start(0).fails).collect();
        assert_eq!(fails, [true, true, false]);
    }

    #[test]
    fn a_build_finishes_after_the_build_time() {
        let mut plan = BuildPlan::new();
        plan.set_build_millis(60_000);
        let build = plan.start(1_000);
        assert_eq!(build.finishes_at_millis, 61_000);
        assert!(!build.is_finished(Instant::now()));
        assert!(build.is_finished(build.finishes_at));
        plan.set_build_millis(0);
        assert!(plan.start(0).is_finished(Instant::now()));
    }
}
