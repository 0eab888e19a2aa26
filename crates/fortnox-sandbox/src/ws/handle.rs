//! The Topics WebSocket's part of [`SandboxHandle`]: its URL, tenant ids,
//! the test switches and what tests read (connections, the event log,
//! command counters).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Stop;
use crate::handle::SandboxHandle;

/// One open WebSocket connection, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsConnectionInfo {
    /// Numbered from 1 in the order connections opened.
    pub id: u64,
    /// Fortnox tenant ids added (and not removed), ascending.
    pub tenant_ids: Vec<i64>,
    /// The same tenants by their sandbox names.
    pub tenants: Vec<String>,
    /// Topics added, by name.
    pub topics: Vec<String>,
    pub subscribed: bool,
    /// RFC 3339, UTC.
    pub connected_since: String,
}

/// What the WebSocket side has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsCounters {
    /// Commands received by name; `<invalid>` counts frames that were not
    /// JSON or named no known command.
    pub commands: BTreeMap<String, u64>,
    /// Connections opened since the start.
    pub connections_opened: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Events logged per topic.
    pub events: BTreeMap<String, u64>,
}

impl WsCounters {
    pub fn command(&self, name: &str) -> u64 {
        self.commands.get(name).copied().unwrap_or(0)
    }
}

impl SandboxHandle {
    /// `ws://127.0.0.1:PORT/topics-v1`: the Topics WebSocket.
    pub fn ws_url(&self) -> String {
        ws_url(&self.shared.base_url)
    }

    /// The tenant's Fortnox tenant id (its `DatabaseNumber`), as the
    /// WebSocket sends it; `None` if no such tenant exists.
    pub fn tenant_id(&self, tenant: &str) -> Option<i64> {
        self.shared
            .lock()
            .tenants
            .get(tenant)
            .map(|t| t.tenant_id())
    }

    /// Drops every WebSocket connection now, without a close frame.
    /// Returns how many there were.
    pub fn ws_drop_connections(&self) -> usize {
        self.shared.lock().ws.stop_all(Stop::Drop)
    }

    /// While muted, no event is emitted for the tenant: none is logged and
    /// none is sent (Fortnox missing an event).
    pub fn ws_mute_tenant(&self, tenant: &str, muted: bool) {
        let mut st = self.shared.lock();
        if muted {
            st.ws.muted.insert(tenant.to_string());
        } else {
            st.ws.muted.remove(tenant);
        }
    }

    /// Every event is sent twice to each connection, with the same offset.
    pub fn ws_duplicate_events(&self, on: bool) {
        self.shared.lock().ws.duplicate = on;
    }

    /// Events of the `orders` topic are held back 300 ms while the other
    /// topics go at once; the order within a topic stays.
    pub fn ws_reorder_topics(&self, on: bool) {
        self.shared.lock().ws.reorder = on;
    }

    /// On: a tenant leaves a connection, silently, when the token that added
    /// it expires (or is revoked). Off (the default): it stays until removed.
    pub fn ws_expire_tenants_with_token(&self, on: bool) {
        self.shared.lock().ws.expire_with_token = on;
    }

    /// The open connections, by id.
    pub fn ws_connections(&self) -> Vec<WsConnectionInfo> {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let expire = st.ws.expire_with_token;
        let now = tokio::time::Instant::now();
        st.ws
            .conns
            .iter_mut()
            .map(|(id, c)| {
                if expire {
                    c.prune_expired(&st.access, now);
                }
                WsConnectionInfo {
                    id: *id,
                    tenant_ids: c.tenants.keys().copied().collect(),
                    tenants: c.tenants.values().map(|e| e.tenant.clone()).collect(),
                    topics: c.topics.keys().map(|t| t.to_string()).collect(),
                    subscribed: c.subscribed,
                    connected_since: c.since.to_rfc3339(),
                }
            })
            .collect()
    }

    /// Every event logged on `topic`, oldest first, as sent.
    pub fn ws_events(&self, topic: &str) -> Vec<Value> {
        let st = self.shared.lock();
        st.events
            .all(topic)
            .iter()
            .filter_map(|e| serde_json::from_str(&e.text).ok())
            .collect()
    }

    pub fn ws_counters(&self) -> WsCounters {
        let st = self.shared.lock();
        WsCounters {
            commands: st.ws.commands.clone(),
            connections_opened: st.ws.opened,
            connections_open: st.ws.connection_count() as u64,
            events: st.events.counts(),
        }
    }
}

/// The WebSocket URL beside an `http://` base.
pub(crate) fn ws_url(base_url: &str) -> String {
    let rest = base_url.strip_prefix("http://").unwrap_or(base_url);
    format!("ws://{rest}/topics-v1")
}
