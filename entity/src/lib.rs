//! sea-orm entities: one module per table. The domain never sees the models directly;
//! the store converts them. The enums of fixed-value columns (`enums`) are plain values
//! shared with the domain and the API.
pub mod duplicate_invoice;
pub mod enums;
pub mod fortnox_integration;
pub mod import_failure;
pub mod json;
pub mod merchant;
pub mod order;
pub mod order_event;
pub mod order_line;
pub mod product;
pub mod shipping_method;
pub mod shipping_rule;

pub use enums::{EventKind, IntegrationStatus, OrderState, UnknownState};
pub use json::{EventPayload, StoredAddress, TextList};
