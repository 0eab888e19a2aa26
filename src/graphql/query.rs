use async_graphql::{Context, Object, ID};

use super::pagination::{page_by_id, Page};
use super::types::{Merchant, Order, ShippingMethod};
use super::{cost, parse_id, principal, store, Result};
use crate::domain::OrderState;
use crate::store::orders::OrderFilter;

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// The merchants the caller may see.
    #[graphql(complexity = "cost::LIST * child_complexity")]
    async fn merchants(&self, ctx: &Context<'_>) -> Result<Vec<Merchant>> {
        let scope = &principal(ctx)?.scope;
        let merchants = store(ctx).merchants(scope).await?;
        Ok(merchants.into_iter().map(Merchant::from).collect())
    }

    async fn merchant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Merchant>> {
        let scope = &principal(ctx)?.scope;
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(store(ctx).merchant(scope, id).await?.map(Merchant::from))
    }

    /// Orders, newest first, as a Relay connection (`first` at most 200).
    #[graphql(complexity = "cost::page(first) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        states: Option<Vec<OrderState>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<Order>> {
        let scope = principal(ctx)?.scope.clone();
        let filter = OrderFilter {
            // A malformed id simply matches nothing.
            merchant_id: merchant_id.map(|id| id.parse::<i64>().unwrap_or(-1)),
            states: states.unwrap_or_default(),
        };
        let store = store(ctx);
        let selection = ctx.look_ahead();
        let fetch = |after_id, limit| async move {
            let rows = store.orders_page(&scope, &filter, after_id, limit).await?;
            let mut orders = rows
                .into_iter()
                .map(Order::from_model)
                .collect::<Result<Vec<_>>>()?;
            // A page's orders are selected as `edges { node }` or as `nodes`.
            Order::prefetch(store, selection.field("edges").field("node"), &mut orders).await?;
            Order::prefetch(store, selection.field("nodes"), &mut orders).await?;
            Ok(orders)
        };
        page_by_id(after, first, fetch, |order| Ok((order.db_id, order))).await
    }

    /// One order with its lines and events; another tenant's order is `null`, like a missing one.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let scope = &principal(ctx)?.scope;
        let Ok(id) = parse_id(&id, "order") else {
            return Ok(None);
        };
        let store = store(ctx);
        match store.order(scope, id).await? {
            Some(model) => {
                let mut order = [Order::from_model(model)?];
                Order::prefetch(store, ctx.look_ahead(), &mut order).await?;
                let [order] = order;
                Ok(Some(order))
            }
            None => Ok(None),
        }
    }

    /// The warehouse's carrier services that shipping rules can map to.
    #[graphql(complexity = "cost::LIST * child_complexity")]
    async fn shipping_methods(&self, ctx: &Context<'_>) -> Result<Vec<ShippingMethod>> {
        principal(ctx)?;
        let methods = store(ctx).shipping_methods().await?;
        Ok(methods.into_iter().map(ShippingMethod::from).collect())
    }
}
