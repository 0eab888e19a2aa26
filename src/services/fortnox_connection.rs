//! Use cases of the merchant's Fortnox connection: connecting (OAuth), disconnecting,
//! settings, the import on demand, and resuming the orders that waited for a connection.
use chrono::Utc;
use entity::{fortnox_integration, import_failure};

use super::{Result, ServiceError, Services};
use crate::auth::Principal;
use crate::fortnox::oauth;
use crate::jobs::enqueue_state_job;
use crate::store::integrations::{CompanyClaim, FortnoxCompany, SettingsUpdate};
use crate::store::jobs_table;
use crate::store::{Store, StoreError};
use entity::IntegrationStatus;

/// How long the `state` of a started connection stays valid, as long as Fortnox's code.
const OAUTH_STATE_TTL_MINUTES: i64 = 10;

/// A merchant's integration row; `None` when Fortnox was never connected.
#[derive(Clone, Debug)]
pub struct Integration {
    pub merchant_id: i64,
    pub row: Option<fortnox_integration::Model>,
    /// Fortnox orders the import could not read or store, retried at every poll.
    pub import_failures: Vec<import_failure::Model>,
    /// Whether the merchant's orders arrive in real time (Fortnox's WebSocket API).
    pub realtime: crate::store::realtime::RealtimeStatus,
}

/// What the merchant is told while Fortnox is not connected.
const NOT_CONNECTED_WARNING: &str =
    "Fortnox is not connected: call connectFortnox and approve the access in Fortnox";

impl Integration {
    /// Things the merchant should know about the current settings or state.
    pub fn warnings(&self) -> Vec<String> {
        let Some(row) = &self.row else {
            return vec![NOT_CONNECTED_WARNING.into()];
        };
        let mut warnings = Vec::new();
        match row.status {
            IntegrationStatus::Connected => {}
            IntegrationStatus::NeedsReauthorization => warnings.push("Fortnox refused our access (the refresh token is no longer valid): connect Fortnox again; imports and invoicing wait until then".into()),
            _ => warnings.push(NOT_CONNECTED_WARNING.into()),
        }
        if row.ignore_missing_products {
            warnings.push("ignoreMissingProducts is on: order lines whose product is missing are not shipped and not invoiced".into());
        }
        if row.first_order_date.is_none() {
            warnings.push("firstOrderDate is not set: every done, uninvoiced order in Fortnox will be imported".into());
        }
        warnings
    }
}

impl Services {
    /// The merchant's Fortnox connection and settings.
    pub async fn fortnox_integration(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<Integration> {
        self.merchant_in_scope(actor, merchant_id).await?;
        self.integration(merchant_id).await
    }

    /// Starts connecting: a single-use `state` bound to the merchant and to the person
    /// starting, valid for [`OAUTH_STATE_TTL_MINUTES`], and the Fortnox URL to send them to.
    pub async fn connect_fortnox(&self, actor: &Principal, merchant_id: i64) -> Result<String> {
        self.merchant_in_scope(actor, merchant_id).await?;
        if !self.fortnox_configured {
            return Err(ServiceError::FortnoxNotConfigured);
        }
        let state = oauth::new_state();
        let expires = Utc::now() + chrono::Duration::minutes(OAUTH_STATE_TTL_MINUTES);
        self.store
            .begin_oauth(merchant_id, &state, expires, &actor.actor())
            .await?;
        Ok(self.fortnox.oauth().authorize_url(&state)?)
    }

    /// Completes a connection with the `code` and `state` Fortnox sent back, for the person
    /// who started it only: a consent given by someone else (a link forwarded to another
    /// company) connects nothing. The code is exchanged, the company behind it read, and
    /// the tokens stored only if that company may feed this merchant.
    pub async fn complete_fortnox_connection(
        &self,
        actor: &Principal,
        merchant_id: i64,
        code: &str,
        state: &str,
    ) -> Result<Integration> {
        self.merchant_in_scope(actor, merchant_id).await?;
        if !self.fortnox_configured {
            return Err(ServiceError::FortnoxNotConfigured);
        }
        // Consumed whoever presents it: a refused attempt leaves nothing to retry with.
        let pending = self
            .store
            .take_oauth_state(state)
            .await?
            .ok_or(ServiceError::ConnectionLinkInvalid)?;
        if pending.merchant_id != merchant_id || pending.started_by != Some(actor.actor()) {
            tracing::warn!(
                merchant_id,
                started_for = pending.merchant_id,
                started_by = pending.started_by.as_deref().unwrap_or("unknown"),
                completed_by = %actor.actor(),
                "a Fortnox connection was completed by someone other than who started it; refused"
            );
            return Err(ServiceError::ConnectionNotYours);
        }
        let (tokens, info) = self
            .fortnox
            .exchange_code_for_company(&merchant_id.to_string(), code)
            .await?;
        let Some(tenant_id) = info.tenant_id() else {
            return Err(ServiceError::FortnoxRefused(
                "Fortnox did not say which company approved the access (no DatabaseNumber in its company information): try connecting again".into(),
            ));
        };
        let company = FortnoxCompany {
            tenant_id: tenant_id.to_string(),
            name: info.company_name.clone(),
            organization_number: info.organization_number.clone(),
        };
        match self
            .store
            .claim_fortnox_company(merchant_id, &company)
            .await?
        {
            CompanyClaim::Claimed => {}
            CompanyClaim::TakenByAnotherMerchant => {
                return Err(ServiceError::FortnoxCompanyTaken {
                    company: company.describe(),
                })
            }
            CompanyClaim::ConnectedToAnotherCompany(connected) => {
                return Err(ServiceError::FortnoxCompanyChanged {
                    connected: connected.describe(),
                    offered: company.describe(),
                })
            }
        }
        if let Err(error) = self
            .fortnox
            .save_tokens(&merchant_id.to_string(), &tokens)
            .await
        {
            if let Err(release) = self.store.release_fortnox_company(merchant_id).await {
                tracing::error!(merchant_id, %release, "could not release the Fortnox company of a failed connection");
            }
            return Err(error.into());
        }
        tracing::info!(merchant_id, company = %company.describe(), "Fortnox connected");
        after_connected(&self.store, merchant_id).await;
        crate::realtime::tenants_changed();
        self.integration(merchant_id).await
    }

    pub async fn disconnect_fortnox(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<Integration> {
        self.merchant_in_scope(actor, merchant_id).await?;
        self.store.disconnect(merchant_id).await?;
        crate::realtime::tenants_changed();
        self.integration(merchant_id).await
    }

    /// Changes the settings given. Turning `ignoreMissingProducts` on re-checks the
    /// RESERVED orders, since those waiting only for missing products can go on now.
    pub async fn update_fortnox_settings(
        &self,
        actor: &Principal,
        merchant_id: i64,
        update: SettingsUpdate,
    ) -> Result<Integration> {
        self.merchant_in_scope(actor, merchant_id).await?;
        let ignores_missing_now = update.ignore_missing_products == Some(true);
        self.store.update_settings(merchant_id, update).await?;
        if ignores_missing_now {
            self.recheck_reserved_orders(merchant_id).await;
        }
        self.integration(merchant_id).await
    }

    /// Queues an import of the merchant's done orders now, instead of at the next poll.
    /// An import of the merchant already waiting to start is that import, so repeated
    /// calls cannot spend the merchant's Fortnox budget: at most one import runs and one
    /// waits. A running one is not reused, since it may have read Fortnox before the
    /// change the caller wants imported.
    pub async fn sync_orders(&self, actor: &Principal, merchant_id: i64) -> Result<()> {
        self.merchant_in_scope(actor, merchant_id).await?;
        let _one_at_a_time = self.sync_locks.lock(merchant_id).await;
        if jobs_table::has_pending_import(&self.store.pool, merchant_id).await? {
            return Ok(());
        }
        let task = jobs_table::import_task(merchant_id)?;
        jobs_table::push(&self.store.pool, vec![task]).await?;
        Ok(())
    }

    async fn integration(&self, merchant_id: i64) -> Result<Integration> {
        let row = self.store.integration(merchant_id).await?;
        let import_failures = self.store.import_failures(merchant_id).await?;
        let realtime = self.store.realtime_status(merchant_id).await?;
        Ok(Integration {
            merchant_id,
            row,
            import_failures,
            realtime,
        })
    }
}

/// After the merchant connected Fortnox (the OAuth callback stored the tokens): orders
/// that stopped waiting for the connection get their jobs again, and the first import
/// starts now rather than at the next poll. Failures are logged: the connection itself
/// is made, the reconciler and the schedule catch up, and orders can be retried by hand.
pub async fn after_connected(store: &Store, merchant_id: i64) {
    match resume_stalled(store, merchant_id).await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(
            merchant_id,
            resumed,
            "orders waiting for the connection resumed"
        ),
        Err(error) => {
            tracing::warn!(merchant_id, %error, "could not resume stalled orders; retry them by hand")
        }
    }
    match jobs_table::import_task(merchant_id) {
        Ok(task) => {
            if let Err(error) = jobs_table::push(&store.pool, vec![task]).await {
                tracing::warn!(merchant_id, %error, "could not queue the first import; the schedule will run it");
            }
        }
        Err(error) => tracing::warn!(merchant_id, %error, "could not build the first import job"),
    }
}

/// Every order of the merchant that stopped (e.g. on revoked access) gets its job again.
/// Returns how many were queued.
pub async fn resume_stalled(store: &Store, merchant_id: i64) -> Result<usize, StoreError> {
    let mut resumed = 0;
    for order in store.stalled_orders(merchant_id).await? {
        let state = order.state;
        store
            .clear_stall(order.id, "system:fortnox-connection")
            .await?;
        if enqueue_state_job(store, order.id, state).await? {
            resumed += 1;
        }
    }
    Ok(resumed)
}
