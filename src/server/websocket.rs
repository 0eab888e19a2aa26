//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`), with the limits a public
//! endpoint needs: a connection must authenticate with `connection_init` within
//! `INIT_TIMEOUT` (else it is closed with 4408, as the protocol says), and one token may
//! hold at most `MAX_SOCKETS_PER_TOKEN` connections at a time.
//!
//! async-graphql's `GraphQLWebSocket` has neither, so its output goes through a channel
//! that this module also writes to: that lets a timer close the socket with a code.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use super::App;
use crate::graphql::ApiError;

/// How long a new connection may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Open subscription connections per token (role and subject).
pub const MAX_SOCKETS_PER_TOKEN: usize = 20;
/// The read buffer each connection allocates up front. tungstenite's default, 128 KiB,
/// was most of what an open subscription cost (about 138 KiB each); what clients send
/// here (init, subscribe, ping) is a few hundred bytes, and a larger message is still
/// read, in more steps.
pub const READ_BUFFER: usize = 4 * 1024;
/// Outgoing messages are gathered up to this before a write (tungstenite's default is
/// 128 KiB, kept per connection once reached).
pub const WRITE_BUFFER: usize = 16 * 1024;
/// The largest message or frame a client may send (tungstenite's default is 64 MiB):
/// a subscribe with its query stays far below; the size limits of a query apply after.
pub const MAX_CLIENT_MESSAGE: usize = 256 * 1024;

/// How many connections each token holds now.
#[derive(Clone, Default)]
pub struct SocketCounts(Arc<Mutex<HashMap<String, usize>>>);

/// One counted connection; dropping it gives the place back.
struct SocketSlot {
    counts: SocketCounts,
    key: String,
}

impl SocketCounts {
    fn take(&self, key: String) -> Option<SocketSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.clone()).or_default();
        if *count >= MAX_SOCKETS_PER_TOKEN {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

pub async fn serve(app: App, socket: WebSocket, protocol: GraphQLProtocol) {
    let (to_client, from_client) = socket.split();
    let (outgoing, outgoing_rx) = futures::channel::mpsc::channel::<Message>(32);
    let initialised = Arc::new(AtomicBool::new(false));

    // Without `connection_init` in time: close with 4408, and stop reading.
    let mut closer = outgoing.clone();
    let waiting = initialised.clone();
    let init_deadline = async move {
        tokio::time::sleep(INIT_TIMEOUT).await;
        if waiting.load(Ordering::SeqCst) {
            return std::future::pending().await;
        }
        let close = CloseFrame {
            code: 4408,
            reason: "Connection initialisation timeout".into(),
        };
        let _ = closer.send(Message::Close(Some(close))).await;
    };
    let from_client = from_client.take_until(init_deadline);

    let jwt = app.jwt.clone();
    let counts = app.websockets.clone();
    let graphql = GraphQLWebSocket::new_with_pair(outgoing, from_client, app.schema.clone(), protocol)
        .on_connection_init(move |payload| async move {
            initialised.store(true, Ordering::SeqCst);
            let header = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let principal = jwt.verify_header(header.as_deref()).map_err(ApiError::from)?;
            let slot = counts.take(principal.actor()).ok_or_else(|| {
                ApiError::conflict(format!(
                    "this token already holds {MAX_SOCKETS_PER_TOKEN} subscription connections: close one, or run several subscriptions on one connection"
                ))
            })?;
            let mut data = Data::default();
            data.insert(principal);
            // Kept in the connection's data, so the place is given back when it closes.
            data.insert(Arc::new(SlotHolder(Mutex::new(Some(slot)))));
            Ok(data)
        })
        .serve();
    let forward = outgoing_rx.map(Ok).forward(to_client);
    let _ = tokio::join!(graphql, forward);
}

/// `Data` needs `Send + Sync`; the slot lives in it until the connection's data is dropped.
struct SlotHolder(#[allow(dead_code)] Mutex<Option<SocketSlot>>);
