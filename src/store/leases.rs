//! One job at a time per order, across processes, for as long as the job runs.
//!
//! Job tasks can be duplicated (a retryOrder while a task is waiting, two reconcilers, a
//! worker whose heartbeat lapsed while it was only slow). A job therefore takes the order's
//! lease (a conditional UPDATE, atomic on both databases) before any external effect:
//!
//! - **Renewed while the job runs.** A background task pushes `lease_until` forward every
//!   third of the lease time, on the condition that the token is still ours. The lease runs
//!   out only when its holder is gone (crashed, or frozen longer than the lease).
//! - **Lost means stop.** Once a renewal finds another token, the holder is told, and
//!   [`Store::ensure_held`] answers false before its next external effect.
//! - **Fenced effects.** Immediately before a non-idempotent request (`createinvoice`) the job
//!   proves with one conditional write that it still holds the lease (token, and an expiry at
//!   least the safety margin away) and records its intent in the same write. A process that
//!   was frozen after the proof can still send its request late; that case is detected
//!   afterwards (see `jobs::invoice`), since no fence can stop a request already in flight.
//!
//! Times come from the process clock; processes sharing a PostgreSQL database are assumed to
//! run NTP, and the safety margin covers the skew that remains.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use entity::order;
use sea_orm::prelude::*;
use sea_orm::ExprTrait;

use super::{Store, StoreError};

/// A lease held by one job; give it back with [`Store::release`]. Dropping it stops the
/// renewal, and the lease then runs out by itself.
#[derive(Debug)]
pub struct Lease {
    pub order_id: i64,
    token: String,
    ttl: Duration,
    margin: Duration,
    shared: Arc<Shared>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The expiry we last wrote (and saw succeed).
    until: Mutex<DateTime<Utc>>,
    /// A renewal found another holder's token: never write under this lease again.
    lost: AtomicBool,
}

impl Shared {
    fn until(&self) -> DateTime<Utc> {
        *self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn extend(&self, until: DateTime<Utc>) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }
}

impl Lease {
    pub fn token(&self) -> &str {
        &self.token
    }

    /// True once a renewal found that another job took the order.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Test support: stop renewing, as if the process were frozen, so that the lease runs
    /// out while the job still believes it holds it.
    pub fn stop_renewing(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// Someone else holds the order until `until`.
#[derive(Debug)]
pub struct Held {
    pub until: Option<DateTime<Utc>>,
}

/// What a claim found.
pub enum Claim {
    /// Ours, with the order as the claim wrote it.
    Claimed(Lease, Box<order::Model>),
    /// In none of the states asked for: the job is stale.
    NotRunnable(Box<order::Model>),
    Held(Held),
    Missing,
}

/// How long a lease lasts without renewal, and how far from its expiry a fenced effect may
/// still start.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTerms {
    pub ttl: Duration,
    pub margin: Duration,
}

impl LeaseTerms {
    /// Renewed three times per lease: two renewals may fail before it runs out. The margin
    /// is a quarter of the lease (at most 30 s): a fenced request that starts later than that
    /// could reach Fortnox after another holder took over.
    pub fn new(ttl: Duration) -> LeaseTerms {
        let margin = (ttl / 4).min(Duration::seconds(30));
        LeaseTerms { ttl, margin }
    }

    fn renew_every(&self) -> std::time::Duration {
        (self.ttl / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(100))
    }
}

impl Store {
    /// Takes the order's lease if it is in one of `states` and nobody holds it, and starts
    /// renewing it. Returns the order as written by the claim (one `UPDATE ... RETURNING`),
    /// so that decisions never rest on a read from before another holder's last write.
    /// When the claim fails, one more read tells why.
    pub async fn claim(
        &self,
        order_id: i64,
        states: &[crate::domain::OrderState],
        terms: LeaseTerms,
    ) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let until = now + terms.ttl;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::LeaseUntil, Expr::value(Some(until)))
            .col_expr(order::Column::LeaseToken, Expr::value(Some(token.clone())))
            .filter(order::Column::Id.eq(order_id))
            .filter(order::Column::State.is_in(states.iter().copied()))
            .filter(
                order::Column::LeaseUntil
                    .is_null()
                    .or(order::Column::LeaseUntil.lt(now)),
            )
            .exec_with_returning(&self.db)
            .await?;
        let Some(current) = claimed.into_iter().next() else {
            return Ok(
                match order::Entity::find_by_id(order_id).one(&self.db).await? {
                    None => Claim::Missing,
                    Some(order) if !states.contains(&order.state) => {
                        Claim::NotRunnable(Box::new(order))
                    }
                    Some(order) => Claim::Held(Held {
                        until: order.lease_until,
                    }),
                },
            );
        };
        let shared = Arc::new(Shared {
            until: Mutex::new(until),
            lost: AtomicBool::new(false),
        });
        let renewer = tokio::spawn(renew_until_lost(
            self.clone(),
            order_id,
            token.clone(),
            terms,
            shared.clone(),
        ));
        let lease = Lease {
            order_id,
            token,
            ttl: terms.ttl,
            margin: terms.margin,
            shared,
            renewer: Some(renewer),
        };
        Ok(Claim::Claimed(lease, Box::new(current)))
    }

    /// Whether the job may go on to its next external effect. Answered locally while the
    /// last renewal is comfortably in the future; otherwise (the process was frozen, or the
    /// database unreachable) by renewing now, which fails if anyone else took the order.
    pub async fn ensure_held(&self, lease: &Lease) -> Result<bool, StoreError> {
        if lease.is_lost() {
            return Ok(false);
        }
        if Utc::now() + lease.margin < lease.shared.until() {
            return Ok(true);
        }
        let renewed = renew(self, lease.order_id, &lease.token, lease.ttl).await?;
        match renewed {
            Some(until) => {
                lease.shared.extend(until);
                Ok(true)
            }
            None => {
                lease.shared.lost.store(true, Ordering::SeqCst);
                Ok(false)
            }
        }
    }

    /// The fence before `createinvoice`: one conditional write that proves the lease is held
    /// (our token, an expiry at least the margin away, the order still SHIPPED), extends it,
    /// and records the intent with our token. False: stop without the request.
    pub async fn fence_invoice_intent(&self, lease: &Lease) -> Result<bool, StoreError> {
        if lease.is_lost() {
            return Ok(false);
        }
        let now = Utc::now();
        let until = now + lease.ttl;
        let fenced = order::Entity::update_many()
            .col_expr(order::Column::LeaseUntil, Expr::value(Some(until)))
            .col_expr(order::Column::InvoiceRequestedAt, Expr::value(Some(now)))
            .col_expr(
                order::Column::InvoiceIntentToken,
                Expr::value(Some(lease.token.clone())),
            )
            .filter(order::Column::Id.eq(lease.order_id))
            .filter(order::Column::State.eq(crate::domain::OrderState::Shipped))
            .filter(order::Column::LeaseToken.eq(lease.token.as_str()))
            .filter(order::Column::LeaseUntil.gt(now + lease.margin))
            .exec(&self.db)
            .await?;
        if fenced.rows_affected == 1 {
            lease.shared.extend(until);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub async fn release(&self, mut lease: Lease) -> Result<(), StoreError> {
        lease.stop_renewing();
        order::Entity::update_many()
            .col_expr(
                order::Column::LeaseUntil,
                Expr::value(Option::<DateTimeUtc>::None),
            )
            .col_expr(
                order::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            )
            .filter(order::Column::Id.eq(lease.order_id))
            .filter(order::Column::LeaseToken.eq(lease.token.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// Pushes the expiry forward if the token is still ours. `None`: another job holds the
/// order (any claim replaces the token, so an unchanged token means nobody took it).
async fn renew(
    store: &Store,
    order_id: i64,
    token: &str,
    ttl: Duration,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let until = Utc::now() + ttl;
    let renewed = order::Entity::update_many()
        .col_expr(order::Column::LeaseUntil, Expr::value(Some(until)))
        .filter(order::Column::Id.eq(order_id))
        .filter(order::Column::LeaseToken.eq(token))
        .exec(&store.db)
        .await?;
    Ok((renewed.rows_affected == 1).then_some(until))
}

async fn renew_until_lost(
    store: Store,
    order_id: i64,
    token: String,
    terms: LeaseTerms,
    shared: Arc<Shared>,
) {
    loop {
        tokio::time::sleep(terms.renew_every()).await;
        match renew(&store, order_id, &token, terms.ttl).await {
            Ok(Some(until)) => shared.extend(until),
            Ok(None) => {
                tracing::warn!(
                    order_id,
                    "another job took the order's lease; this job stops before its next effect"
                );
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            // The next tick tries again; the job itself checks the expiry it last saw.
            Err(error) => tracing::warn!(order_id, %error, "could not renew the order's lease"),
        }
    }
}
