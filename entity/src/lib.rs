//! sea-orm entities of promsync, one module per table (ARCHITECTURE.md, 'Data model'),
//! and in [`enums`] the closed sets of values their text columns hold.
//!
//! Each entity declares the relations its foreign keys make (`Related`), so related rows
//! load with `find_related`/`find_with_related`/`load_many` instead of hand-made batches.
//! Tenancy stays visible all the same: a query still starts from rows scoped by account.

pub mod accounts;
pub mod broker_log;
pub mod broker_messages;
pub mod categories;
pub mod clients;
pub mod dead_letters;
pub mod employees;
pub mod enums;
pub mod inbound_events;
pub mod order_items;
pub mod order_statuses;
pub mod orders;
pub mod outbound_claims;
pub mod outbound_sync_log;
pub mod outbox;
pub mod products;
pub mod prom_status_options;
pub mod shops;
pub mod status_mappings;
pub mod ui_sessions;

pub mod prelude {
    pub use super::accounts::Entity as Account;
    pub use super::broker_log::Entity as BrokerLogEntry;
    pub use super::broker_messages::Entity as BrokerMessage;
    pub use super::categories::Entity as Category;
    pub use super::clients::Entity as Client;
    pub use super::dead_letters::Entity as DeadLetter;
    pub use super::employees::Entity as Employee;
    pub use super::inbound_events::Entity as InboundEvent;
    pub use super::order_items::Entity as OrderItem;
    pub use super::order_statuses::Entity as OrderStatus;
    pub use super::orders::Entity as Order;
    pub use super::outbound_claims::Entity as OutboundClaim;
    pub use super::outbound_sync_log::Entity as OutboundSyncEntry;
    pub use super::outbox::Entity as OutboxRow;
    pub use super::products::Entity as Product;
    pub use super::prom_status_options::Entity as PromStatusOption;
    pub use super::shops::Entity as Shop;
    pub use super::status_mappings::Entity as StatusMapping;
    pub use super::ui_sessions::Entity as UiSession;
}
