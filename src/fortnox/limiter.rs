//! Client-side rate limiting: at most `max` requests in any `window`, per tenant.
//!
//! Fortnox counts 25 requests per 5-second *sliding* window. A flat rate
//! (5/s) or a token bucket lets a burst of 2x through in some window and earns
//! 429s; a sliding log of send times cannot. Each tenant has one log, shared by
//! every caller in the process (the registry hands out the same `Arc`).
//!
//! Several processes on PostgreSQL: we **split the budget**. Each process is
//! configured with the number of processes (`RateLimit::split`), and takes
//! `max / processes` per window. Coordinating through the database would need a
//! round trip (and a lock) per Fortnox request, which costs more than the
//! request budget it saves, and it fails closed when the database is slow.
//! Splitting is static, needs no coordination, and can never exceed the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
    /// Added to the window: the server sees arrival times, we see send times,
    /// and a request that travels slower than its successor must not make the
    /// server count 26 in a window. 400 ms covers a loaded machine's scheduling
    /// delays (100 ms did not: a 429 was seen under CI load) at 8% of throughput.
    pub margin: Duration,
}

impl RateLimit {
    /// Fortnox's documented limit.
    pub const FORTNOX: RateLimit = RateLimit {
        max: 25,
        window: Duration::from_secs(5),
        margin: Duration::from_millis(400),
    };

    /// This process's share when `processes` processes share one tenant.
    pub fn split(self, processes: u32) -> RateLimit {
        let n = processes.max(1);
        RateLimit {
            max: (self.max / n).max(1),
            ..self
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::FORTNOX
    }
}

/// One tenant's sliding log of send times.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: RateLimit,
    sent: Mutex<VecDeque<Instant>>,
}

impl SlidingWindow {
    pub fn new(limit: RateLimit) -> Self {
        SlidingWindow {
            limit,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request may be sent, and records it as sent.
    pub async fn acquire(&self) {
        let span = self.limit.window + self.limit.margin;
        loop {
            let wait = {
                // A poisoned lock only means another caller panicked while
                // holding it; the log itself is still consistent.
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= span) {
                    sent.pop_front();
                }
                if (sent.len() as u32) < self.limit.max {
                    sent.push_back(now);
                    return;
                }
                match sent.front() {
                    Some(oldest) => (*oldest + span).saturating_duration_since(now),
                    None => Duration::ZERO,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Hands out one [`SlidingWindow`] per tenant key.
#[derive(Debug, Default)]
pub struct LimiterRegistry {
    limit: Option<RateLimit>,
    windows: Mutex<HashMap<String, Arc<SlidingWindow>>>,
}

impl LimiterRegistry {
    /// `None` disables limiting (only for tests that measure the sandbox).
    pub fn new(limit: Option<RateLimit>) -> Self {
        LimiterRegistry {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub async fn acquire(&self, tenant: &str) {
        let Some(limit) = self.limit else { return };
        let window = {
            let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(tenant.to_string())
                .or_insert_with(|| Arc::new(SlidingWindow::new(limit)))
                .clone()
        };
        window.acquire().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_divides_the_budget() {
        assert_eq!(RateLimit::FORTNOX.split(1).max, 25);
        assert_eq!(RateLimit::FORTNOX.split(3).max, 8);
        assert_eq!(RateLimit::FORTNOX.split(0).max, 25);
        assert_eq!(RateLimit::FORTNOX.split(100).max, 1);
    }

    #[tokio::test]
    async fn never_more_than_max_in_a_window() {
        let limit = RateLimit {
            max: 3,
            window: Duration::from_millis(200),
            margin: Duration::ZERO,
        };
        let w = SlidingWindow::new(limit);
        let mut sent = Vec::new();
        for _ in 0..7 {
            w.acquire().await;
            sent.push(Instant::now());
        }
        // Any request and the one `max` after it are a full window apart.
        for pair in sent.windows(4) {
            assert!(pair[3].duration_since(pair[0]) >= limit.window);
        }
    }
}
