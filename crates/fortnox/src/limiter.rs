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
//!
//! Restarts: Fortnox still counts a stopped process's requests for one window,
//! but a new process's log would start empty and send `max` at once: 429s
//! after every restart while a backlog drains. So each tenant's log starts as
//! if `max` requests had been sent at the instant the registry was created
//! (process start): the first requests after a start wait until one window
//! (+margin) has passed since then; a tenant first used later pays nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
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

    /// A log that counts `max` requests sent at `at`: full until one window
    /// (+margin) after `at`.
    pub fn full_at(limit: RateLimit, at: Instant) -> Self {
        SlidingWindow {
            limit,
            sent: Mutex::new(std::iter::repeat_n(at, limit.max as usize).collect()),
        }
    }

    /// Waits until a request may be sent, and records it as sent.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.log();
                // Read under the lock, so the log stays in time order.
                match self.admit(&mut sent, Instant::now()) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Records a request at `now` if the window has room, without waiting: for
    /// a server that counts arrivals and refuses the rest (the sandbox, with
    /// `margin` zero). A refused request is not recorded.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut sent = self.log();
        self.admit(&mut sent, now).is_ok()
    }

    fn log(&self) -> MutexGuard<'_, VecDeque<Instant>> {
        // A poisoned lock only means another caller panicked while holding
        // it; the log itself is still consistent.
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request at `now` if fewer than `max` were recorded within
    /// one window (+margin) before it; otherwise, how long until one may be.
    fn admit(&self, sent: &mut VecDeque<Instant>, now: Instant) -> Result<(), Duration> {
        let span = self.limit.window + self.limit.margin;
        while sent.front().is_some_and(|t| now.duration_since(*t) >= span) {
            sent.pop_front();
        }
        if (sent.len() as u32) < self.limit.max {
            sent.push_back(now);
            return Ok(());
        }
        Err(match sent.front() {
            Some(oldest) => (*oldest + span).saturating_duration_since(now),
            None => Duration::ZERO,
        })
    }
}

/// Hands out one [`SlidingWindow`] per tenant key, each starting full at the
/// registry's creation (see the module comment: restarts).
#[derive(Debug)]
pub struct LimiterRegistry {
    limit: Option<RateLimit>,
    started: Instant,
    windows: Mutex<HashMap<String, Arc<SlidingWindow>>>,
}

impl Default for LimiterRegistry {
    fn default() -> Self {
        LimiterRegistry::new(None)
    }
}

impl LimiterRegistry {
    /// `None` disables limiting (only for tests that measure the sandbox).
    /// Create it once per process, at start: its creation is the instant
    /// every tenant's window counts as full.
    pub fn new(limit: Option<RateLimit>) -> Self {
        LimiterRegistry {
            limit,
            started: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub async fn acquire(&self, tenant: &str) {
        let Some(limit) = self.limit else { return };
        let window = {
            let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(tenant.to_string())
                .or_insert_with(|| Arc::new(SlidingWindow::full_at(limit, self.started)))
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

    #[test]
    fn try_acquire_refuses_beyond_max_without_counting_refusals() {
        let limit = RateLimit {
            max: 3,
            window: Duration::from_millis(200),
            margin: Duration::ZERO,
        };
        let w = SlidingWindow::new(limit);
        let t0 = Instant::now();
        assert!((0..3).all(|_| w.try_acquire(t0)));
        assert!(!w.try_acquire(t0));
        assert!(!w.try_acquire(t0 + Duration::from_millis(199)));
        // Exactly one window later the three have left it; the refusals never
        // entered it.
        assert!((0..3).all(|_| w.try_acquire(t0 + limit.window)));
        assert!(!w.try_acquire(t0 + limit.window));
    }

    #[test]
    fn try_acquire_counts_the_margin() {
        let limit = RateLimit {
            max: 1,
            window: Duration::from_millis(200),
            margin: Duration::from_millis(100),
        };
        let w = SlidingWindow::new(limit);
        let t0 = Instant::now();
        assert!(w.try_acquire(t0));
        assert!(!w.try_acquire(t0 + limit.window));
        assert!(w.try_acquire(t0 + limit.window + limit.margin));
    }

    // Tokio's paused clock needs its `test-util` feature, which this crate does
    // not enable: these run on the real clock, with a short window.
    const SHORT: RateLimit = RateLimit {
        max: 3,
        window: Duration::from_millis(500),
        margin: Duration::from_millis(100),
    };
    const SPAN: Duration = Duration::from_millis(600);
    /// "At once", allowing for a loaded machine.
    const AT_ONCE: Duration = Duration::from_millis(250);

    /// Acquires `n` times for `tenant`; returns when each was granted, from `origin`.
    async fn grants(
        registry: &LimiterRegistry,
        tenant: &str,
        n: usize,
        origin: Instant,
    ) -> Vec<Duration> {
        let mut at = Vec::new();
        for _ in 0..n {
            registry.acquire(tenant).await;
            at.push(Instant::now().duration_since(origin));
        }
        at
    }

    #[tokio::test]
    async fn after_a_start_the_first_requests_wait_one_window() {
        let started = Instant::now();
        let registry = LimiterRegistry::new(Some(SHORT));
        let at = grants(&registry, "m1", 4, started).await;
        // The previous process may have sent `max` just before we started.
        assert!(at[..3].iter().all(|t| *t >= SPAN), "{at:?}");
        assert!(at[2] < SPAN + AT_ONCE, "then all `max` at once: {at:?}");
        assert!(at[3] >= 2 * SPAN, "then the usual budget: {at:?}");
    }

    #[tokio::test]
    async fn a_tenant_first_used_one_window_after_the_start_pays_nothing() {
        let registry = LimiterRegistry::new(Some(SHORT));
        tokio::time::sleep(SPAN).await;
        let now = Instant::now();
        let at = grants(&registry, "m1", 4, now).await;
        assert!(at[2] < AT_ONCE, "{at:?}");
        assert!(at[3] >= SPAN, "{at:?}");
    }

    #[tokio::test]
    async fn a_tenant_first_used_during_the_first_window_waits_only_the_rest() {
        let started = Instant::now();
        let registry = LimiterRegistry::new(Some(SHORT));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at = grants(&registry, "m1", 1, started).await;
        assert!(at[0] >= SPAN && at[0] < SPAN + AT_ONCE, "{at:?}");
    }

    #[tokio::test]
    async fn every_tenant_counts_from_the_process_start() {
        let started = Instant::now();
        let registry = LimiterRegistry::new(Some(SHORT));
        grants(&registry, "m1", 3, started).await;
        // m2's window is made now, but counts as full since the start: long past.
        let now = Instant::now();
        let at = grants(&registry, "m2", 3, now).await;
        assert!(at[2] < AT_ONCE, "{at:?}");
    }

    #[tokio::test]
    async fn the_split_budget_starts_full_too() {
        let started = Instant::now();
        let limit = RateLimit { max: 6, ..SHORT }.split(3);
        let registry = LimiterRegistry::new(Some(limit));
        let at = grants(&registry, "m1", 3, started).await;
        assert!(at[0] >= SPAN && at[1] < SPAN + AT_ONCE, "{at:?}");
        assert!(at[2] >= 2 * SPAN, "{at:?}");
    }

    #[tokio::test]
    async fn no_limit_never_waits() {
        let started = Instant::now();
        let registry = LimiterRegistry::new(None);
        let at = grants(&registry, "m1", 100, started).await;
        assert!(at[99] < AT_ONCE, "{at:?}");
    }
}
