//! Error bodies, OAuth bodies, and Fortnox's string quantities.

use serde::{Deserialize, Serialize};

use super::scalars::{int_loose, opt_int_loose};

// ---------------------------------------------------------------- errors

/// `{"ErrorInformation":{...}}`; Fortnox uses both `error/message/code` and
/// `Error/Message/Code`, so both are accepted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(rename = "ErrorInformation")]
    pub error_information: ErrorInformation,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorInformation {
    #[serde(default, alias = "Error", deserialize_with = "opt_int_loose")]
    pub error: Option<i64>,
    #[serde(default, alias = "Message")]
    pub message: String,
    #[serde(default, alias = "Code", deserialize_with = "opt_int_loose")]
    pub code: Option<i64>,
}

/// Which key casing an error body uses; the sandbox uses both, as Fortnox does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCasing {
    Lower,
    Pascal,
}

impl ErrorInformation {
    pub fn new(message: impl Into<String>, code: i64) -> Self {
        ErrorInformation {
            error: Some(1),
            message: message.into(),
            code: Some(code),
        }
    }
    pub fn to_json(&self, casing: KeyCasing) -> serde_json::Value {
        let (e, m, c) = match casing {
            KeyCasing::Lower => ("error", "message", "code"),
            KeyCasing::Pascal => ("Error", "Message", "Code"),
        };
        let mut inner = serde_json::Map::new();
        inner.insert(e.into(), self.error.unwrap_or(1).into());
        inner.insert(m.into(), self.message.clone().into());
        inner.insert(c.into(), self.code.into());
        serde_json::json!({ "ErrorInformation": inner })
    }
}

/// `{"message":"unauthorized"}` (401) and `{"message":"Too Many Requests"}` (429).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageBody {
    pub message: String,
}

// ---------------------------------------------------------------- oauth

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(deserialize_with = "int_loose")]
    pub expires_in: i64,
    #[serde(default)]
    pub token_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// Order-row keys whose values Fortnox sends as strings. The sandbox uses this
/// list to reproduce that; the client sends numbers.
pub const STRING_QUANTITY_KEYS: &[&str] =
    &["OrderedQuantity", "DeliveredQuantity", "ReservedQuantity"];

/// Rewrites the row quantities (`OrderRows`, `InvoiceRows`) in `v` as strings,
/// the way Fortnox sends them. Other numbers stay numbers.
pub fn stringify_quantities(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (k.as_str(), val) {
                    ("OrderRows" | "InvoiceRows", Value::Array(rows)) => rows
                        .iter_mut()
                        .filter_map(Value::as_object_mut)
                        .for_each(|row| {
                            for key in STRING_QUANTITY_KEYS {
                                if let Some(q @ Value::Number(_)) = row.get_mut(*key) {
                                    *q = Value::String(q.to_string());
                                }
                            }
                        }),
                    (_, other) => stringify_quantities(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(stringify_quantities),
        _ => {}
    }
}
