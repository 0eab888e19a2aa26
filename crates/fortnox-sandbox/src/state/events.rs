//! Change events for the Topics WebSocket.
//!
//! The document rules (`Tenant` methods) call `Tenant::emit` after a change
//! succeeded; that only queues the change. When the state lock is released
//! (`StateGuard`'s drop, see `lib.rs`) the queued changes are numbered, kept
//! in the topic's log and handed to the connections. So every path that
//! changes data (REST, control endpoints, the handle) emits, and a client that
//! gets an event and then reads the document sees the change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{FixedOffset, Offset, Utc};
use tokio::time::Instant;

use super::{State, Tenant};

/// Every topic Fortnox names. The sandbox emits on `orders`, `articles` and
/// `invoices`; the others are accepted and stay silent.
pub const TOPICS: [&str; 19] = [
    "invoices",
    "customers",
    "orders",
    "offers",
    "articles",
    "currencies",
    "termsofdeliveries",
    "waysofdeliveries",
    "termsofpayments",
    "bureau-activities",
    "bureau-assignments",
    "cost-centers",
    "financial-years",
    "messages",
    "projects",
    "suppliers",
    "supplier-invoices",
    "vouchers",
    "warehouse-stockbalances",
];

/// The known topic named `name`, with a `'static` lifetime.
pub fn topic(name: &str) -> Option<&'static str> {
    TOPICS.iter().copied().find(|t| *t == name)
}

/// The REST scope a token needs to receive a topic's events, if any.
pub fn scope_of(topic: &str) -> Option<&'static str> {
    match topic {
        "orders" => Some("order"),
        "articles" => Some("article"),
        "invoices" => Some("invoice"),
        _ => None,
    }
}

/// Offsets are a topic's sequence number (from 1) in base 62, left-padded to
/// this many digits, so that they also sort as strings.
pub const OFFSET_WIDTH: usize = 8;
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn encode_offset(mut seq: u64) -> String {
    let mut out = [b'0'; OFFSET_WIDTH];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(seq % 62) as usize];
        seq /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// The sequence number of an offset string, if it has the sandbox's shape.
pub fn decode_offset(s: &str) -> Option<u64> {
    if s.len() != OFFSET_WIDTH {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = DIGITS.iter().position(|x| *x == b)? as u64;
        acc.checked_mul(62)?.checked_add(d)
    })
}

/// Event timestamps: milliseconds and a Stockholm-like fixed `+01:00`.
fn timestamp() -> String {
    let offset = FixedOffset::east_opt(3600).unwrap_or_else(|| Utc.fix());
    Utc::now()
        .with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

/// A change the document rules made, not yet numbered.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant: String,
    pub tenant_id: i64,
    pub topic: &'static str,
    pub kind: &'static str,
    pub entity_id: String,
}

/// The changes made under the current lock. Every tenant holds a clone of
/// the state's outbox; it is only touched under the state lock.
#[derive(Debug, Default, Clone)]
pub struct Outbox(Arc<Mutex<Vec<Change>>>);

impl Outbox {
    fn push(&self, c: Change) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }

    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One event of a topic's log.
#[derive(Debug, Clone)]
pub struct Event {
    pub topic: &'static str,
    pub seq: u64,
    pub tenant: String,
    /// The event as sent, serialized once for every connection:
    /// `{"topic","offset","type","tenantId","entityId","timestamp"}`.
    pub text: Arc<str>,
}

/// Every event of every topic since the sandbox started (no retention).
#[derive(Debug, Default)]
pub struct EventLog {
    topics: BTreeMap<&'static str, Vec<Event>>,
}

impl EventLog {
    fn append(&mut self, c: Change) -> Event {
        let log = self.topics.entry(c.topic).or_default();
        let seq = log.len() as u64 + 1;
        let value = serde_json::json!({
            "topic": c.topic,
            "offset": encode_offset(seq),
            "type": c.kind,
            "tenantId": c.tenant_id,
            "entityId": c.entity_id,
            "timestamp": timestamp(),
        });
        let event = Event {
            topic: c.topic,
            seq,
            tenant: c.tenant,
            text: Arc::from(value.to_string()),
        };
        log.push(event.clone());
        event
    }

    /// The last sequence number issued on `topic` (0: none yet).
    pub fn last_seq(&self, topic: &str) -> u64 {
        self.topics.get(topic).map_or(0, |l| l.len() as u64)
    }

    /// The events of `topic` from sequence number `seq` on, inclusive.
    pub fn since(&self, topic: &str, seq: u64) -> &[Event] {
        let log = self.topics.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let start = (seq.max(1) - 1) as usize;
        log.get(start..).unwrap_or(&[])
    }

    pub fn all(&self, topic: &str) -> &[Event] {
        self.since(topic, 1)
    }

    /// Events logged per topic.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.topics
            .iter()
            .map(|(t, l)| (t.to_string(), l.len() as u64))
            .collect()
    }
}

impl Tenant {
    /// Queues an event about this tenant; call it only after the change took
    /// effect. It is logged and sent when the state lock is released.
    pub(crate) fn emit(&self, topic: &'static str, kind: &'static str, entity_id: impl ToString) {
        self.outbox.push(Change {
            tenant: self.id.clone(),
            tenant_id: self.tenant_id(),
            topic,
            kind,
            entity_id: entity_id.to_string(),
        });
    }

    /// Fortnox's tenant id: the company's `DatabaseNumber`.
    pub fn tenant_id(&self) -> i64 {
        self.company.database_number.unwrap_or_default()
    }
}

impl State {
    /// Logs the queued changes and hands them to the connections. Changes of
    /// a muted tenant are dropped, as if Fortnox never emitted them.
    pub(crate) fn flush_events(&mut self) {
        let changes = self.outbox.take();
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        for c in changes {
            if self.ws.muted.contains(&c.tenant) {
                continue;
            }
            let event = self.events.append(c);
            self.ws.deliver_live(&event, &self.access, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_fixed_width_sortable_and_round_trip() {
        let samples = [1u64, 2, 61, 62, 63, 3843, 3844, 1_000_000, 62u64.pow(8) - 1];
        let encoded: Vec<String> = samples.iter().map(|s| encode_offset(*s)).collect();
        for (s, e) in samples.iter().zip(&encoded) {
            assert_eq!(e.len(), OFFSET_WIDTH);
            assert_eq!(decode_offset(e), Some(*s));
        }
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
        assert_eq!(encode_offset(1), "00000001");
        for bad in ["", "0000001", "000000001", "0000000-", "xDy7J", "0000000é"] {
            assert_eq!(decode_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_have_milliseconds_and_an_offset() {
        let t = timestamp();
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
        assert!(t.ends_with("+01:00"), "{t}");
        assert_eq!(t.len(), "2017-12-28T14:59:16.500+01:00".len(), "{t}");
    }
}
