//! The shapes of the JSON columns. Reading a row checks its JSON against them, so a column
//! that holds something else fails at the read, with the column named, instead of turning
//! into an empty list or address further on.
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

/// A list of texts: an order's RESERVED reasons, its tracking numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct TextList(pub Vec<String>);

/// The address an order ships to, as stored. The keys are the stored contract: renaming
/// one needs a data migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct StoredAddress {
    pub name: Option<String>,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
}

/// What an order event adds beyond its change of state. The keys are the stored contract.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload {
    /// The reasons a RESERVED order waits for (on entering RESERVED and REASONS_CHANGED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_numbers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
}

impl EventPayload {
    pub fn is_empty(&self) -> bool {
        self == &EventPayload::default()
    }
}
