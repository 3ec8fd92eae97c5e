//! The CPU time a load generator spent itself, so the bench can say how much of the
//! machine went to producing the load rather than to the system under test.

use nix::sys::resource::{getrusage, UsageWho};

/// User plus system CPU seconds of this process so far (every thread).
pub fn cpu_seconds() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let (user, system) = (usage.user_time(), usage.system_time());
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        secs(user) + secs(system)
    })
}
