//! The text columns that hold one of a fixed set of values, as enums. The stored values
//! are the SCREAMING_SNAKE_CASE names below and never change: a value a program does not
//! know fails when the row is read, instead of travelling on as text.
//!
//! These are plain values with no I/O, so the domain (the state machine) and the GraphQL
//! API (with the `graphql` feature) use them as they are.
use std::fmt;
use std::str::FromStr;

use sea_orm::entity::prelude::*;

/// Where an order stands: IMPORTED, then VALIDATED (or RESERVED while a check fails),
/// SENT, SHIPPED and INVOICED; CANCELLED from any state before SHIPPED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "SCREAMING_SNAKE_CASE"))]
pub enum OrderState {
    #[sea_orm(string_value = "IMPORTED")]
    Imported,
    #[sea_orm(string_value = "VALIDATED")]
    Validated,
    #[sea_orm(string_value = "RESERVED")]
    Reserved,
    #[sea_orm(string_value = "SENT")]
    Sent,
    #[sea_orm(string_value = "SHIPPED")]
    Shipped,
    #[sea_orm(string_value = "INVOICED")]
    Invoiced,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl OrderState {
    pub const ALL: [OrderState; 7] = [
        OrderState::Imported,
        OrderState::Validated,
        OrderState::Reserved,
        OrderState::Sent,
        OrderState::Shipped,
        OrderState::Invoiced,
        OrderState::Cancelled,
    ];

    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Imported => "IMPORTED",
            OrderState::Validated => "VALIDATED",
            OrderState::Reserved => "RESERVED",
            OrderState::Sent => "SENT",
            OrderState::Shipped => "SHIPPED",
            OrderState::Invoiced => "INVOICED",
            OrderState::Cancelled => "CANCELLED",
        }
    }

    /// INVOICED and CANCELLED: nothing happens to the order any more (unless forced).
    pub fn is_final(self) -> bool {
        matches!(self, OrderState::Invoiced | OrderState::Cancelled)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown order state `{}`", self.0)
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for OrderState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// The state of a merchant's Fortnox connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "SCREAMING_SNAKE_CASE"))]
pub enum IntegrationStatus {
    #[sea_orm(string_value = "NOT_CONNECTED")]
    NotConnected,
    #[sea_orm(string_value = "CONNECTED")]
    Connected,
    /// Fortnox refused the refresh token: the merchant must connect again; jobs wait.
    #[sea_orm(string_value = "NEEDS_REAUTHORIZATION")]
    NeedsReauthorization,
    #[sea_orm(string_value = "DISCONNECTED")]
    Disconnected,
}

impl IntegrationStatus {
    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::NotConnected => "NOT_CONNECTED",
            IntegrationStatus::Connected => "CONNECTED",
            IntegrationStatus::NeedsReauthorization => "NEEDS_REAUTHORIZATION",
            IntegrationStatus::Disconnected => "DISCONNECTED",
        }
    }
}

/// What kind of entry an order event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(
    feature = "graphql",
    graphql(name = "OrderEventKind", rename_items = "SCREAMING_SNAKE_CASE")
)]
pub enum EventKind {
    /// The order changed state.
    #[sea_orm(string_value = "TRANSITION")]
    Transition,
    /// A job for the order failed; the message says why and what to do.
    #[sea_orm(string_value = "ERROR")]
    Error,
    /// Something worth knowing that changed no state.
    #[sea_orm(string_value = "INFO")]
    Info,
    /// The order's job gave up after its last attempt; the order waits for a retry.
    #[sea_orm(string_value = "STALLED")]
    Stalled,
    /// A stalled order was taken up again (a retry, or the merchant reconnected).
    #[sea_orm(string_value = "RESUMED")]
    Resumed,
    /// A RESERVED order was checked again and its reasons changed.
    #[sea_orm(string_value = "REASONS_CHANGED")]
    ReasonsChanged,
    /// The warehouse reported tracking numbers for the shipment.
    #[sea_orm(string_value = "TRACKING_NUMBERS")]
    TrackingNumbers,
    /// The order's invoice was created in Fortnox.
    #[sea_orm(string_value = "INVOICE_CREATED")]
    InvoiceCreated,
}

impl EventKind {
    /// The stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Transition => "TRANSITION",
            EventKind::Error => "ERROR",
            EventKind::Info => "INFO",
            EventKind::Stalled => "STALLED",
            EventKind::Resumed => "RESUMED",
            EventKind::ReasonsChanged => "REASONS_CHANGED",
            EventKind::TrackingNumbers => "TRACKING_NUMBERS",
            EventKind::InvoiceCreated => "INVOICE_CREATED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    #[test]
    fn stored_values_are_the_names() {
        for state in OrderState::iter() {
            assert_eq!(state.to_value(), state.as_str());
            assert_eq!(state.as_str().parse::<OrderState>(), Ok(state));
        }
        assert_eq!(OrderState::iter().count(), OrderState::ALL.len());
        for status in IntegrationStatus::iter() {
            assert_eq!(status.to_value(), status.as_str());
        }
        for kind in EventKind::iter() {
            assert_eq!(kind.to_value(), kind.as_str());
        }
        assert!("SHIPPING".parse::<OrderState>().is_err());
    }
}
