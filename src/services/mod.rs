//! The use cases, one module per area: every change a person or a partner tool asks for
//! through the API is decided here, once. The GraphQL resolvers authenticate, call one
//! use case and map its result; the store only reads and writes; the jobs run what the use
//! cases queue (this layer calls into `jobs`, never the other way round).
//!
//! Use cases take typed inputs and the acting [`Principal`] (role, tenant scope, actor
//! name), and return store models or small result structs, or a [`ServiceError`].
pub mod catalog;
mod error;
pub mod fortnox_connection;
mod live_reads;
pub mod order_events;
pub mod orders;
pub mod product_sync;
pub mod webhooks;

use entity::merchant;

pub use error::ServiceError;

use crate::auth::Principal;
use crate::config::FortnoxSettings;
use crate::domain::JobKind;
use crate::domain::OrderState;
use crate::events::EventFeed;
use crate::fortnox::FortnoxClient;
use crate::store::jobs_table::{self, OrderJob};
use crate::store::orders::{OrderFilter, TenantScope};
use crate::store::{Store, StoreError};

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// What the use cases need: the store, the event feed (subscribers follow the event log
/// through it), and the Fortnox client with whether its app credentials are set.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub feed: EventFeed,
    pub fortnox: FortnoxClient,
    pub webhooks: crate::webhooks::Webhooks,
    /// Whether FORTNOX_CLIENT_ID and FORTNOX_CLIENT_SECRET are set, so connecting can work.
    pub fortnox_configured: bool,
    /// Live Fortnox reads behind a short per-merchant cache.
    live_reads: live_reads::LiveReads,
    /// Makes "is an import queued? if not, queue one" one step per merchant in this
    /// process, so that concurrent `syncOrders` calls queue one import, not one each.
    sync_locks: crate::fortnox::KeyedLocks<i64>,
}

impl Services {
    pub fn new(
        store: Store,
        feed: EventFeed,
        fortnox: FortnoxClient,
        webhooks: crate::webhooks::Webhooks,
        settings: &FortnoxSettings,
    ) -> Services {
        Services {
            store,
            feed,
            fortnox,
            webhooks,
            fortnox_configured: settings.client_id.is_some() && settings.client_secret.is_some(),
            live_reads: live_reads::LiveReads::new(settings.live_read_cache),
            sync_locks: Default::default(),
        }
    }

    /// The merchant, if it exists and the actor may see it; otherwise "not found", the
    /// same for both so that another tenant's merchant does not leak.
    pub async fn merchant_in_scope(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<merchant::Model> {
        if !actor.scope.allows(merchant_id) {
            return Err(ServiceError::NotFound("merchant"));
        }
        self.store
            .merchant(&actor.scope, merchant_id)
            .await?
            .ok_or(ServiceError::NotFound("merchant"))
    }

    /// Queues a re-check of the merchant's RESERVED orders after a change that may have
    /// fixed them (a product created, a shipping rule added or removed, missing products
    /// now ignored). The change itself is saved already, so a failure here is logged, not
    /// returned: the merchant can still `revalidateOrder`.
    pub(crate) async fn recheck_reserved_orders(&self, merchant_id: i64) {
        if let Err(error) = revalidate_reserved(&self.store, merchant_id).await {
            tracing::error!(%error, merchant_id, "could not queue the revalidation of RESERVED orders");
        }
    }
}

/// Queues a re-check of every RESERVED order of a merchant. Returns how many were queued.
pub async fn revalidate_reserved(store: &Store, merchant_id: i64) -> Result<usize, StoreError> {
    let filter = OrderFilter {
        merchant_id: Some(merchant_id),
        states: vec![OrderState::Reserved],
    };
    let mut queued = 0;
    let mut after = None;
    loop {
        let page = store
            .orders_page(&TenantScope::All, &filter, after, 500)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let tasks = page
            .iter()
            .map(|order| validate_task(order.id))
            .collect::<Result<Vec<_>, _>>()?;
        queued += tasks.len();
        jobs_table::push(&store.pool, tasks).await?;
    }
    Ok(queued)
}

/// The job that checks an order again (from its first attempt).
fn validate_task(order_id: i64) -> Result<jobs_table::QueuedTask, StoreError> {
    jobs_table::order_task(
        JobKind::ValidateOrder,
        &OrderJob {
            order_id,
            attempt: 0,
        },
        None,
    )
}
