//! Following orders from another system: the order event log read page by page, and
//! followed live from a cursor with no gap and no duplicate where the replay from the
//! store meets the live feed.
use std::collections::VecDeque;

use entity::order_event;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Result, ServiceError, Services};
use crate::auth::Principal;
use crate::events::FeedEvent;
use crate::store::event_log::{EventFilter, Position};
use crate::store::Store;

pub use entity::EventKind;

/// Events read from the store at a time while a subscriber catches up.
const REPLAY_PAGE: u64 = 200;

/// What a reader asks for; the actor's tenants narrow it further.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub merchant_id: Option<i64>,
    pub order_id: Option<i64>,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
}

impl Services {
    /// The events after `after` (from the start without it), oldest first, at most `limit`.
    pub async fn order_events(
        &self,
        actor: &Principal,
        query: EventQuery,
        after: Option<Position>,
        limit: u64,
    ) -> Result<Vec<order_event::Model>> {
        let filter = filter_for(actor, query)?;
        Ok(self
            .store
            .events_after(&filter, after.unwrap_or(Position::START), limit)
            .await?)
    }

    /// Every event after `after` (from now on without it), in log order: first what the
    /// store holds, then live, until the actor's token expires; then the stream ends with
    /// `ServiceError::TokenExpired`, and the client subscribes again with a new token and
    /// its last cursor. Another tenant's merchant is "not found", like a missing one; an
    /// order id of another tenant simply never matches.
    pub async fn follow_order_events(
        &self,
        actor: &Principal,
        query: EventQuery,
        after: Option<Position>,
    ) -> Result<impl Stream<Item = Result<order_event::Model>> + Send + 'static> {
        let filter = filter_for(actor, query)?;
        // Subscribed before the store is read: whatever the feed publishes from here on is
        // in the channel, and whatever it published before is in the store by then.
        let live = self.feed.subscribe();
        let cursor = match after {
            Some(after) => after,
            None => self.store.event_log_head().await?,
        };
        let follow = Follow {
            store: self.store.clone(),
            filter,
            cursor,
            live,
            pending: VecDeque::new(),
            replaying: true,
            failed: false,
        };
        let events = futures::stream::unfold(follow, Follow::next).boxed();
        let left = (actor.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        // The stream ends with TOKEN_EXPIRED only when the token did expire, not when the
        // store failed (the client then resumes with the same token).
        let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let expiry = {
            let expired = expired.clone();
            async move {
                tokio::time::sleep(left).await;
                expired.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        };
        let token_expired = futures::stream::once(async move {
            expired
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(Err(ServiceError::TokenExpired))
        })
        .filter_map(std::future::ready);
        Ok(events.take_until(Box::pin(expiry)).chain(token_expired))
    }
}

fn filter_for(actor: &Principal, query: EventQuery) -> Result<EventFilter> {
    if query.merchant_id.is_some_and(|id| !actor.scope.allows(id)) {
        return Err(ServiceError::NotFound("merchant"));
    }
    Ok(EventFilter {
        scope: Some(actor.scope.clone()),
        merchant_id: query.merchant_id,
        order_id: query.order_id,
        kinds: query.kinds,
    })
}

/// One subscriber's place in the log. It replays from the store until it has caught up,
/// then takes the feed's events, skipping those at or before its cursor (the seam); when
/// it falls behind the feed it replays again from its cursor.
struct Follow {
    store: Store,
    filter: EventFilter,
    /// The last event delivered (or where the subscriber started).
    cursor: Position,
    live: broadcast::Receiver<FeedEvent>,
    pending: VecDeque<order_event::Model>,
    replaying: bool,
    failed: bool,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<order_event::Model>, Follow)> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.cursor = Position::of(&event);
                return Some((Ok(event), self));
            }
            if self.replaying {
                match self
                    .store
                    .events_after(&self.filter, self.cursor, REPLAY_PAGE)
                    .await
                {
                    Ok(page) => {
                        self.replaying = page.len() as u64 == REPLAY_PAGE;
                        self.pending.extend(page);
                    }
                    Err(error) => {
                        // Ends the stream: the client resumes from its last cursor.
                        self.failed = true;
                        return Some((Err(error.into()), self));
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    if Position::of(&event) > self.cursor && self.filter.matches(&event) {
                        self.cursor = Position::of(&event);
                        return Some((Ok(order_event::Model::clone(&event)), self));
                    }
                }
                Err(RecvError::Lagged(_)) => self.replaying = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
