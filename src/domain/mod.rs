//! The pure domain: no I/O, no database, no HTTP. Everything here is unit-tested.
pub mod address;
pub mod cancel;
pub mod checks;
pub mod country;
pub mod quantity;
pub mod realtime;
pub mod shipment;
pub mod shipping;
pub mod state_machine;
pub mod webhooks;

pub use quantity::{Quantity, QuantityError};
pub use state_machine::{actionable_states, JobKind, OrderState, TransitionRefused};
