//! Tracing setup: human-readable or JSON lines on stderr (stdout carries command output
//! such as `account create`'s JSON), filtered by `RUST_LOG`. Colour only on a terminal:
//! logs piped to a file or a collector stay plain text.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests starting many apps) are no-ops.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// Like `init`, with the filter used when `RUST_LOG` is unset (`promsync demo` keeps the
/// console for its summary and logs only warnings unless asked).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A subscriber already installed (tests) is fine: keep the first.
    let _ = result;
}
