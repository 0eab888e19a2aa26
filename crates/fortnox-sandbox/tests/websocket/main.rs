//! The sandbox's Topics WebSocket (`/topics-v1`): commands and their
//! responses, the events every change emits, replay, the test switches and
//! the connection's life (idle close, shutdown, bad frames).

mod commands;
mod common;
mod emission;
mod lifecycle;
mod switches;
