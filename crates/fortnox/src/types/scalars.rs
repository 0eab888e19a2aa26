//! Scalars of the Fortnox wire types: loose decimals, strict document numbers.

use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

// ---------------------------------------------------------------- numbers

/// A decimal that Fortnox sends as `"1.12"` or `1.12`. We always send numbers.
/// Used for quantities and amounts alike: an unparseable value is an error,
/// never silently zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(pub Decimal);

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);
    pub fn from_i64(v: i64) -> Self {
        Quantity(Decimal::from(v))
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The service's one quantity policy: a decimal point, never a comma. The API
        // sends `1.12`; a comma would be a guess between a decimal and a thousands
        // separator, and `1,000` read as 1 invoices a thousandth of a delivery.
        let t = s.trim();
        if t.contains(',') {
            return Err(format!(
                "not a number: {s:?} (a comma is not read as a decimal or thousands separator)"
            ));
        }
        Decimal::from_str(t)
            .or_else(|_| Decimal::from_scientific(t))
            .map(Quantity)
            .map_err(|_| format!("not a number: {s:?}"))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0.normalize();
        if d.scale() == 0 {
            if let Some(i) = d.to_i64() {
                return s.serialize_i64(i);
            }
        }
        match d.to_f64() {
            Some(f) => s.serialize_f64(f),
            None => Err(serde::ser::Error::custom("quantity out of range")),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                // Go through the shortest string form so 1.12 stays 1.12.
                Quantity::from_str(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::from_str(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Amounts (prices, totals, VAT, dimensions) are as loose as quantities.
pub type Amount = Quantity;

/// Integer fields such as `MetaInformation` counts and error codes: numbers or
/// numeric strings.
pub(crate) fn int_loose<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let q = Quantity::deserialize(d)?;
    q.0.to_i64()
        .filter(|_| q.0.fract().is_zero())
        .ok_or_else(|| de::Error::custom(format!("not an integer: {q}")))
}

pub(crate) fn opt_int_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "int_loose")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

// ---------------------------------------------------------------- identifiers

/// A Fortnox document number (order, invoice). Strict: a non-empty string of
/// digits, or a non-negative integer. Anything else is an error, because a
/// wrong number means writing to the wrong order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DocumentNumber(String);

impl DocumentNumber {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid document number {s:?}"));
        }
        Ok(DocumentNumber(t.to_string()))
    }
    pub fn from_u64(n: u64) -> Self {
        DocumentNumber(n.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Numeric value, for ordering the way Fortnox does.
    pub fn number(&self) -> u64 {
        self.0.parse().unwrap_or(u64::MAX)
    }
}

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DocumentNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DocumentNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a document number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DocumentNumber, E> {
                Ok(DocumentNumber::from_u64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DocumentNumber, E> {
                u64::try_from(v)
                    .map(DocumentNumber::from_u64)
                    .map_err(|_| E::custom(format!("invalid document number {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DocumentNumber, E> {
                DocumentNumber::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `InvoiceReference` (and an invoice's `CreditInvoiceReference`) is `"0"` (or
/// empty) until the referenced invoice exists.
pub fn invoice_reference(raw: &Option<String>) -> Option<DocumentNumber> {
    match raw.as_deref().map(str::trim) {
        None | Some("") | Some("0") => None,
        Some(s) => DocumentNumber::parse(s).ok(),
    }
}
