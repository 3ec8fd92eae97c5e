//! promsync's integration suite, one test binary: each module is what used to be a test
//! binary of its own, and `support` is the harness they share. One binary links the
//! crate once instead of once per suite. The fault-injection suite (`tests/chaos.rs`)
//! stays a binary of its own: it is run apart, serially.
//!
//! Filter by module to run one suite, e.g. `cargo test --test it -- import::`.

mod support;

mod api;
mod broker_outage;
mod demo;
mod deploy;
mod hostile;
mod import;
mod import_edits;
mod ingress;
mod observe;
mod outbound;
mod poll;
mod prom_statuses;
mod recovery;
mod secrets;
mod shutdown;
mod simulator;
mod supervise;
mod ui;
mod ui_browser;
