//! A `graphql-transport-ws` client, as a partner tool or the frontend would use it.
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::TestApp;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Subscriber {
    pub socket: Socket,
}

/// A WebSocket to the app's GraphQL endpoint, not yet initialised.
pub async fn open_socket(app: &TestApp) -> Socket {
    open_socket_at(app.addr).await
}

pub async fn open_socket_at(addr: SocketAddr) -> Socket {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("a WebSocket request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("a header value"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket upgrade")
        .0
}

impl Subscriber {
    pub async fn connect(app: &TestApp, token: &str) -> Result<Subscriber, String> {
        Subscriber::connect_at(app.addr, token).await
    }

    pub async fn connect_at(addr: SocketAddr, token: &str) -> Result<Subscriber, String> {
        let mut socket = open_socket_at(addr).await;
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
        let mut subscriber = Subscriber { socket };
        match subscriber.next_json().await {
            Some(msg) if msg["type"] == "connection_ack" => Ok(subscriber),
            other => Err(format!("not acknowledged: {other:?}")),
        }
    }

    pub async fn subscribe(&mut self, query: &str, variables: Value) {
        let msg = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send subscribe");
    }

    /// The next message, or None after 10 s of silence or when the socket closes.
    pub async fn next_json(&mut self) -> Option<Value> {
        self.next_json_within(Duration::from_secs(10)).await
    }

    pub async fn next_json_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }
}
