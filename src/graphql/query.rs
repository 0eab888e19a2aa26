use async_graphql::connection::{query, Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, ID};

use super::types::{Merchant, Order, ShippingMethod};
use super::{parse_id, principal, store, ApiError, Result};
use crate::domain::OrderState;
use crate::store::orders::OrderFilter;

#[derive(Default)]
pub struct OrderQuery;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[Object]
impl OrderQuery {
    /// The merchants the caller may see.
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
    async fn orders(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        states: Option<Vec<OrderState>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Order, EmptyFields, EmptyFields>> {
        let scope = principal(ctx)?.scope.clone();
        let filter = OrderFilter {
            // A malformed id simply matches nothing.
            merchant_id: merchant_id.map(|id| id.parse::<i64>().unwrap_or(-1)),
            states: states.unwrap_or_default(),
        };
        let store = store(ctx).clone();
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _before: Option<String>, first, _last| async move {
                let after_id = after.as_deref().map(parse_cursor).transpose()?;
                let limit = first.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
                let mut rows = store
                    .orders_page(&scope, &filter, after_id, limit as u64 + 1)
                    .await?;
                let has_next = rows.len() > limit;
                rows.truncate(limit);
                let mut connection = Connection::new(after_id.is_some(), has_next);
                for row in rows {
                    let cursor = row.id.to_string();
                    connection
                        .edges
                        .push(Edge::new(cursor, Order::from_model(row)?));
                }
                Ok::<_, ApiError>(connection)
            },
        )
        .await
    }

    /// One order with its lines and events; another tenant's order is `null`, like a missing one.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        let scope = &principal(ctx)?.scope;
        let Ok(id) = parse_id(&id, "order") else {
            return Ok(None);
        };
        match store(ctx).order(scope, id).await? {
            Some(model) => Ok(Some(Order::from_model(model)?)),
            None => Ok(None),
        }
    }

    /// The warehouse's carrier services that shipping rules can map to.
    async fn shipping_methods(&self, ctx: &Context<'_>) -> Result<Vec<ShippingMethod>> {
        principal(ctx)?;
        let methods = store(ctx).shipping_methods().await?;
        Ok(methods.into_iter().map(ShippingMethod::from).collect())
    }
}

/// A page cursor (`after`) as this API hands them out: the id of the last row seen.
pub(super) fn parse_cursor(cursor: &str) -> Result<i64> {
    cursor.parse::<i64>().map_err(|_| {
        ApiError::invalid_input(format!(
            "invalid cursor `{cursor}`: pass an endCursor from a previous page, or no cursor"
        ))
    })
}
