//! The Prom.ua side of promsync: API types, money parsing and the HTTP client.
//!
//! Shared by every role (ingress, poller, importer, publisher); nothing here knows about
//! the database or the broker, so it can be tested against a local HTTP stand-in alone.

pub mod client;
pub mod ids;
pub mod money;
pub mod order;
pub mod origin;
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
