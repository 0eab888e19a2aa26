//! A sandbox per test and a small WebSocket client that reads JSON frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use fortnox_sandbox::{Sandbox, SandboxConfig, SandboxHandle, DEFAULT_CLIENT_SECRET};

/// How long a frame that must come may take.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long we listen to be sure that nothing comes.
pub const QUIET: Duration = Duration::from_millis(400);

pub async fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig::default()).await
}

pub async fn sandbox_with(cfg: SandboxConfig) -> Sandbox {
    Sandbox::start(SandboxConfig {
        rate_limit: None,
        ..cfg
    })
    .await
    .expect("sandbox starts")
}

/// A fresh access token for `tenant`.
pub fn token(sb: &SandboxHandle, tenant: &str) -> String {
    sb.issue_tokens(tenant).access_token
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server ended a connection with.
#[derive(Debug, PartialEq)]
pub enum End {
    /// A close frame with this code.
    Closed(u16),
    /// No close frame: the connection just went away.
    Dropped,
}

pub async fn connect(sb: &SandboxHandle) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(sb.ws_url())
        .await
        .expect("connects");
    Client { ws }
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("sends");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("sends");
    }

    /// The next frame of any kind, or `None` once the stream has ended.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Result<Message, String>> {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => panic!("nothing came within {wait:?}"),
            Ok(None) => None,
            Ok(Some(r)) => Some(r.map_err(|e| e.to_string())),
        }
    }

    /// The next text frame as JSON (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_frame(WAIT).await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).expect("frames are JSON")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a command and returns the next frame, which must be its response.
    pub async fn command(&mut self, v: Value) -> Value {
        let name = v["command"].clone();
        self.send(v).await;
        let reply = self.recv().await;
        assert_eq!(reply["response"], name, "{reply}");
        reply
    }

    /// The next frame, which must be an event.
    pub async fn event(&mut self) -> Value {
        let v = self.recv().await;
        assert!(
            v.get("topic").is_some() && v.get("tenantId").is_some(),
            "not an event: {v}"
        );
        v
    }

    /// Asserts that no text frame comes for a while.
    pub async fn quiet(&mut self) {
        match tokio::time::timeout(QUIET, self.ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Text(t)))) => panic!("expected nothing, got {t}"),
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }

    /// Reads until the server ends the connection; text frames before are
    /// not expected.
    pub async fn end(&mut self, wait: Duration) -> End {
        loop {
            match self.next_frame(wait).await {
                Some(Ok(Message::Close(frame))) => {
                    return End::Closed(frame.map_or(1005, |f| u16::from(f.code)))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected the end, got {other:?}"),
                Some(Err(_)) | None => return End::Dropped,
            }
        }
    }

    /// add-tenants-v1 with the sandbox's secret.
    pub async fn add_tenants<S: AsRef<str>>(&mut self, tokens: &[S]) -> Value {
        let tokens: Vec<&str> = tokens.iter().map(AsRef::as_ref).collect();
        self.command(json!({
            "command": "add-tenants-v1",
            "clientSecret": DEFAULT_CLIENT_SECRET,
            "includeChildTenants": false,
            "accessTokens": tokens,
        }))
        .await
    }

    pub async fn add_topics(&mut self, topics: Value) -> Value {
        self.command(json!({ "command": "add-topics-v1", "topics": topics }))
            .await
    }

    pub async fn subscribe(&mut self) -> Value {
        self.command(json!({ "command": "subscribe-v1" })).await
    }

    /// Tokens added, `topics` added without offsets, subscribed; all ok.
    pub async fn setup<S: AsRef<str>>(&mut self, tokens: &[S], topics: &[&str]) {
        let r = self.add_tenants(tokens).await;
        assert_eq!(r["result"], "ok", "{r}");
        let list: Vec<Value> = topics.iter().map(|t| json!({ "topic": t })).collect();
        let r = self.add_topics(Value::Array(list)).await;
        assert_eq!(r["result"], "ok", "{r}");
        let r = self.subscribe().await;
        assert_eq!(r["result"], "ok", "{r}");
    }
}

/// A WebSocket client already subscribed to `topics` for `tenants`.
pub async fn subscribed(sb: &SandboxHandle, tenants: &[&str], topics: &[&str]) -> Client {
    let tokens: Vec<String> = tenants.iter().map(|t| token(sb, t)).collect();
    let mut c = connect(sb).await;
    c.setup(&tokens, topics).await;
    c
}

/// `(topic, type, entityId)` of an event.
pub fn what(ev: &Value) -> (String, String, String) {
    let s = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
    (s("topic"), s("type"), s("entityId"))
}

pub fn ev(topic: &str, kind: &str, entity: &str) -> (String, String, String) {
    (topic.into(), kind.into(), entity.into())
}

/// A REST client for `/3` with a fresh token of `tenant`.
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    pub fn new(sb: &SandboxHandle, tenant: &str) -> Rest {
        Rest {
            http: reqwest::Client::new(),
            base: sb.api_base(),
            token: token(sb, tenant),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("REST call");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
