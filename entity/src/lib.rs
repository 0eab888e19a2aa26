//! sea-orm entities: one module per table. The domain never sees these types directly;
//! the store converts them.
pub mod duplicate_invoice;
pub mod fortnox_integration;
pub mod merchant;
pub mod order;
pub mod order_event;
pub mod order_line;
pub mod product;
pub mod shipping_method;
pub mod shipping_rule;
