//! The connection's life: the URL, pings, idle close, bad frames, shutdown.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use fortnox_sandbox::SandboxConfig;

#[tokio::test]
async fn the_socket_is_served_at_topics_v1_only() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let port = sandbox.addr().port();
    assert_eq!(sandbox.ws_url(), format!("ws://127.0.0.1:{port}/topics-v1"));
    assert_eq!(sb.ws_url(), sandbox.ws_url());
    let other = format!("ws://127.0.0.1:{port}/topics-v2");
    assert!(tokio_tungstenite::connect_async(other).await.is_err());
    let under_3 = format!("ws://127.0.0.1:{port}/3/topics-v1");
    assert!(tokio_tungstenite::connect_async(under_3).await.is_err());
    let r = reqwest::get(format!("{}/topics-v2", sb.api_base()))
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
    // Not a call of the REST API: no call in the log.
    let _c = connect(&sb).await;
    assert!(sb.calls().is_empty(), "{:?}", sb.calls());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn pings_are_answered_and_keep_the_connection_open() {
    let sandbox = sandbox_with(SandboxConfig {
        ws_idle_timeout: Duration::from_millis(600),
        ..SandboxConfig::default()
    })
    .await;
    let sb = sandbox.handle();
    let mut c = connect(&sb).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.send_raw(Message::Ping(b"hi".to_vec().into())).await;
        match c.next_frame(WAIT).await {
            Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hi"),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    assert_eq!(sb.ws_connections().len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let sandbox = sandbox_with(SandboxConfig {
        ws_idle_timeout: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let sb = sandbox.handle();
    let mut c = connect(&sb).await;
    let start = Instant::now();
    assert_eq!(c.end(WAIT).await, End::Closed(1000));
    assert!(start.elapsed() >= Duration::from_millis(250));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = connect(&sb).await;
    c.send_raw(Message::Binary(
        b"{\"command\":\"subscribe-v1\"}".to_vec().into(),
    ))
    .await;
    assert_eq!(c.end(WAIT).await, End::Closed(1003));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001_without_hanging() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut a = subscribed(&sb, &["t1"], &["orders"]).await;
    let mut b = connect(&sb).await;
    // A third that never reads: shutdown must not wait for it.
    let _deaf = connect(&sb).await;
    let start = Instant::now();
    let stopping = tokio::spawn(sandbox.shutdown());
    assert_eq!(a.end(WAIT).await, End::Closed(1001));
    assert_eq!(b.end(WAIT).await, End::Closed(1001));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown does not hang")
        .expect("shutdown task");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(tokio_tungstenite::connect_async(sb.ws_url()).await.is_err());
    // The handle still reads the state.
    assert!(sb.ws_connections().is_empty());
}
