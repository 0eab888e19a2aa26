//! One WebSocket connection: reads commands, writes responses and events,
//! holds `orders` events back under the reorder switch, closes when idle,
//! on binary frames (1003) and on shutdown (1001), and drops on request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as AxState;
use axum::response::Response;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::{commands, Out, Stop, REORDER_DELAY};
use crate::Shared;

/// How long a close waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// `GET /topics-v1`: any headers, no subprotocol, no authentication.
pub(crate) async fn upgrade(AxState(sh): AxState<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| serve(sh, socket))
}

/// Removes the connection from the state however its task ends.
struct Registration {
    sh: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sh.lock().ws.unregister(self.id);
    }
}

/// An event held back by the reorder switch.
struct Held {
    topic: &'static str,
    due: Instant,
    text: Arc<str>,
}

async fn serve(sh: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, mut stop_rx) = watch::channel(Stop::Run);
    let id = sh.lock().ws.register(tx, stop_tx);
    let _registration = Registration { sh: sh.clone(), id };
    let idle = sh.cfg.ws_idle_timeout;
    let mut deadline = Instant::now() + idle;
    let mut held: VecDeque<Held> = VecDeque::new();
    loop {
        let stop = *stop_rx.borrow_and_update();
        match stop {
            Stop::Run => {}
            Stop::Drop => return,
            Stop::Shutdown => {
                return close(&mut socket, 1001, "the sandbox is shutting down").await;
            }
        }
        let next_due = held.iter().map(|h| h.due).min();
        tokio::select! {
            biased;
            changed = stop_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep_until(deadline) => {
                return close(&mut socket, 1000, "idle timeout").await;
            }
            msg = socket.recv() => {
                let text = match msg {
                    // Gone, or a protocol error (tungstenite has answered it).
                    None | Some(Err(_)) => return,
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        return close(&mut socket, 1003, "binary frames are not supported").await;
                    }
                    // Pings are answered by the WebSocket layer; a close is
                    // answered too, and the stream then ends.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {
                        deadline = Instant::now() + idle;
                        continue;
                    }
                };
                deadline = Instant::now() + idle;
                {
                    let mut st = sh.lock();
                    commands::handle(&mut st, &sh.cfg.client_secret, id, text.as_str());
                }
            }
            Some(out) = rx.recv() => {
                let text = match out {
                    Out::Reply(text) => Arc::from(text),
                    Out::Event { topic, text, hold } => {
                        let now = Instant::now();
                        let behind = held.iter().rev().find(|h| h.topic == topic).map(|h| h.due);
                        if hold || behind.is_some() {
                            // Within a topic the order stays: never before an earlier one.
                            let due = if hold { now + REORDER_DELAY } else { now };
                            let due = behind.map_or(due, |b| due.max(b));
                            held.push_back(Held { topic, due, text });
                            continue;
                        }
                        text
                    }
                };
                if !send(&mut socket, &text).await {
                    return;
                }
                deadline = Instant::now() + idle;
            }
            _ = sleep_until(next_due.unwrap_or(deadline)), if next_due.is_some() => {
                let now = Instant::now();
                let (due, rest): (VecDeque<Held>, VecDeque<Held>) =
                    held.drain(..).partition(|h| h.due <= now);
                held = rest;
                for h in due {
                    if !send(&mut socket, &h.text).await {
                        return;
                    }
                }
                deadline = Instant::now() + idle;
            }
        }
    }
}

async fn send(socket: &mut WebSocket, text: &str) -> bool {
    socket.send(Message::text(text)).await.is_ok()
}

/// Sends a close frame and waits a little for the client's, to complete the
/// handshake; then the socket is dropped.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}
