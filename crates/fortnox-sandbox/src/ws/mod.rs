//! Fortnox's Topics WebSocket (`GET /topics-v1`): the connections, what each
//! one has added (tenants, topics, subscribed), and the delivery of events to
//! them with the test switches (mute, duplicate, reorder, expiry).
//!
//! All of it lives in the sandbox state, under the one state lock: commands
//! and deliveries never interleave, so a replay and the live events that
//! follow it neither overlap nor leave a gap.

mod commands;
mod control;
mod handle;
mod socket;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::state::events::{scope_of, Event, EventLog};
use super::state::AccessToken;

pub(crate) use control::routes as control_routes;
pub use handle::{WsConnectionInfo, WsCounters};
pub(crate) use socket::upgrade;

/// How long `orders` events are held back while the reorder switch is on.
pub const REORDER_DELAY: Duration = Duration::from_millis(300);

/// What a connection's task is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Run,
    /// Drop the socket without a close handshake (a network drop).
    Drop,
    /// Close with 1001 (the sandbox is stopping).
    Shutdown,
}

/// A frame for a connection's task to send.
#[derive(Debug)]
pub(crate) enum Out {
    Reply(String),
    Event {
        topic: &'static str,
        text: Arc<str>,
        /// Held back `REORDER_DELAY` (the reorder switch).
        hold: bool,
    },
}

/// A tenant added to a connection, with the token that added it.
#[derive(Debug, Clone)]
struct TenantEntry {
    tenant: String,
    /// The token without any `Bearer ` prefix.
    token: String,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct Conn {
    since: DateTime<Utc>,
    /// By Fortnox tenant id.
    tenants: BTreeMap<i64, TenantEntry>,
    /// Topics added; before subscribe-v1, the sequence number to replay from.
    topics: BTreeMap<&'static str, Option<u64>>,
    subscribed: bool,
    tx: mpsc::UnboundedSender<Out>,
    stop: watch::Sender<Stop>,
}

impl Conn {
    /// With the expiry switch on: forgets tenants whose token has expired
    /// (or was revoked), without telling the client.
    fn prune_expired(&mut self, access: &HashMap<String, AccessToken>, now: Instant) {
        self.tenants.retain(|_, e| {
            access
                .get(&e.token)
                .is_some_and(|a| a.expires_at > now && a.tenant == e.tenant)
        });
    }

    /// Whether the event's tenant is on this connection with a token that has
    /// the topic's scope (topics without a REST scope need none).
    fn receives(&self, ev: &Event) -> bool {
        self.tenants.values().any(|e| {
            e.tenant == ev.tenant
                && scope_of(ev.topic).is_none_or(|need| e.scopes.iter().any(|s| s == need))
        })
    }
}

/// The connections and the switches (see the crate docs).
#[derive(Debug, Default)]
pub struct WsState {
    conns: BTreeMap<u64, Conn>,
    next_id: u64,
    /// Tenants for which no event is emitted at all.
    pub(crate) muted: BTreeSet<String>,
    duplicate: bool,
    reorder: bool,
    expire_with_token: bool,
    shutting_down: bool,
    /// Commands received, by name (`<invalid>`: not JSON, no or unknown command).
    commands: BTreeMap<String, u64>,
    opened: u64,
}

/// The test switches that shape a delivery.
#[derive(Clone, Copy)]
struct Shape {
    duplicate: bool,
    reorder: bool,
}

fn send(conn: &Conn, ev: &Event, shape: Shape) {
    let copies = if shape.duplicate { 2 } else { 1 };
    for _ in 0..copies {
        // A closed channel: the task is ending and unregisters itself.
        let _ = conn.tx.send(Out::Event {
            topic: ev.topic,
            text: ev.text.clone(),
            hold: shape.reorder && ev.topic == "orders",
        });
    }
}

impl WsState {
    fn shape(&self) -> Shape {
        Shape {
            duplicate: self.duplicate,
            reorder: self.reorder,
        }
    }

    /// A new connection; told to shut down at once if the sandbox is stopping.
    fn register(&mut self, tx: mpsc::UnboundedSender<Out>, stop: watch::Sender<Stop>) -> u64 {
        self.next_id += 1;
        self.opened += 1;
        if self.shutting_down {
            stop.send_replace(Stop::Shutdown);
        }
        self.conns.insert(
            self.next_id,
            Conn {
                since: Utc::now(),
                tenants: BTreeMap::new(),
                topics: BTreeMap::new(),
                subscribed: false,
                tx,
                stop,
            },
        );
        self.next_id
    }

    fn unregister(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    /// Tells every connection's task to stop; returns how many there were.
    pub(crate) fn stop_all(&mut self, how: Stop) -> usize {
        if how == Stop::Shutdown {
            self.shutting_down = true;
        }
        for c in self.conns.values() {
            c.stop.send_replace(how);
        }
        self.conns.len()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Sends a new event to every subscribed connection that has its topic
    /// and its tenant.
    pub(crate) fn deliver_live(
        &mut self,
        ev: &Event,
        access: &HashMap<String, AccessToken>,
        now: Instant,
    ) {
        let shape = self.shape();
        let expire = self.expire_with_token;
        for conn in self.conns.values_mut() {
            if !conn.subscribed || !conn.topics.contains_key(ev.topic) {
                continue;
            }
            if expire {
                conn.prune_expired(access, now);
            }
            if conn.receives(ev) {
                send(conn, ev, shape);
            }
        }
    }

    /// Sends connection `id` the events of `topic` from `seq` on (inclusive)
    /// of the tenants it has now.
    fn replay(
        &mut self,
        id: u64,
        events: &EventLog,
        topic: &'static str,
        seq: u64,
        access: &HashMap<String, AccessToken>,
    ) {
        let shape = self.shape();
        let expire = self.expire_with_token;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if expire {
            conn.prune_expired(access, Instant::now());
        }
        for ev in events.since(topic, seq) {
            if conn.receives(ev) {
                send(conn, ev, shape);
            }
        }
    }
}
