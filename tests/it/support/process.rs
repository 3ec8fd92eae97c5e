//! Child processes a test starts (a `promsync` role, chromedriver). `kill_on_drop` alone
//! kills a child but leaves it unreaped, a zombie until the test binary exits; with
//! every suite in one binary they would pile up, so a dropped [`Reaped`] also waits for
//! its child.

use std::{
    ops::{Deref, DerefMut},
    time::{Duration, Instant},
};

/// A child that is killed and reaped when dropped, however the test ends.
pub struct Reaped(pub tokio::process::Child);

impl Deref for Reaped {
    type Target = tokio::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        // `try_wait` reaps an exited child without needing the runtime.
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
