//! The Fortnox integration: connecting, settings, and the import on demand.
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{import_failure, IntegrationStatus};

use super::limits::MaxChars;
use super::{parse_id, principal, services, Result, RoleGuard};
use crate::services::fortnox_connection::Integration;
use crate::store::integrations::SettingsUpdate;

#[derive(SimpleObject)]
pub struct FortnoxIntegration {
    pub merchant_id: ID,
    pub status: IntegrationStatus,
    /// The Fortnox company the orders come from, as Fortnox named it when the connection
    /// was made; `null` until connected (and after a disconnect).
    pub company: Option<FortnoxCompany>,
    /// Orders dated before it are never imported (`YYYY-MM-DD`).
    pub first_order_date: Option<NaiveDate>,
    /// When on, order lines whose product is missing are dropped from the warehouse order
    /// and the invoice.
    pub ignore_missing_products: bool,
    /// When on (the default), a duplicate Fortnox invoice found for an order (a job that
    /// outlived its lease invoiced it again) is credited in Fortnox automatically; when off,
    /// it is only reported on the order.
    pub credit_duplicate_invoices: bool,
    /// Empty: every stock article; set: only articles whose DefaultStockLocation equals it.
    pub stock_location: Option<String>,
    pub orders_synced_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Things the merchant should know about the current settings or state.
    pub warnings: Vec<String>,
    /// Fortnox orders the import could not read or store. They are retried at every poll
    /// and never hold back the merchant's other orders; fix them in Fortnox.
    pub import_failures: Vec<ImportFailure>,
    /// Whether orders arrive within seconds through Fortnox's WebSocket API, or only by
    /// polling.
    pub realtime: RealtimeImport,
}

/// The merchant's real-time import from Fortnox's WebSocket API. While it is live, polling
/// runs only as a safety net (every `IMPORT_INTERVAL_REALTIME_SECS`); while it is not, at
/// the normal interval.
#[derive(SimpleObject)]
pub struct RealtimeImport {
    /// The merchant's events arrive on a healthy connection now.
    pub live: bool,
    /// Since when (`null` while not live).
    pub since: Option<DateTime<Utc>>,
    /// When the last event for the merchant arrived.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Why the merchant is left to polling, when Fortnox refused it.
    pub problem: Option<String>,
}

impl From<crate::store::realtime::RealtimeStatus> for RealtimeImport {
    fn from(status: crate::store::realtime::RealtimeStatus) -> Self {
        RealtimeImport {
            live: status.live_since.is_some(),
            since: status.live_since,
            last_event_at: status.last_event_at,
            problem: status.problem,
        }
    }
}

/// A Fortnox company (one Fortnox database), from Fortnox's company information.
#[derive(SimpleObject)]
pub struct FortnoxCompany {
    pub name: String,
    pub organization_number: Option<String>,
    /// Fortnox's DatabaseNumber. One company feeds one merchant.
    pub tenant_id: String,
}

/// A Fortnox order that could not be imported, and why.
#[derive(SimpleObject)]
pub struct ImportFailure {
    pub document_number: String,
    pub reason: String,
    /// Polls that tried it so far.
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

impl From<import_failure::Model> for ImportFailure {
    fn from(row: import_failure::Model) -> Self {
        ImportFailure {
            document_number: row.document_number,
            reason: row.reason,
            attempts: row.attempts,
            first_failed_at: row.first_failed_at,
            last_failed_at: row.last_failed_at,
        }
    }
}

impl From<Integration> for FortnoxIntegration {
    fn from(integration: Integration) -> Self {
        let warnings = integration.warnings();
        let merchant_id = integration.merchant_id.into();
        let import_failures = integration
            .import_failures
            .into_iter()
            .map(ImportFailure::from)
            .collect();
        let realtime = integration.realtime.into();
        let Some(row) = integration.row else {
            return FortnoxIntegration {
                merchant_id,
                status: IntegrationStatus::NotConnected,
                company: None,
                first_order_date: None,
                ignore_missing_products: false,
                credit_duplicate_invoices: true,
                stock_location: None,
                orders_synced_until: None,
                last_error: None,
                warnings,
                import_failures,
                realtime,
            };
        };
        let company = row.fortnox_tenant_id.map(|tenant_id| FortnoxCompany {
            name: row.fortnox_company_name.unwrap_or_default(),
            organization_number: row.fortnox_organization_number,
            tenant_id,
        });
        FortnoxIntegration {
            merchant_id,
            status: row.status,
            company,
            first_order_date: row
                .first_order_date
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            ignore_missing_products: row.ignore_missing_products,
            credit_duplicate_invoices: row.credit_duplicate_invoices,
            stock_location: row.stock_location,
            orders_synced_until: row.orders_synced_until,
            last_error: row.last_error,
            warnings,
            import_failures,
            realtime,
        }
    }
}

#[derive(Default)]
pub struct FortnoxQuery;

#[Object]
impl FortnoxQuery {
    /// The merchant's Fortnox connection, its settings and warnings (not for the warehouse).
    #[graphql(guard = "RoleGuard::merchant_partner_or_admin()")]
    async fn fortnox_integration(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
    ) -> Result<FortnoxIntegration> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let integration = services(ctx)
            .fortnox_integration(principal(ctx)?, merchant_id)
            .await?;
        Ok(integration.into())
    }
}

#[derive(Default)]
pub struct FortnoxMutation;

#[Object]
impl FortnoxMutation {
    /// Starts connecting Fortnox: returns the URL to send the person to. The `state` in
    /// it is single-use, bound to this merchant and to the caller, and expires in 10
    /// minutes. Fortnox sends the person back with `code` and `state`, which the caller
    /// passes to `completeFortnoxConnection`.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn connect_fortnox(&self, ctx: &Context<'_>, merchant_id: ID) -> Result<String> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        Ok(services(ctx)
            .connect_fortnox(principal(ctx)?, merchant_id)
            .await?)
    }

    /// Completes a connection started with `connectFortnox`, with the `code` and `state`
    /// Fortnox sent back. Only the caller who started it may complete it (same role and
    /// subject). Refused when that Fortnox company is connected to another merchant, or
    /// when this merchant is connected to another company (disconnect first).
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn complete_fortnox_connection(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"code\", 2_000)"))] code: String,
        #[graphql(validator(custom = "MaxChars::new(\"state\", 200)"))] state: String,
    ) -> Result<FortnoxIntegration> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let integration = services(ctx)
            .complete_fortnox_connection(principal(ctx)?, merchant_id, &code, &state)
            .await?;
        Ok(integration.into())
    }

    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn disconnect_fortnox(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
    ) -> Result<FortnoxIntegration> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let integration = services(ctx)
            .disconnect_fortnox(principal(ctx)?, merchant_id)
            .await?;
        Ok(integration.into())
    }

    /// Changes the settings given; the others stay. `clearFirstOrderDate` removes the date.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    // Each GraphQL argument is a parameter; an input object would change the schema.
    #[allow(clippy::too_many_arguments)]
    async fn update_fortnox_settings(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        first_order_date: Option<NaiveDate>,
        #[graphql(default = false)] clear_first_order_date: bool,
        ignore_missing_products: Option<bool>,
        #[graphql(validator(custom = "MaxChars::new(\"stockLocation\", 100)"))]
        stock_location: Option<String>,
        credit_duplicate_invoices: Option<bool>,
    ) -> Result<FortnoxIntegration> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let update = SettingsUpdate {
            first_order_date: match clear_first_order_date {
                true => Some(None),
                false => first_order_date.map(Some),
            },
            ignore_missing_products,
            credit_duplicate_invoices,
            stock_location: stock_location.map(Some),
        };
        let integration = services(ctx)
            .update_fortnox_settings(principal(ctx)?, merchant_id, update)
            .await?;
        Ok(integration.into())
    }

    /// Imports the merchant's done orders from Fortnox now, instead of at the next poll.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn sync_orders(&self, ctx: &Context<'_>, merchant_id: ID) -> Result<bool> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        services(ctx)
            .sync_orders(principal(ctx)?, merchant_id)
            .await?;
        Ok(true)
    }
}
