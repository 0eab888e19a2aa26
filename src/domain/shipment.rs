//! Checking a shipment the warehouse reports against what it was asked to pick.
use super::quantity::Quantity;
use std::collections::HashMap;

use rust_decimal::Decimal;

/// A line the warehouse was asked to pick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub line_id: i64,
    pub quantity: Decimal,
}

/// What the warehouse says it shipped: line id and quantity as text (exact decimals).
#[derive(Clone, Debug)]
pub struct Shipped {
    pub line_id: i64,
    pub quantity: String,
}

/// Returns the shipped quantity of every pick line (0 for lines not reported), or why the
/// report cannot be accepted. A partial shipment is fine; more than was picked is not.
pub fn shipped_quantities(
    picks: &[Pick],
    reported: &[Shipped],
) -> Result<Vec<(i64, Decimal)>, String> {
    let mut by_line: HashMap<i64, Decimal> = HashMap::new();
    for line in reported {
        let Some(pick) = picks.iter().find(|p| p.line_id == line.line_id) else {
            return Err(format!(
                "line {} is not a line of this order to ship",
                line.line_id
            ));
        };
        let quantity = Quantity::parse(&line.quantity)
            .map_err(|e| format!("quantity of line {}: {e}", line.line_id))?
            .value();
        if quantity < Decimal::ZERO {
            return Err(format!("quantity of line {} is negative", line.line_id));
        }
        if quantity > pick.quantity {
            return Err(format!(
                "line {} shipped {} but only {} was to be picked",
                line.line_id, quantity, pick.quantity
            ));
        }
        if by_line.insert(line.line_id, quantity).is_some() {
            return Err(format!("line {} is reported twice", line.line_id));
        }
    }
    let result: Vec<(i64, Decimal)> = picks
        .iter()
        .map(|p| {
            (
                p.line_id,
                by_line.get(&p.line_id).copied().unwrap_or(Decimal::ZERO),
            )
        })
        .collect();
    if result.iter().all(|(_, q)| q.is_zero()) {
        return Err(
            "nothing was shipped: report at least one line with a quantity, or cancel the order"
                .into(),
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks() -> Vec<Pick> {
        vec![
            Pick {
                line_id: 1,
                quantity: Decimal::from(2),
            },
            Pick {
                line_id: 2,
                quantity: Decimal::from(1),
            },
        ]
    }

    fn shipped(line_id: i64, quantity: &str) -> Shipped {
        Shipped {
            line_id,
            quantity: quantity.into(),
        }
    }

    #[test]
    fn a_full_shipment_ships_every_pick() {
        let result = shipped_quantities(&picks(), &[shipped(1, "2"), shipped(2, "1")]).unwrap();
        assert_eq!(result, vec![(1, Decimal::from(2)), (2, Decimal::from(1))]);
    }

    #[test]
    fn unreported_lines_ship_zero() {
        let result = shipped_quantities(&picks(), &[shipped(1, "1.5")]).unwrap();
        assert_eq!(result, vec![(1, Decimal::new(15, 1)), (2, Decimal::ZERO)]);
    }

    #[test]
    fn bad_reports_are_refused_with_a_reason() {
        assert!(shipped_quantities(&picks(), &[shipped(1, "3")])
            .unwrap_err()
            .contains("only 2"));
        assert!(shipped_quantities(&picks(), &[shipped(9, "1")])
            .unwrap_err()
            .contains("not a line"));
        assert!(shipped_quantities(&picks(), &[shipped(1, "-1")])
            .unwrap_err()
            .contains("negative"));
        assert!(shipped_quantities(&picks(), &[shipped(1, "x")])
            .unwrap_err()
            .contains("not a number"));
        assert!(
            shipped_quantities(&picks(), &[shipped(1, "1"), shipped(1, "1")])
                .unwrap_err()
                .contains("twice")
        );
        assert!(shipped_quantities(&picks(), &[shipped(1, "0")])
            .unwrap_err()
            .contains("nothing was shipped"));
    }
}
