//! Fortnox's real-time WebSocket API (`wss://ws.fortnox.se/topics-v1`): one connection
//! carries every connected merchant as a tenant and pushes a small event for every change
//! of the subscribed topics. docs/realtime.md describes the protocol as we use it.
//!
//! This module is the wire: commands, replies and events as typed values, and a connection
//! split into a sender and a receiver so that one loop can read while it writes. What to do
//! with the events (de-duplication, offsets, imports) is the service's.
//!
//! Frames are parsed at this edge. A frame we cannot read becomes
//! [`Incoming::Unrecognized`] with the reason, never a panic: the connection goes on.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const DEFAULT_URL: &str = "wss://ws.fortnox.se/topics-v1";
pub const ORDERS: &str = "orders";
pub const ARTICLES: &str = "articles";
/// Tokens per add-tenants-v1 command: Fortnox documents no limit; this keeps each command
/// (and its reply) small.
pub const TOKENS_PER_COMMAND: usize = 50;

/// What failed on the connection. Every kind means: close it and connect again later.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TopicsError {
    #[error("cannot connect to Fortnox's WebSocket API: {0}")]
    Connect(String),
    #[error("Fortnox's WebSocket connection failed: {0}")]
    Transport(String),
    #[error("Fortnox's WebSocket connection was closed{}", .0.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("Fortnox did not answer {0} within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("Fortnox refused {command}: {detail}")]
    Refused {
        command: &'static str,
        detail: String,
    },
}

/// The start of one topic: from `offset` (inclusive) when given, otherwise from the next
/// event on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicStart {
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

/// The commands of the API. Debug shows only the command's name: add-tenants-v1 carries
/// the client secret and access tokens.
#[derive(Clone, Serialize)]
#[serde(tag = "command")]
pub enum Command {
    #[serde(rename = "add-tenants-v1", rename_all = "camelCase")]
    AddTenants {
        client_secret: String,
        /// `Bearer <access token>` each.
        access_tokens: Vec<String>,
        include_child_tenants: bool,
    },
    #[serde(rename = "remove-tenants-v1")]
    RemoveTenants { tenants: Vec<i64> },
    #[serde(rename = "add-topics-v1")]
    AddTopics { topics: Vec<TopicStart> },
    #[serde(rename = "subscribe-v1")]
    Subscribe,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::AddTenants { .. } => "add-tenants-v1",
            Command::RemoveTenants { .. } => "remove-tenants-v1",
            Command::AddTopics { .. } => "add-topics-v1",
            Command::Subscribe => "subscribe-v1",
        }
    }

    /// add-tenants-v1 for these access tokens (given bare; `Bearer ` is added).
    pub fn add_tenants(client_secret: &str, access_tokens: &[String]) -> Command {
        Command::AddTenants {
            client_secret: client_secret.to_owned(),
            access_tokens: access_tokens.iter().map(|t| bearer(t)).collect(),
            include_child_tenants: false,
        }
    }
}

/// The token as it goes into add-tenants-v1, and as the reply's `tenantIds` keys it.
pub fn bearer(access_token: &str) -> String {
    format!("Bearer {access_token}")
}

/// The access token inside a token string the server echoes (with or without `Bearer `).
pub fn bare_token(echoed: &str) -> &str {
    echoed.strip_prefix("Bearer ").unwrap_or(echoed).trim()
}

/// Fortnox's answer to one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The command answered (`None` when Fortnox could not tell, e.g. for a frame it could
    /// not read).
    pub command: Option<String>,
    pub ok: bool,
    /// add-tenants-v1: token (as sent) → tenant id, for the tokens that were added (also
    /// when `ok` is false). list-tenants-v1's plain list lands in `listed_tenants`.
    pub tenant_ids: HashMap<String, i64>,
    pub listed_tenants: Vec<i64>,
    pub invalid_tokens: Vec<String>,
    pub invalid_topics: Vec<String>,
}

/// What an event says happened. Unknown types are kept by name and ignored by callers:
/// Fortnox versions its types, and a new one must not break the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    OrderCreated,
    OrderUpdated,
    OrderCancelled,
    ArticleCreated,
    ArticleUpdated,
    ArticleDeleted,
    Other(String),
}

impl EventType {
    pub fn parse(text: &str) -> EventType {
        match text {
            "order-created-v1" => EventType::OrderCreated,
            "order-updated-v1" => EventType::OrderUpdated,
            "order-cancelled-v1" => EventType::OrderCancelled,
            "article-created-v1" => EventType::ArticleCreated,
            "article-updated-v1" => EventType::ArticleUpdated,
            "article-deleted-v1" => EventType::ArticleDeleted,
            other => EventType::Other(other.to_owned()),
        }
    }
}

/// One pushed event: what changed, not the new data (read that over REST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    pub topic: String,
    /// Opaque; unique within the topic. Stored and sent back to resume, never compared.
    pub offset: String,
    pub event_type: EventType,
    pub tenant_id: i64,
    /// The document number of an order, the article number of an article.
    pub entity_id: String,
    pub timestamp: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Reply(Reply),
    Event(TopicEvent),
    /// A frame that is neither; the reason, for the log.
    Unrecognized(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame {
    response: Option<serde_json::Value>,
    result: Option<String>,
    #[serde(default)]
    tenant_ids: Option<serde_json::Value>,
    #[serde(default)]
    invalid_tokens: Vec<serde_json::Value>,
    #[serde(default)]
    invalid_topics: Vec<serde_json::Value>,
    topic: Option<String>,
    offset: Option<serde_json::Value>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    tenant_id: Option<serde_json::Value>,
    entity_id: Option<serde_json::Value>,
    timestamp: Option<String>,
}

/// A JSON string or number as text (ids arrive as either, depending on who wrote them).
fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads one text frame: a message with `response` is a reply, one with `topic` and
/// `tenantId` an event.
pub fn parse_incoming(text: &str) -> Incoming {
    let raw: RawFrame = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Incoming::Unrecognized(format!("not a JSON object: {e}")),
    };
    if raw.response.is_some() || raw.result.is_some() {
        let mut reply = Reply {
            command: raw.response.as_ref().and_then(text_of),
            ok: raw.result.as_deref() == Some("ok"),
            invalid_tokens: raw.invalid_tokens.iter().filter_map(text_of).collect(),
            invalid_topics: raw.invalid_topics.iter().filter_map(text_of).collect(),
            ..Reply::default()
        };
        match raw.tenant_ids {
            Some(serde_json::Value::Object(map)) => {
                reply.tenant_ids = map
                    .iter()
                    .filter_map(|(token, id)| Some((token.clone(), id_of(id)?)))
                    .collect();
            }
            Some(serde_json::Value::Array(ids)) => {
                reply.listed_tenants = ids.iter().filter_map(id_of).collect();
            }
            _ => {}
        }
        return Incoming::Reply(reply);
    }
    let (Some(topic), Some(offset), Some(tenant), Some(entity), Some(event_type)) = (
        raw.topic,
        raw.offset.as_ref().and_then(text_of),
        raw.tenant_id.as_ref().and_then(id_of),
        raw.entity_id.as_ref().and_then(text_of),
        raw.event_type,
    ) else {
        return Incoming::Unrecognized(
            "neither a reply (no `response`) nor an event (needs topic, offset, type, tenantId and entityId)".into(),
        );
    };
    Incoming::Event(TopicEvent {
        topic,
        offset,
        event_type: EventType::parse(&event_type),
        tenant_id: tenant,
        entity_id: entity,
        timestamp: raw
            .timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
    })
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads are small: events and replies are a few hundred bytes; a reply naming 50 tenants a
/// few KiB. Anything near this cap is not Fortnox.
const MAX_FRAME: usize = 1 << 20;

/// How long one frame may take to go out.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the connection; `timeout` bounds the TCP, TLS and WebSocket handshakes together.
pub async fn connect(url: &str, timeout: Duration) -> Result<(Sender, Receiver), TopicsError> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let (socket, _) = tokio::time::timeout(
        timeout,
        tokio_tungstenite::connect_async_with_config(url, Some(config), false),
    )
    .await
    .map_err(|_| TopicsError::Timeout("the connection", timeout))?
    .map_err(|e| TopicsError::Connect(e.to_string()))?;
    let (sink, stream) = socket.split();
    Ok((Sender { sink }, Receiver { stream }))
}

/// The writing half.
pub struct Sender {
    sink: SplitSink<Socket, Message>,
}

impl Sender {
    pub async fn send(&mut self, command: &Command) -> Result<(), TopicsError> {
        let text = serde_json::to_string(command)
            .map_err(|e| TopicsError::Transport(format!("cannot encode a command: {e}")))?;
        self.write(Message::text(text)).await
    }

    /// A WebSocket ping; the server's pong arrives as [`Frame::Alive`].
    pub async fn ping(&mut self) -> Result<(), TopicsError> {
        self.write(Message::Ping(Vec::new().into())).await
    }

    /// Closes politely; errors are irrelevant since the connection is being dropped.
    pub async fn close(&mut self) {
        let _ = self.write(Message::Close(None)).await;
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.sink.close()).await;
    }

    /// A peer that stops reading must not hold the writer forever.
    async fn write(&mut self, message: Message) -> Result<(), TopicsError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(message)).await {
            Ok(sent) => sent.map_err(|e| TopicsError::Transport(e.to_string())),
            Err(_) => Err(TopicsError::Timeout("a write", WRITE_TIMEOUT)),
        }
    }
}

/// What the reading half hands out.
#[derive(Debug)]
pub enum Frame {
    Message(Incoming),
    /// A pong, or any control frame: proof the server is alive.
    Alive,
}

/// The reading half.
pub struct Receiver {
    stream: SplitStream<Socket>,
}

impl Receiver {
    /// The next frame; `Err(Closed)` when the server closed the connection. Cancel-safe, so
    /// it can sit in a `select!` beside timers.
    pub async fn next(&mut self) -> Result<Frame, TopicsError> {
        match self.stream.next().await {
            None => Err(TopicsError::Closed(None)),
            Some(Err(e)) => Err(TopicsError::Transport(e.to_string())),
            Some(Ok(Message::Text(text))) => Ok(Frame::Message(parse_incoming(text.as_str()))),
            Some(Ok(Message::Binary(_))) => Ok(Frame::Message(Incoming::Unrecognized(
                "a binary frame".into(),
            ))),
            Some(Ok(Message::Close(frame))) => {
                Err(TopicsError::Closed(frame.map(|f| {
                    format!("code {}, {}", u16::from(f.code), f.reason)
                })))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(Frame::Alive),
        }
    }

    /// Waits for the reply to `command`, at most `timeout`. Used before subscribe-v1, when
    /// no events flow yet; an event arriving anyway is returned to the caller's `early`.
    pub async fn reply_to(
        &mut self,
        command: &'static str,
        timeout: Duration,
        early: &mut Vec<TopicEvent>,
    ) -> Result<Reply, TopicsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next())
                .await
                .map_err(|_| TopicsError::Timeout(command, timeout))??;
            match frame {
                Frame::Message(Incoming::Reply(reply)) => return Ok(reply),
                Frame::Message(Incoming::Event(event)) => early.push(event),
                Frame::Message(Incoming::Unrecognized(reason)) => {
                    tracing::warn!(command, %reason, "unreadable frame from Fortnox's WebSocket API ignored");
                }
                Frame::Alive => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_have_the_documented_shape() {
        let add = serde_json::to_value(Command::add_tenants("s", &["a".into()])).unwrap();
        assert_eq!(
            add,
            serde_json::json!({"command": "add-tenants-v1", "clientSecret": "s",
                "accessTokens": ["Bearer a"], "includeChildTenants": false})
        );
        let topics = serde_json::to_value(Command::AddTopics {
            topics: vec![
                TopicStart {
                    topic: ORDERS.into(),
                    offset: Some("0000b3Kq".into()),
                },
                TopicStart {
                    topic: ARTICLES.into(),
                    offset: None,
                },
            ],
        })
        .unwrap();
        assert_eq!(
            topics,
            serde_json::json!({"command": "add-topics-v1", "topics": [
                {"topic": "orders", "offset": "0000b3Kq"}, {"topic": "articles"}]})
        );
        assert_eq!(
            serde_json::to_value(Command::Subscribe).unwrap(),
            serde_json::json!({"command": "subscribe-v1"})
        );
        assert_eq!(
            serde_json::to_value(Command::RemoveTenants { tenants: vec![7] }).unwrap(),
            serde_json::json!({"command": "remove-tenants-v1", "tenants": [7]})
        );
    }

    #[test]
    fn replies_are_read_also_when_they_report_an_error() {
        let reply = parse_incoming(
            r#"{"response":"add-tenants-v1","result":"error","invalidTokens":["Bearer B"],"tenantIds":{"Bearer A":1234567}}"#,
        );
        let Incoming::Reply(reply) = reply else {
            panic!("{reply:?}")
        };
        assert!(!reply.ok);
        assert_eq!(reply.command.as_deref(), Some("add-tenants-v1"));
        assert_eq!(reply.tenant_ids.get("Bearer A"), Some(&1234567));
        assert_eq!(reply.invalid_tokens, vec!["Bearer B".to_string()]);
        let Incoming::Reply(listed) =
            parse_incoming(r#"{"response":"list-tenants-v1","result":"ok","tenantIds":[34231]}"#)
        else {
            panic!("list")
        };
        assert_eq!(listed.listed_tenants, vec![34231]);
        let Incoming::Reply(bad) = parse_incoming(r#"{"response":null,"result":"error"}"#) else {
            panic!("bad")
        };
        assert_eq!((bad.command, bad.ok), (None, false));
    }

    #[test]
    fn events_are_typed_and_unknown_ones_kept_by_name() {
        let event = parse_incoming(
            r#"{"topic":"orders","offset":"0000b3Kr","type":"order-created-v1","tenantId":1234567,"entityId":"42","timestamp":"2025-03-10T14:59:16.500+01:00","extra":1}"#,
        );
        let Incoming::Event(event) = event else {
            panic!("{event:?}")
        };
        assert_eq!(event.event_type, EventType::OrderCreated);
        assert_eq!(
            (
                event.tenant_id,
                event.entity_id.as_str(),
                event.offset.as_str()
            ),
            (1234567, "42", "0000b3Kr")
        );
        assert!(event.timestamp.is_some());
        let Incoming::Event(other) = parse_incoming(
            r#"{"topic":"invoices","offset":"1","type":"invoice-bookkeep-v2","tenantId":"5","entityId":7}"#,
        ) else {
            panic!("other")
        };
        assert_eq!(
            other.event_type,
            EventType::Other("invoice-bookkeep-v2".into())
        );
        assert_eq!((other.tenant_id, other.entity_id.as_str()), (5, "7"));
    }

    #[test]
    fn unreadable_frames_are_reported_not_fatal() {
        assert!(matches!(
            parse_incoming("not json"),
            Incoming::Unrecognized(_)
        ));
        assert!(matches!(
            parse_incoming(r#"{"topic":"orders"}"#),
            Incoming::Unrecognized(_)
        ));
        assert!(matches!(parse_incoming("[1,2]"), Incoming::Unrecognized(_)));
    }

    #[test]
    fn echoed_tokens_are_matched_with_or_without_the_prefix() {
        assert_eq!(bare_token("Bearer abc"), "abc");
        assert_eq!(bare_token("abc"), "abc");
        assert_eq!(bearer("abc"), "Bearer abc");
    }
}
