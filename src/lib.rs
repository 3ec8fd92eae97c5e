//! promsync: the order exchange between the Prom.ua marketplace and RO App.
//!
//! Roles (ingress, import, …) sit side by side over the shared `prom` (Prom API) and
//! `broker` (message transport) layers; the people's doors (`api`, `ui`) call the
//! application layer (`service`); `startup` wires them and `cli` exposes them as
//! subcommands. See `docs/ARCHITECTURE.md` for the architecture and the contract.

pub mod api;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod ingress;
pub mod keyring;
pub mod metrics;
pub mod outbound;
pub mod poll;
pub mod prom;
pub mod provision;
pub mod roles;
pub mod secrets;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod ui;
