use async_graphql::{Context, InputObject, Object, ID};

use super::limits::{MaxChars, MaxItems, MaxTexts};
use super::types::{Merchant, Order};
use super::{parse_id, principal, services, Result, RoleGuard};
use crate::domain::OrderState;
use crate::services::orders::{ForceState, ShipmentReport, ShippedLine};

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    #[graphql(guard = "RoleGuard::admin()")]
    async fn create_merchant(
        &self,
        ctx: &Context<'_>,
        #[graphql(validator(custom = "MaxChars::new(\"name\", 200)", min_length = 1))] name: String,
    ) -> Result<Merchant> {
        Ok(services(ctx).create_merchant(&name).await?.into())
    }

    /// Moves an order to any state, recorded as forced with the reason; the target state's
    /// job runs as usual. `expectedState`, when given, guards against racing changes.
    #[graphql(guard = "RoleGuard::admin()")]
    async fn force_order_state(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        state: OrderState,
        #[graphql(validator(custom = "MaxChars::new(\"reason\", 1000)"))] reason: String,
        expected_state: Option<OrderState>,
    ) -> Result<Order> {
        let input = ForceState {
            order_id: parse_id(&order_id, "order")?,
            state,
            reason,
            expected_state,
        };
        let order = services(ctx)
            .force_order_state(principal(ctx)?, input)
            .await?;
        Order::from_model(order)
    }

    /// Cancels an order. Merchants and admins cancel orders not yet sent to the warehouse;
    /// a SENT order only the warehouse cancels (it holds the goods). Admins can force.
    #[graphql(guard = "RoleGuard::merchant_warehouse_or_admin()")]
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"reason\", 1000)"))] reason: Option<String>,
    ) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = services(ctx)
            .cancel_order(principal(ctx)?, id, reason)
            .await?;
        Order::from_model(order)
    }

    /// Checks a RESERVED order again (after fixing its cause in Fortnox or here); it goes
    /// on to VALIDATED when every check passes, else its reasons are updated.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn revalidate_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = services(ctx).revalidate_order(principal(ctx)?, id).await?;
        Order::from_model(order)
    }

    /// The warehouse reports a shipment: tracking numbers and the quantity shipped per
    /// line (lines left out shipped nothing). The order becomes SHIPPED and is invoiced.
    /// The answer is the order as it stands then: already INVOICED if the invoice was quick.
    #[graphql(guard = "RoleGuard::warehouse_or_admin()")]
    async fn confirm_shipment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        #[graphql(validator(custom = "MaxTexts::new(\"trackingNumbers\", 50, 100)"))]
        tracking_numbers: Vec<String>,
        #[graphql(validator(custom = "MaxItems::new(\"lines\", 1000)"))] lines: Vec<
            ShippedLineInput,
        >,
    ) -> Result<Order> {
        let report = ShipmentReport {
            order_id: parse_id(&order_id, "order")?,
            tracking_numbers,
            lines: lines.into_iter().map(ShippedLine::from).collect(),
        };
        let order = services(ctx)
            .confirm_shipment(principal(ctx)?, report)
            .await?;
        Order::from_model(order)
    }

    /// Runs the job of the order's current state again, e.g. after its cause was fixed.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn retry_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = services(ctx).retry_order(principal(ctx)?, id).await?;
        Order::from_model(order)
    }
}

/// One line of a shipment: our order line id and the quantity shipped.
#[derive(InputObject)]
pub struct ShippedLineInput {
    pub line_id: ID,
    /// Decimal as text, e.g. "2" or "1.5"; at most the line's pick quantity.
    #[graphql(validator(custom = "MaxChars::new(\"quantity\", 40)"))]
    pub quantity: String,
}

impl From<ShippedLineInput> for ShippedLine {
    fn from(line: ShippedLineInput) -> Self {
        ShippedLine {
            line_id: line.line_id.to_string(),
            quantity: line.quantity,
        }
    }
}
