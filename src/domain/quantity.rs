//! Quantities of goods: ordered, picked, shipped, in stock. One type, one parser, one
//! policy for the text forms, used wherever a quantity arrives as text (from Fortnox, from
//! the warehouse, from a merchant, from our own columns).
//!
//! The policy: an optional sign, digits and at most one decimal *point* (`12`, `2.5`,
//! `-1`), or scientific notation (`1e3`); surrounding spaces are ignored. A comma is never
//! accepted, neither as a decimal separator nor as a thousands separator: `1,000` means a
//! thousand to one reader and one to another, and a guess could ship or invoice a thousand
//! times too much. The Fortnox client reads Fortnox's values by the same rule.
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// An exact decimal quantity (never a float).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(Decimal);

/// Why a text is not a quantity; the message names what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("no quantity given")]
    Empty,
    #[error("`{0}` has a comma: write quantities with a decimal point and no thousands separator, e.g. 1000 or 2.5")]
    Comma(String),
    #[error("`{0}` is not a number: write quantities with a decimal point and no thousands separator, e.g. 1000 or 2.5")]
    NotANumber(String),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);

    /// Reads a quantity by the policy above.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(QuantityError::Empty);
        }
        if trimmed.contains(',') {
            return Err(QuantityError::Comma(text.to_owned()));
        }
        Decimal::from_str(trimmed)
            .or_else(|_| Decimal::from_scientific(trimmed))
            .map(Quantity)
            .map_err(|_| QuantityError::NotANumber(text.to_owned()))
    }

    pub fn new(value: Decimal) -> Quantity {
        Quantity(value)
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn is_negative(self) -> bool {
        self.0 < Decimal::ZERO
    }
}

/// The shortest exact form (`2.50` is written `2.5`), as stored and shown.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl From<Decimal> for Quantity {
    fn from(value: Decimal) -> Self {
        Quantity(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Result<String, QuantityError> {
        Quantity::parse(text).map(|q| q.to_string())
    }

    #[test]
    fn decimals_with_a_point_and_scientific_notation_are_read_exactly() {
        assert_eq!(q("12"), Ok("12".into()));
        assert_eq!(q(" 2.50 "), Ok("2.5".into()));
        assert_eq!(q("-1"), Ok("-1".into()));
        assert_eq!(q("1e3"), Ok("1000".into()));
        assert_eq!(q("0.1"), Ok("0.1".into()));
    }

    #[test]
    fn a_comma_is_never_guessed() {
        assert!(matches!(q("1,5"), Err(QuantityError::Comma(_))));
        assert!(matches!(q("1,000"), Err(QuantityError::Comma(_))));
        let message = Quantity::parse("1,000").unwrap_err().to_string();
        assert!(message.contains("decimal point"), "{message}");
    }

    #[test]
    fn anything_else_is_refused_with_the_text() {
        assert_eq!(q("  "), Err(QuantityError::Empty));
        assert_eq!(q("two"), Err(QuantityError::NotANumber("two".into())));
        assert_eq!(q("1 000"), Err(QuantityError::NotANumber("1 000".into())));
        assert_eq!(q("1.2.3"), Err(QuantityError::NotANumber("1.2.3".into())));
    }
}
