//! One connection's life: connect, add the merchants as tenants, add the topics at their
//! stored offsets, subscribe, then handle events and keep the tenants up to date until the
//! connection fails, this process stops leading, or the service shuts down.
use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::leader::Leadership;
use super::RealtimeContext;
use crate::domain::realtime::{order_event_needs_read, OrderChange};
use crate::fortnox::topics::{
    self, bare_token, Command, EventType, Frame, Incoming, Receiver, Reply, Sender, TopicEvent,
    TopicStart, TopicsError,
};
use crate::fortnox::types::DocumentNumber;
use crate::fortnox::FortnoxError;
use crate::store::realtime::EventEffect;
use crate::store::StoreError;

pub enum Ended {
    Shutdown,
    LostLead,
    Failed(String),
}

const REFUSED_TWICE: &str = "Fortnox refused the access token for real-time events even after a refresh; orders are imported by polling (reconnecting Fortnox may help)";

/// How long one merchant's token may take (a refresh is an HTTP call to Fortnox), and how
/// many are loaded at once: 100 merchants whose refreshes all hang hold the connection's
/// reading for at most 4 x 10 s, within its 90 s silence limit.
const TOKEN_WAIT: Duration = Duration::from_secs(10);
const TOKENS_AT_ONCE: usize = 32;

const TOPICS: [&str; 2] = [topics::ORDERS, topics::ARTICLES];

/// A merchant on this connection.
struct Tenant {
    /// The access token last sent for it.
    token: String,
    tenant_id: Option<i64>,
    /// Fortnox refused `token` even after a refresh: left to polling until the token changes.
    refused: bool,
    /// A refresh was already tried for a refusal of `token`.
    refreshed_after_refusal: bool,
}

pub struct Session<'a> {
    ctx: &'a RealtimeContext,
    sender: Sender,
    receiver: Receiver,
    tenants: HashMap<i64, Tenant>,
    /// Fortnox's tenant id → merchant, from the replies to add-tenants-v1.
    merchants: HashMap<i64, i64>,
    subscribed: bool,
}

impl<'a> Session<'a> {
    pub async fn run(
        ctx: &'a RealtimeContext,
        holder: &str,
        leadership: &mut Leadership,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        failures: &mut u32,
    ) -> Ended {
        let (sender, receiver) =
            match topics::connect(&ctx.settings.url, ctx.settings.reply_timeout).await {
                Ok(halves) => halves,
                Err(error) => return Ended::Failed(error.to_string()),
            };
        let mut session = Session {
            ctx,
            sender,
            receiver,
            tenants: HashMap::new(),
            merchants: HashMap::new(),
            subscribed: false,
        };
        let ended = match session.start().await {
            Ok(early) => {
                // Connected and subscribed: the next failure starts the backoff afresh.
                *failures = 0;
                tracing::info!(
                    holder,
                    tenants = session.merchants.len(),
                    "Fortnox WebSocket connection live"
                );
                session.serve(early, leadership, shutdown).await
            }
            Err(error) => Ended::Failed(error),
        };
        session.sender.close().await;
        ended
    }

    /// add-tenants-v1, add-topics-v1 at the stored offsets, subscribe-v1; each reply awaited.
    /// Returns events that came before the subscription's reply.
    async fn start(&mut self) -> Result<Vec<TopicEvent>, String> {
        let mut early = Vec::new();
        self.sync_tenants(true, &mut early).await?;
        let offsets = self.ctx.store.ws_offsets().await.map_err(db)?;
        let starts: Vec<TopicStart> = TOPICS
            .iter()
            .map(|topic| TopicStart {
                topic: topic.to_string(),
                offset: offsets.get(*topic).cloned(),
            })
            .collect();
        let reply = self
            .request(
                Command::AddTopics {
                    topics: starts.clone(),
                },
                &mut early,
            )
            .await?;
        if !reply.ok {
            self.refused_topics(&reply, &starts, &mut early).await?;
        }
        let reply = self.request(Command::Subscribe, &mut early).await?;
        if !reply.ok {
            return Err("Fortnox refused subscribe-v1".into());
        }
        self.subscribed = true;
        self.ctx.store.ws_reset_live().await.map_err(db)?;
        self.catch_up(
            starts
                .iter()
                .filter(|start| start.offset.is_none())
                .map(|start| start.topic.as_str()),
        )
        .await?;
        for (merchant_id, tenant_id) in self.live_tenants() {
            self.ctx
                .store
                .ws_merchant_live(merchant_id, tenant_id)
                .await
                .map_err(db)?;
        }
        Ok(early)
    }

    /// A topic whose offset Fortnox refused (too old, or unknown) starts again at its newest
    /// event, and every merchant is polled over the gap.
    async fn refused_topics(
        &mut self,
        reply: &Reply,
        starts: &[TopicStart],
        early: &mut Vec<TopicEvent>,
    ) -> Result<(), String> {
        let retry: Vec<TopicStart> = starts
            .iter()
            .filter(|s| reply.invalid_topics.contains(&s.topic) && s.offset.is_some())
            .map(|s| TopicStart {
                topic: s.topic.clone(),
                offset: None,
            })
            .collect();
        if retry.is_empty() {
            return Err(format!(
                "Fortnox refused the topics {:?}",
                reply.invalid_topics
            ));
        }
        for start in &retry {
            tracing::warn!(topic = %start.topic, "Fortnox refused the stored offset (older than its retention?); starting at the newest event and catching up over the gap");
            self.ctx
                .store
                .forget_ws_offset(&start.topic)
                .await
                .map_err(db)?;
        }
        let again = self
            .request(
                Command::AddTopics {
                    topics: retry.clone(),
                },
                early,
            )
            .await?;
        if !again.ok {
            return Err(format!(
                "Fortnox refused the topics {:?}",
                again.invalid_topics
            ));
        }
        self.catch_up(retry.iter().map(|start| start.topic.as_str()))
            .await
    }

    /// What a topic starting at its newest event may have missed: orders by one poll of
    /// every merchant, articles by treating every cached catalogue as stale (no call).
    async fn catch_up<'t>(&self, topics: impl Iterator<Item = &'t str>) -> Result<(), String> {
        for topic in topics {
            match topic {
                topics::ORDERS => self.poll_over_the_gap().await?,
                topics::ARTICLES => self.ctx.store.ws_catalogs_changed().await.map_err(db)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// One poll of every merchant, for what `orders` may have missed (no offset: the first
    /// connection, or one Fortnox refused).
    async fn poll_over_the_gap(&self) -> Result<(), String> {
        for merchant_id in self.ctx.store.connected_merchants().await.map_err(db)? {
            let task = crate::store::jobs_table::import_task(merchant_id).map_err(db)?;
            crate::store::jobs_table::push(&self.ctx.store.pool, vec![task])
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Sends a command and waits for its reply (before the subscription is live).
    async fn request(
        &mut self,
        command: Command,
        early: &mut Vec<TopicEvent>,
    ) -> Result<Reply, String> {
        let name = command.name();
        self.sender
            .send(&command)
            .await
            .map_err(|e| e.to_string())?;
        self.receiver
            .reply_to(name, self.ctx.settings.reply_timeout, early)
            .await
            .map_err(|e| e.to_string())
    }

    fn live_tenants(&self) -> Vec<(i64, i64)> {
        self.tenants
            .iter()
            .filter_map(|(merchant, t)| Some((*merchant, t.tenant_id?)))
            .collect()
    }

    async fn serve(
        &mut self,
        early: Vec<TopicEvent>,
        leadership: &mut Leadership,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Ended {
        for event in early {
            if let Err(error) = self.handle_event(event).await {
                return Ended::Failed(error);
            }
        }
        let settings = &self.ctx.settings;
        let mut ping = tokio::time::interval(settings.ping_interval);
        let mut sync = tokio::time::interval(settings.tenant_sync_interval);
        let mut lead_check = tokio::time::interval(settings.heartbeat_interval);
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                frame = self.receiver.next() => {
                    last_heard = Instant::now();
                    let result = match frame {
                        Ok(Frame::Message(Incoming::Event(event))) => self.handle_event(event).await,
                        Ok(Frame::Message(Incoming::Reply(reply))) => self.handle_reply(reply).await,
                        Ok(Frame::Message(Incoming::Unrecognized(reason))) => {
                            tracing::warn!(%reason, "unreadable frame from Fortnox's WebSocket API ignored");
                            Ok(())
                        }
                        Ok(Frame::Alive) => Ok(()),
                        Err(error) => Err(error.to_string()),
                    };
                    if let Err(error) = result {
                        return Ended::Failed(error);
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.ctx.settings.silence_limit {
                        return Ended::Failed(TopicsError::Timeout("a ping", self.ctx.settings.silence_limit).to_string());
                    }
                    if let Err(error) = self.sender.ping().await {
                        return Ended::Failed(error.to_string());
                    }
                }
                _ = super::TENANTS_CHANGED.notified() => {
                    let mut early = Vec::new();
                    if let Err(error) = self.sync_tenants(false, &mut early).await {
                        return Ended::Failed(error);
                    }
                }
                _ = sync.tick() => {
                    let mut early = Vec::new();
                    if let Err(error) = self.sync_tenants(false, &mut early).await {
                        return Ended::Failed(error);
                    }
                }
                _ = lead_check.tick() => {
                    if !leadership.still_held().await {
                        return Ended::LostLead;
                    }
                }
                _ = prune.tick() => {
                    // Fortnox replays about two weeks; an offset older than that never comes back.
                    if let Err(error) = self.ctx.store.prune_ws_seen(chrono::Duration::days(15)).await {
                        tracing::warn!(%error, "could not prune the seen Fortnox event offsets");
                    }
                }
                _ = shutdown.changed() => return Ended::Shutdown,
            }
        }
    }

    /// Brings the tenants up to date: adds connected merchants and refreshed tokens (in
    /// commands of at most 50 tokens), removes disconnected merchants. At `start` the
    /// replies are awaited; later they arrive among the events (`handle_reply`).
    async fn sync_tenants(
        &mut self,
        start: bool,
        early: &mut Vec<TopicEvent>,
    ) -> Result<(), String> {
        let connected = self.ctx.store.connected_merchants().await.map_err(db)?;
        let gone: Vec<i64> = self
            .tenants
            .keys()
            .filter(|m| !connected.contains(m))
            .copied()
            .collect();
        self.remove(&gone, None).await?;
        let mut tokens = Vec::new();
        for (merchant_id, fetched) in self.fresh_tokens(&connected).await {
            let token = match fetched {
                Some(Ok(token)) => token,
                Some(Err(error)) => {
                    self.token_unavailable(merchant_id, &error).await?;
                    continue;
                }
                None => {
                    // Fortnox's token service is slow: keep the merchant as it is on the
                    // connection, and try again at the next sync.
                    tracing::warn!(merchant_id, "no Fortnox access token within {TOKEN_WAIT:?} for real-time import; trying again at the next tenant sync");
                    continue;
                }
            };
            let unchanged = self
                .tenants
                .get(&merchant_id)
                .is_some_and(|t| t.token == token);
            if unchanged {
                continue;
            }
            let previous = self.tenants.insert(
                merchant_id,
                Tenant {
                    token: token.clone(),
                    tenant_id: None,
                    refused: false,
                    refreshed_after_refusal: false,
                },
            );
            // A re-added tenant keeps its id (Fortnox answers with the same one).
            if let (Some(previous), Some(tenant)) = (previous, self.tenants.get_mut(&merchant_id)) {
                tenant.tenant_id = previous.tenant_id;
            }
            tokens.push(token);
        }
        self.add_tenants(&tokens, start, early).await
    }

    /// add-tenants-v1 for `tokens`, in commands of at most 50. At `start` each reply is
    /// awaited and handled (events arriving meanwhile go to `early`); later the replies
    /// arrive among the events (`handle_reply`).
    async fn add_tenants(
        &mut self,
        tokens: &[String],
        start: bool,
        early: &mut Vec<TopicEvent>,
    ) -> Result<(), String> {
        for batch in tokens.chunks(topics::TOKENS_PER_COMMAND) {
            let command =
                Command::add_tenants(self.ctx.settings.client_secret.expose_secret(), batch);
            if start {
                let reply = self.request(command, early).await?;
                // Boxed: a refused token's retry adds tenants again from in there.
                Box::pin(self.tenants_added(reply, start, early)).await?;
            } else {
                self.sender
                    .send(&command)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Each merchant's access token, valid for `token_validity` (refreshed first when it
    /// is not): loaded side by side, each waited for at most `TOKEN_WAIT` (`None` when it
    /// took longer), so that a slow token service holds the reading of events for a
    /// bounded time. Each load runs as a task of its own that the wait does not cancel: a
    /// refresh cut off after Fortnox rotated the refresh token would lose the new one and
    /// disconnect the merchant; left to finish, it saves it for the next sync.
    async fn fresh_tokens(
        &self,
        merchants: &[i64],
    ) -> Vec<(i64, Option<Result<String, FortnoxError>>)> {
        use futures::StreamExt;
        let validity = self.ctx.settings.token_validity;
        futures::stream::iter(merchants.iter().copied())
            .map(|merchant_id| {
                let fortnox = self.ctx.fortnox.clone();
                let load = tokio::spawn(async move {
                    fortnox
                        .tokens()
                        .access_token_valid_for(&merchant_id.to_string(), validity)
                        .await
                });
                async move {
                    let fetched = match tokio::time::timeout(TOKEN_WAIT, load).await {
                        Ok(Ok(fetched)) => Some(fetched),
                        // The task panicked: as good as late; the next sync tries again.
                        Ok(Err(_)) | Err(_) => None,
                    };
                    (merchant_id, fetched)
                }
            })
            .buffer_unordered(TOKENS_AT_ONCE)
            .collect()
            .await
    }

    /// A merchant whose token cannot be had (needs reconnecting, or Fortnox's token service
    /// is down) is not on the connection; polling covers it.
    async fn token_unavailable(
        &mut self,
        merchant_id: i64,
        error: &FortnoxError,
    ) -> Result<(), String> {
        let problem = match error {
            FortnoxError::NeedsReauthorization { .. } => {
                "Fortnox needs to be connected again; until then no orders are imported".to_string()
            }
            other => format!("no Fortnox access token could be had for real-time import ({other}); orders are imported by polling meanwhile"),
        };
        self.remove(&[merchant_id], Some(&problem)).await
    }

    /// Takes merchants off the connection (and off the live list).
    async fn remove(&mut self, merchants: &[i64], problem: Option<&str>) -> Result<(), String> {
        let mut ids = Vec::new();
        for merchant_id in merchants {
            if let Some(tenant) = self.tenants.remove(merchant_id) {
                if let Some(id) = tenant.tenant_id {
                    self.merchants.remove(&id);
                    ids.push(id);
                }
            }
            self.ctx
                .store
                .ws_merchant_not_live(*merchant_id, problem)
                .await
                .map_err(db)?;
        }
        if !ids.is_empty() {
            self.sender
                .send(&Command::RemoveTenants { tenants: ids })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn handle_reply(&mut self, reply: Reply) -> Result<(), String> {
        match reply.command.as_deref() {
            // After the subscription events are handled as they come, never held back.
            Some("add-tenants-v1") => self.tenants_added(reply, false, &mut Vec::new()).await,
            Some("remove-tenants-v1" | "add-topics-v1" | "subscribe-v1") if reply.ok => Ok(()),
            other => {
                tracing::warn!(command = ?other, ok = reply.ok, "unexpected reply from Fortnox's WebSocket API");
                Ok(())
            }
        }
    }

    /// Records the tenant ids Fortnox gave (also on an error reply), and handles refused
    /// tokens: refreshed and sent once more, then left to polling.
    async fn tenants_added(
        &mut self,
        reply: Reply,
        start: bool,
        early: &mut Vec<TopicEvent>,
    ) -> Result<(), String> {
        let by_token: HashMap<String, i64> = self
            .tenants
            .iter()
            .map(|(merchant, t)| (t.token.clone(), *merchant))
            .collect();
        for (echoed, tenant_id) in &reply.tenant_ids {
            let Some(&merchant_id) = by_token.get(bare_token(echoed)) else {
                continue;
            };
            if let Some(tenant) = self.tenants.get_mut(&merchant_id) {
                tenant.tenant_id = Some(*tenant_id);
                tenant.refused = false;
            }
            self.merchants.insert(*tenant_id, merchant_id);
            if self.subscribed {
                self.ctx
                    .store
                    .ws_merchant_live(merchant_id, *tenant_id)
                    .await
                    .map_err(db)?;
            }
        }
        let mut retry = Vec::new();
        for echoed in &reply.invalid_tokens {
            let Some(&merchant_id) = by_token.get(bare_token(echoed)) else {
                continue;
            };
            let Some((stale, refreshed)) = self
                .tenants
                .get(&merchant_id)
                .map(|t| (t.token.clone(), t.refreshed_after_refusal))
            else {
                continue;
            };
            if refreshed {
                if let Some(tenant) = self.tenants.get_mut(&merchant_id) {
                    tenant.refused = true;
                }
                tracing::warn!(merchant_id, "Fortnox refused the merchant's fresh access token for real-time events; it is imported by polling");
                self.ctx
                    .store
                    .ws_merchant_not_live(merchant_id, Some(REFUSED_TWICE))
                    .await
                    .map_err(db)?;
                continue;
            }
            match self
                .ctx
                .fortnox
                .tokens()
                .refresh_after_unauthorized(&merchant_id.to_string(), &stale)
                .await
            {
                Ok(fresh) => {
                    if let Some(tenant) = self.tenants.get_mut(&merchant_id) {
                        tenant.token = fresh.clone();
                        tenant.refreshed_after_refusal = true;
                    }
                    retry.push(fresh);
                }
                Err(error) => self.token_unavailable(merchant_id, &error).await?,
            }
        }
        // A second refusal settles it (`refreshed_after_refusal`): no third try.
        self.add_tenants(&retry, start, early).await
    }

    /// Records one event with what it leads to. A database failure ends the connection
    /// without moving the offset, so the event comes again after the reconnect.
    async fn handle_event(&mut self, event: TopicEvent) -> Result<(), String> {
        let merchant = self.merchants.get(&event.tenant_id).copied();
        let effect = match merchant {
            None => EventEffect::Nothing { merchant_id: None },
            Some(merchant_id) => self.effect_of(merchant_id, &event).await.map_err(db)?,
        };
        let fresh = self
            .ctx
            .store
            .record_ws_event(&event.topic, &event.offset, &effect)
            .await
            .map_err(db)?;
        if let (true, EventEffect::ArticleChanged { merchant_id, .. }) = (fresh, &effect) {
            self.ctx.catalog.forget(*merchant_id).await;
        }
        Ok(())
    }

    async fn effect_of(
        &self,
        merchant_id: i64,
        event: &TopicEvent,
    ) -> Result<EventEffect, StoreError> {
        let nothing = EventEffect::Nothing {
            merchant_id: Some(merchant_id),
        };
        let change = match (&event.event_type, event.topic.as_str()) {
            (EventType::OrderCreated, topics::ORDERS) => OrderChange::Created,
            (EventType::OrderUpdated, topics::ORDERS) => OrderChange::Updated,
            (EventType::OrderCancelled, topics::ORDERS) => OrderChange::Cancelled,
            (
                EventType::ArticleCreated | EventType::ArticleUpdated | EventType::ArticleDeleted,
                topics::ARTICLES,
            ) => {
                return Ok(EventEffect::ArticleChanged {
                    merchant_id,
                    article: event.entity_id.clone(),
                })
            }
            _ => return Ok(nothing),
        };
        let Ok(document) = DocumentNumber::parse(&event.entity_id) else {
            tracing::warn!(merchant_id, entity = %event.entity_id, "order event with an impossible document number ignored");
            return Ok(nothing);
        };
        let held = self
            .ctx
            .store
            .order_by_document(merchant_id, document.as_str())
            .await?
            .map(|order| order.state);
        Ok(if order_event_needs_read(change, held) {
            EventEffect::ReadOrder {
                merchant_id,
                document_number: document.as_str().to_owned(),
            }
        } else {
            nothing
        })
    }
}

fn db(error: StoreError) -> String {
    format!("database error while handling Fortnox events: {error}")
}
