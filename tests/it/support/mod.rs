//! The harness every integration test uses: each test gets its own database (copied from
//! a template migrated once), its own broker namespace, a Prom stand-in and the real
//! `Application`, importers and publishers, started exactly as production starts them,
//! and all of it is removed again when the test's `TestApp` is dropped, pass or fail.
//!
//! Services come from `PROMSYNC_TEST_DATABASE_URL` and `PROMSYNC_TEST_BROKER_URL` (see
//! `services`); a missing service fails the test with its name, nothing is skipped.

pub mod app;
pub mod broker;
pub mod db;
pub mod logs;
pub mod process;
pub mod prom;
pub mod proxy;
pub mod records;
pub mod services;
pub mod wait;
pub mod webhook;

pub use app::{Tenant, TestApp, TestAppBuilder};
pub use logs::capture_logs;
pub use prom::{fixture_order, CUSTOM_STATUS_ORDER, PENDING_ORDER};
pub use records::{employee, insert_imported_order, product, roapp_order, statuses};
pub use services::{backend, Backend};
pub use wait::eventually;
pub use webhook::post_thin_webhook;
