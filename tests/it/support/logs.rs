//! The suite's one tracing subscriber. Two layers: the failing test's output shows what
//! `RUST_LOG` asks for, and while some test holds a [`LogCapture`] every event (debug,
//! promsync at trace, as JSON with all fields) is also kept in a buffer, so that test can
//! assert no secret was ever logged. One subscriber for the whole binary because a
//! process can install only one: whichever test came first would otherwise decide.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
};

use tracing_subscriber::{
    filter::{dynamic_filter_fn, FilterExt},
    layer::SubscriberExt,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

/// The captured log lines (shared by every capture: events are the process's, not a
/// test's).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many captures are alive: while none is, the capture layer formats nothing.
static CAPTURES: AtomicUsize = AtomicUsize::new(0);

fn buffer() -> &'static LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER.get_or_init(LogBuffer::default)
}

/// Installs the subscriber once per process; every `TestApp` calls it.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let output = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(EnvFilter::from_default_env());
        // The Prom stand-in (wiremock) is left out: it is the test's fake Prom, and it
        // logs the requests promsync sends it, token included.
        let capture = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(|| buffer().clone())
            .with_filter(
                dynamic_filter_fn(|_, _| CAPTURES.load(Ordering::Relaxed) > 0).and(EnvFilter::new(
                    "debug,promsync=trace,h2=info,hyper=info,rustls=info,wiremock=off",
                )),
            );
        let _ = tracing_subscriber::registry()
            .with(output)
            .with(capture)
            .try_init();
    });
}

/// Log capture, on from [`capture_logs`] until this is dropped.
pub struct LogCapture(());

impl LogCapture {
    /// Every line captured so far (by this capture and any other alive meanwhile).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&buffer().0.lock().expect("log buffer")).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts capturing every log line of the process (see the module header).
pub fn capture_logs() -> LogCapture {
    init();
    CAPTURES.fetch_add(1, Ordering::Relaxed);
    LogCapture(())
}
