//! Client-side rate limiting: at most `max` requests in any `window`, per tenant.
//!
//! Fortnox counts 25 requests per 5-second *sliding* window. A flat rate
//! (5/s) or a token bucket lets a burst of 2x through in some window and earns
//! 429s; a sliding log of send times cannot. Each tenant has one log.
//!
//! One process (SQLite): the log lives in the process, shared by every caller
//! (the registry hands out the same `Arc`).
//!
//! Several processes (PostgreSQL): the log lives in the database
//! ([`SharedRateLog`]), so every process draws on the one budget, none needs to
//! know how many others there are, and a stopped process's requests stop
//! counting as soon as they leave the window. Each request costs one short
//! statement; within a process only one caller per tenant asks the database at
//! a time (the others queue behind it), so waiting callers do not hammer it.
//!
//! Restarts, in-process log: Fortnox still counts a stopped process's requests
//! for one window, but a new process's log would start empty and send `max` at
//! once: 429s after every restart while a backlog drains. So each tenant's log
//! starts as if `max` requests had been sent at the instant the registry was
//! created (process start): the first requests after a start wait until one
//! window (+margin) has passed since then; a tenant first used later pays
//! nothing. The shared log needs none of this: it outlives the process.
//!
//! Late answers: a request is logged when it is granted, but Fortnox counts it
//! when it arrives. The margin covers the usual gap; a request whose answer
//! comes later than half the margin after it was asked for (a slow database
//! commit of the shared log, a loaded machine, a slow network) may have arrived
//! later than the margin allows, so its entry is moved to the latest time it
//! can have arrived: when it was asked for plus how long it took. A request
//! still unanswered is moved forward the same way every `window - 2 x margin`,
//! so it never leaves the log while it may still arrive. Fast answers, nearly
//! all of them, cost nothing more.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::keyed_locks::KeyedLocks;
use crate::oauth::StoreError;

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

    /// The window as counted: the window and the margin.
    pub fn span(&self) -> Duration {
        self.window + self.margin
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

    /// Waits until a request may be sent, and records it as sent; returns the time
    /// recorded.
    pub async fn acquire(&self) -> Instant {
        loop {
            let wait = {
                let mut sent = self.log();
                // Read under the lock, so the log stays in time order.
                match self.admit(&mut sent, Instant::now()) {
                    Ok(at) => return at,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Moves the entry recorded at `from` to `to` (later), keeping the log in time
    /// order. An entry already gone from the log is put back at `to`.
    fn move_later(&self, from: Instant, to: Instant) {
        let mut sent = self.log();
        if let Some(position) = sent.iter().position(|t| *t == from) {
            sent.remove(position);
        }
        let position = sent.partition_point(|t| *t <= to);
        sent.insert(position, to);
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
    fn admit(&self, sent: &mut VecDeque<Instant>, now: Instant) -> Result<Instant, Duration> {
        let span = self.limit.span();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= span) {
            sent.pop_front();
        }
        if (sent.len() as u32) < self.limit.max {
            // A moved entry may lie after `now`: keep the log in time order.
            let position = sent.partition_point(|t| *t <= now);
            sent.insert(position, now);
            return Ok(now);
        }
        Err(match sent.front() {
            Some(oldest) => (*oldest + span).saturating_duration_since(now),
            None => Duration::ZERO,
        })
    }
}

/// What a shared log answered to a request for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded at this time of the log's clock, in microseconds since the epoch
    /// (what [`SharedRateLog::move_later`] names it by).
    Recorded { at_micros: i64 },
    /// Full: nothing recorded; room in this long.
    Wait(Duration),
}

/// A tenant's sliding log kept outside the process (the database), shared by
/// every process that calls Fortnox for the same tenants.
#[async_trait]
pub trait SharedRateLog: Send + Sync + 'static {
    /// Records one request for `tenant` now if fewer than `limit.max` were
    /// recorded within one span (window + margin) before now; otherwise records
    /// nothing and says how long until one may be. "Now" is one clock for
    /// every process (the database's), so processes' clocks need not agree.
    async fn try_record(
        &self,
        tenant: &str,
        limit: RateLimit,
    ) -> std::result::Result<Admission, StoreError>;

    /// Moves `tenant`'s entry recorded at `at_micros` to `to_micros` (later): the
    /// request may have reached Fortnox that late (see the module comment).
    async fn move_later(
        &self,
        tenant: &str,
        at_micros: i64,
        to_micros: i64,
    ) -> std::result::Result<(), StoreError>;
}

/// The right to send one request, from [`LimiterRegistry::acquire`]; hand it to
/// [`LimiterRegistry::metered`] with the request, so that a late answer moves
/// its entry.
#[derive(Debug)]
pub struct Grant {
    /// Just before the room was asked for: the entry was recorded after it.
    asked_at: Instant,
    entry: Entry,
}

#[derive(Debug)]
enum Entry {
    Unmetered,
    InProcess {
        window: Arc<SlidingWindow>,
        at: Instant,
    },
    Shared {
        /// When the log recorded it (its clock), and where the entry is now.
        recorded_micros: i64,
        at_micros: i64,
    },
}

/// Where the tenants' logs live.
enum Logs {
    /// No limiting (only for tests that measure the sandbox).
    Off,
    /// In this process, each starting full at the registry's creation (see
    /// the module comment: restarts).
    InProcess {
        limit: RateLimit,
        started: Instant,
        windows: Mutex<HashMap<String, Arc<SlidingWindow>>>,
    },
    /// In the database, shared by all processes.
    Shared {
        limit: RateLimit,
        log: Arc<dyn SharedRateLog>,
        /// One caller per tenant asks the shared log at a time.
        queue: KeyedLocks<String>,
    },
}

/// Hands out the right to send one request for a tenant.
pub struct LimiterRegistry {
    logs: Logs,
}

impl std::fmt::Debug for LimiterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.logs {
            Logs::Off => "off",
            Logs::InProcess { .. } => "in process",
            Logs::Shared { .. } => "shared",
        };
        f.debug_struct("LimiterRegistry")
            .field("logs", &kind)
            .finish()
    }
}

impl Default for LimiterRegistry {
    fn default() -> Self {
        LimiterRegistry::new(None)
    }
}

/// A shared log that cannot be read is retried this often before the request
/// fails (as retryable): never sending unmetered is the point of the log.
const SHARED_LOG_ATTEMPTS: u32 = 3;

impl LimiterRegistry {
    /// In-process logs; `None` disables limiting (only for tests that measure
    /// the sandbox). Create it once per process, at start: its creation is the
    /// instant every tenant's window counts as full.
    pub fn new(limit: Option<RateLimit>) -> Self {
        let logs = match limit {
            None => Logs::Off,
            Some(limit) => Logs::InProcess {
                limit,
                started: Instant::now(),
                windows: Mutex::new(HashMap::new()),
            },
        };
        LimiterRegistry { logs }
    }

    /// Logs kept in `log`, shared with other processes.
    pub fn shared(limit: RateLimit, log: Arc<dyn SharedRateLog>) -> Self {
        LimiterRegistry {
            logs: Logs::Shared {
                limit,
                log,
                queue: KeyedLocks::new(),
            },
        }
    }

    /// Waits until a request for `tenant` may be sent, and records it as sent.
    /// Fails only when the shared log cannot be reached.
    pub async fn acquire(&self, tenant: &str) -> std::result::Result<Grant, StoreError> {
        match &self.logs {
            Logs::Off => Ok(Grant {
                asked_at: Instant::now(),
                entry: Entry::Unmetered,
            }),
            Logs::InProcess {
                limit,
                started,
                windows,
            } => {
                let window = {
                    let mut map = windows.lock().unwrap_or_else(|e| e.into_inner());
                    map.entry(tenant.to_string())
                        .or_insert_with(|| Arc::new(SlidingWindow::full_at(*limit, *started)))
                        .clone()
                };
                let at = window.acquire().await;
                Ok(Grant {
                    asked_at: at,
                    entry: Entry::InProcess { window, at },
                })
            }
            Logs::Shared { limit, log, queue } => {
                let _turn = queue.lock(tenant.to_string()).await;
                let mut failures = 0;
                loop {
                    let asked_at = Instant::now();
                    match log.try_record(tenant, *limit).await {
                        Ok(Admission::Recorded { at_micros }) => {
                            return Ok(Grant {
                                asked_at,
                                entry: Entry::Shared {
                                    recorded_micros: at_micros,
                                    at_micros,
                                },
                            })
                        }
                        Ok(Admission::Wait(wait)) => {
                            tokio::time::sleep(wait.max(Duration::from_millis(1))).await
                        }
                        Err(error) => {
                            failures += 1;
                            if failures >= SHARED_LOG_ATTEMPTS {
                                return Err(StoreError(format!(
                                    "the shared Fortnox rate-limit log could not be read: {}",
                                    error.0
                                )));
                            }
                            tokio::time::sleep(Duration::from_millis(200 * failures as u64)).await;
                        }
                    }
                }
            }
        }
    }

    /// Runs `request` (one HTTP exchange sent under `grant`) and moves the grant's
    /// entry when the answer came late, or while it is still awaited (see the
    /// module comment: late answers).
    pub async fn metered<F: std::future::Future>(
        &self,
        tenant: &str,
        mut grant: Grant,
        request: F,
    ) -> F::Output {
        let Some(limit) = self.limit() else {
            return request.await;
        };
        let renew_every = limit
            .window
            .saturating_sub(2 * limit.margin)
            .max(Duration::from_millis(100));
        tokio::pin!(request);
        let output = loop {
            tokio::select! {
                output = &mut request => break output,
                _ = tokio::time::sleep(renew_every) => self.settle(tenant, &mut grant, limit).await,
            }
        };
        self.settle(tenant, &mut grant, limit).await;
        output
    }

    fn limit(&self) -> Option<RateLimit> {
        match &self.logs {
            Logs::Off => None,
            Logs::InProcess { limit, .. } | Logs::Shared { limit, .. } => Some(*limit),
        }
    }

    /// Moves the grant's entry to when it was asked for plus the time since, the
    /// latest the request can have reached Fortnox, unless that is within half the
    /// margin of the entry (the margin covers it).
    async fn settle(&self, tenant: &str, grant: &mut Grant, limit: RateLimit) {
        let elapsed = grant.asked_at.elapsed();
        if elapsed <= limit.margin / 2 {
            return;
        }
        let latest = grant.asked_at + elapsed;
        match &mut grant.entry {
            Entry::Unmetered => {}
            Entry::InProcess { window, at } => {
                if latest > *at {
                    window.move_later(*at, latest);
                    *at = latest;
                }
            }
            Entry::Shared {
                recorded_micros,
                at_micros,
            } => {
                let Logs::Shared { log, .. } = &self.logs else {
                    return;
                };
                // The log's clock recorded the entry after `asked_at`, so the request
                // reached Fortnox at most `elapsed` after the recorded time.
                let elapsed_micros = i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX);
                let to_micros = recorded_micros.saturating_add(elapsed_micros);
                if to_micros <= *at_micros {
                    return;
                }
                match log.move_later(tenant, *at_micros, to_micros).await {
                    Ok(()) => *at_micros = to_micros,
                    Err(error) => tracing::warn!(tenant, error = %error.0,
                        "could not move a late request's entry in the shared rate-limit log; Fortnox may answer 429 once"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            registry.acquire(tenant).await.expect("an in-process log");
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

    /// A shared log kept in memory: what the database does, without one.
    struct MemoryLog {
        window: SlidingWindow,
        reads: std::sync::atomic::AtomicU32,
        origin: Instant,
        moves: Mutex<Vec<(i64, i64)>>,
    }

    impl MemoryLog {
        fn new(limit: RateLimit) -> MemoryLog {
            MemoryLog {
                window: SlidingWindow::new(limit),
                reads: Default::default(),
                origin: Instant::now(),
                moves: Mutex::new(Vec::new()),
            }
        }

        fn micros(&self, at: Instant) -> i64 {
            at.duration_since(self.origin).as_micros() as i64
        }
    }

    #[async_trait]
    impl SharedRateLog for MemoryLog {
        async fn try_record(
            &self,
            _tenant: &str,
            _limit: RateLimit,
        ) -> std::result::Result<Admission, StoreError> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut sent = self.window.log();
            Ok(match self.window.admit(&mut sent, Instant::now()) {
                Ok(at) => Admission::Recorded {
                    at_micros: self.micros(at),
                },
                Err(wait) => Admission::Wait(wait),
            })
        }

        async fn move_later(
            &self,
            _tenant: &str,
            at_micros: i64,
            to_micros: i64,
        ) -> std::result::Result<(), StoreError> {
            self.moves
                .lock()
                .expect("moves")
                .push((at_micros, to_micros));
            let at = |micros: i64| self.origin + Duration::from_micros(micros as u64);
            self.window.move_later(at(at_micros), at(to_micros));
            Ok(())
        }
    }

    #[tokio::test]
    async fn processes_sharing_a_log_keep_to_one_budget_together() {
        let log = Arc::new(MemoryLog::new(SHORT));
        let origin = Instant::now();
        // Two "processes", each with four callers for the same tenant.
        let processes: Vec<Arc<LimiterRegistry>> = (0..2)
            .map(|_| Arc::new(LimiterRegistry::shared(SHORT, log.clone())))
            .collect();
        let mut callers = Vec::new();
        for registry in &processes {
            for _ in 0..4 {
                let registry = registry.clone();
                callers.push(tokio::spawn(async move {
                    grants(&registry, "m1", 1, origin).await[0]
                }));
            }
        }
        let mut at = Vec::new();
        for caller in callers {
            at.push(caller.await.expect("caller"));
        }
        at.sort();
        // A fresh shared log owes nothing to a start: the first `max` go at once.
        assert!(at[2] < AT_ONCE, "{at:?}");
        for group in at.windows(4) {
            assert!(
                group[3] - group[0] >= SPAN - Duration::from_millis(5),
                "{at:?}"
            );
        }
        // Waiting callers queue per process: about one read per grant and per
        // process per wait, not one per caller per wait.
        let reads = log.reads.load(std::sync::atomic::Ordering::Relaxed);
        assert!(reads <= 8 + 2 * 3, "{reads} reads for 8 grants");
    }

    struct BrokenLog;

    #[async_trait]
    impl SharedRateLog for BrokenLog {
        async fn try_record(
            &self,
            _tenant: &str,
            _limit: RateLimit,
        ) -> std::result::Result<Admission, StoreError> {
            Err(StoreError("connection refused".into()))
        }

        async fn move_later(
            &self,
            _tenant: &str,
            _at_micros: i64,
            _to_micros: i64,
        ) -> std::result::Result<(), StoreError> {
            Err(StoreError("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn an_unreachable_shared_log_fails_the_request_instead_of_sending_it() {
        let registry = LimiterRegistry::shared(SHORT, Arc::new(BrokenLog));
        let error = registry
            .acquire("m1")
            .await
            .expect_err("no unmetered request");
        assert!(error.0.contains("connection refused"), "{}", error.0);
    }

    #[tokio::test]
    async fn no_limit_never_waits() {
        let started = Instant::now();
        let registry = LimiterRegistry::new(None);
        let at = grants(&registry, "m1", 100, started).await;
        assert!(at[99] < AT_ONCE, "{at:?}");
    }

    /// Sends one request under `registry` whose answer takes `answer_after`.
    async fn request_answered_after(
        registry: &LimiterRegistry,
        tenant: &str,
        answer_after: Duration,
    ) {
        let grant = registry.acquire(tenant).await.expect("grant");
        registry
            .metered(tenant, grant, tokio::time::sleep(answer_after))
            .await;
    }

    #[tokio::test]
    async fn a_late_answer_keeps_its_request_in_the_window_until_it_can_have_arrived() {
        let registry = LimiterRegistry::new(Some(SHORT));
        tokio::time::sleep(SPAN).await; // past the start-up window
        let origin = Instant::now();
        // The first request's answer comes 300 ms late (beyond half the margin): it may
        // have reached the server that late, so it counts from then.
        request_answered_after(&registry, "m1", Duration::from_millis(300)).await;
        let at = grants(&registry, "m1", 3, origin).await;
        assert!(at[1] < SPAN, "room for max - 1 more at once: {at:?}");
        assert!(
            at[2] >= Duration::from_millis(300) + SPAN - Duration::from_millis(5),
            "the third waits for the late one's arrival + span: {at:?}"
        );
    }

    #[tokio::test]
    async fn a_prompt_answer_leaves_the_log_alone() {
        let log = Arc::new(MemoryLog::new(SHORT));
        let registry = LimiterRegistry::shared(SHORT, log.clone());
        request_answered_after(&registry, "m1", Duration::ZERO).await;
        assert!(log.moves.lock().expect("moves").is_empty());
    }

    #[tokio::test]
    async fn a_late_answer_moves_the_shared_entry_by_how_long_it_took() {
        let log = Arc::new(MemoryLog::new(SHORT));
        let registry = LimiterRegistry::shared(SHORT, log.clone());
        request_answered_after(&registry, "m1", Duration::from_millis(200)).await;
        let moves = log.moves.lock().expect("moves").clone();
        assert_eq!(moves.len(), 1, "{moves:?}");
        let (from, to) = moves[0];
        assert!(
            to - from >= 200_000 && to - from < 200_000 + 250_000,
            "{moves:?}"
        );
    }

    #[tokio::test]
    async fn a_request_still_unanswered_is_kept_in_the_window() {
        // SHORT renews every window - 2 x margin = 300 ms.
        let log = Arc::new(MemoryLog::new(SHORT));
        let registry = LimiterRegistry::shared(SHORT, log.clone());
        let origin = Instant::now();
        let registry = Arc::new(registry);
        let slow = {
            let registry = registry.clone();
            tokio::spawn(async move {
                request_answered_after(&registry, "m1", Duration::from_millis(1_000)).await
            })
        };
        // Past the slow request's record + span: without renewals it would have left
        // the log, and three would go at once.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let at = grants(&registry, "m1", 3, origin).await;
        slow.await.expect("slow request");
        let moves = log.moves.lock().expect("moves").clone();
        assert!(
            moves.len() >= 3,
            "renewed while in flight, then settled: {moves:?}"
        );
        assert!(
            moves
                .windows(2)
                .all(|pair| pair[1].0 == pair[0].1 && pair[1].1 > pair[0].1),
            "each move starts where the last ended, always later: {moves:?}"
        );
        assert!(at[1] < Duration::from_millis(700) + AT_ONCE, "{at:?}");
        assert!(
            at[2] >= Duration::from_millis(1_200),
            "the unanswered request still held its place: {at:?}"
        );
    }
}
