//! The Prom.ua side of promsync: API types, money parsing and the HTTP client.
//!
//! Shared by every role (ingress, poller, importer, publisher); nothing here queries the
//! database or knows the broker (`source` only reads a shop's row to build its
//! credentials), so it can be tested against a local HTTP stand-in alone.

pub mod client;
pub mod ids;
pub mod money;
pub mod order;
pub mod origin;
pub mod source;
pub mod throttle;

pub use client::{
    CancellationReason, OrderListQuery, PromClient, PromCredentials, PromError, SetStatusRequest,
    SetStatusResponse,
};
pub use ids::{EventId, IdError, PromOrderId, ShopId};
pub use money::{Currency, Money, MoneyError, Quantity, QuantityError};
pub use order::{
    parse_prom_datetime, BadTimestamp, Multilang, OrderEnvelope, OrderList, ProductEnvelope,
    PromClientInfo, PromGroup, PromOrder, PromOrderLine, PromProduct, PromStatus, UnknownStatus,
};
