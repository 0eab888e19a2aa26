//! Test-only fault points in the jobs, compiled only with the `test-faults` cargo feature
//! (on by default so that `cargo test` has them; a production build with
//! `--no-default-features` carries none of it: the calls below become no-ops and
//! `JobContext` has no fault field).
//!
//! - `FaultPoints::fail_always`: a job kind fails on every attempt.
//! - `FaultPoints::crash_after_invoice`: the invoice job stops right after Fortnox created
//!   the invoice, as a crash at that instant would.
//! - `FaultPoints::freeze_invoice_at`: the invoice job freezes at a named step, renewing no
//!   lease, as a process paused by SIGSTOP or a VM freeze would.
//! - `FaultPoints::delay_release`: order jobs wait after their step before giving the
//!   order's lease back, as a busy process would between commit and release.
//! - `FaultPoints::hold_next_check`: the next order check waits right after reading the
//!   catalogue until the test lets it go, so a test can change the catalogue meanwhile.
//! - In debug builds, the environment variable `FF_TEST_SIGSTOP_AT=<point>[,<point>...]`
//!   makes the process stop itself with SIGSTOP the first time it reaches each named step,
//!   so a test of the real binary can pause it exactly there and resume it with SIGCONT.
use super::JobContext;
use crate::domain::JobKind;
use crate::store::leases::Lease;

/// The steps of the invoice job where a test can freeze the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvoicePoint {
    BeforeRowsPut,
    AfterRowsPut,
    AfterIntent,
    AfterCreateInvoice,
}

impl InvoicePoint {
    pub const ALL: [InvoicePoint; 4] = [
        InvoicePoint::BeforeRowsPut,
        InvoicePoint::AfterRowsPut,
        InvoicePoint::AfterIntent,
        InvoicePoint::AfterCreateInvoice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InvoicePoint::BeforeRowsPut => "invoice.before_rows_put",
            InvoicePoint::AfterRowsPut => "invoice.after_rows_put",
            InvoicePoint::AfterIntent => "invoice.after_intent",
            InvoicePoint::AfterCreateInvoice => "invoice.after_createinvoice",
        }
    }
}

#[cfg(feature = "test-faults")]
pub use points::{FaultPoints, HeldCheck};

/// Whether a test made this kind of job fail.
pub(super) fn should_fail(ctx: &JobContext, kind: JobKind) -> bool {
    #[cfg(feature = "test-faults")]
    return ctx.faults.should_fail(kind);
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = (ctx, kind);
        false
    }
}

/// Whether a test asked the invoice job to "crash" right after createinvoice.
pub(super) fn crash_after_invoice(ctx: &JobContext) -> bool {
    #[cfg(feature = "test-faults")]
    return ctx.faults.take_crash_after_invoice();
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = ctx;
        false
    }
}

/// Waits before an order job gives its lease back, if a test asked for it.
pub(super) async fn before_release(ctx: &JobContext) {
    #[cfg(feature = "test-faults")]
    if let Some(delay) = ctx.faults.release_delay() {
        tokio::time::sleep(delay).await;
    }
    #[cfg(not(feature = "test-faults"))]
    let _ = ctx;
}

/// Holds an order check that has read the catalogue, if a test asked for it.
pub(super) async fn after_catalog_read(ctx: &JobContext, order_id: i64) {
    #[cfg(feature = "test-faults")]
    ctx.faults.hold_check(order_id).await;
    #[cfg(not(feature = "test-faults"))]
    let _ = (ctx, order_id);
}

/// Freezes the invoice job at `point` if a test asked for it.
pub(super) async fn at(ctx: &JobContext, lease: &mut Lease, point: InvoicePoint) {
    #[cfg(feature = "test-faults")]
    {
        if let Some(duration) = ctx.faults.take_freeze(point) {
            tracing::warn!(
                order_id = lease.order_id,
                point = point.name(),
                ?duration,
                "fault injected: worker frozen"
            );
            lease.stop_renewing();
            tokio::time::sleep(duration).await;
        }
        #[cfg(debug_assertions)]
        points::sigstop_if_asked(lease.order_id, point);
    }
    #[cfg(not(feature = "test-faults"))]
    let _ = (ctx, lease, point);
}

#[cfg(feature = "test-faults")]
mod points {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::InvoicePoint;
    use crate::domain::JobKind;

    /// Set from test code only, never from configuration. Per app, so tests running in
    /// parallel in one process do not see each other's faults.
    #[derive(Clone, Default)]
    pub struct FaultPoints {
        failing: Arc<Mutex<HashSet<JobKind>>>,
        crash_after_invoice: Arc<AtomicUsize>,
        freezes: Arc<Mutex<HashMap<InvoicePoint, Duration>>>,
        release_delay: Arc<Mutex<Option<Duration>>>,
        held_check: Arc<Mutex<Option<CheckGate>>>,
    }

    /// The job's side of `HeldCheck`.
    struct CheckGate {
        reached: oneshot::Sender<i64>,
        release: oneshot::Receiver<()>,
    }

    /// A check held after its catalogue read (`FaultPoints::hold_next_check`). Dropping it
    /// lets the check go too.
    pub struct HeldCheck {
        reached: oneshot::Receiver<i64>,
        release: oneshot::Sender<()>,
    }

    impl HeldCheck {
        /// Waits until a check is held; returns its order's id, or None after `timeout`.
        pub async fn reached(&mut self, timeout: Duration) -> Option<i64> {
            tokio::time::timeout(timeout, &mut self.reached)
                .await
                .ok()?
                .ok()
        }

        /// Lets the held check go on.
        pub fn release(self) {
            let _ = self.release.send(());
        }
    }

    impl FaultPoints {
        pub fn fail_always(&self, kind: JobKind) {
            if let Ok(mut set) = self.failing.lock() {
                set.insert(kind);
            }
        }

        pub fn clear(&self) {
            if let Ok(mut set) = self.failing.lock() {
                set.clear();
            }
        }

        /// The next `n` invoice jobs stop right after Fortnox created the invoice, before
        /// the state is saved, as a crash at that instant would.
        pub fn crash_after_invoice(&self, n: usize) {
            self.crash_after_invoice.store(n, Ordering::SeqCst);
        }

        /// The next invoice job to reach `point` freezes there for `duration`: it stops
        /// renewing its lease and sleeps.
        pub fn freeze_invoice_at(&self, point: InvoicePoint, duration: Duration) {
            if let Ok(mut freezes) = self.freezes.lock() {
                freezes.insert(point, duration);
            }
        }

        /// Every order job waits `delay` after its step before releasing the lease.
        pub fn delay_release(&self, delay: Duration) {
            if let Ok(mut slot) = self.release_delay.lock() {
                *slot = Some(delay);
            }
        }

        /// The next order check waits after reading the catalogue until the returned
        /// handle is released or dropped (at most a minute, so a failed test cannot hang
        /// a worker for good).
        pub fn hold_next_check(&self) -> HeldCheck {
            let (reached_tx, reached_rx) = oneshot::channel();
            let (release_tx, release_rx) = oneshot::channel();
            if let Ok(mut slot) = self.held_check.lock() {
                *slot = Some(CheckGate {
                    reached: reached_tx,
                    release: release_rx,
                });
            }
            HeldCheck {
                reached: reached_rx,
                release: release_tx,
            }
        }

        pub(super) async fn hold_check(&self, order_id: i64) {
            let gate = self.held_check.lock().ok().and_then(|mut slot| slot.take());
            if let Some(gate) = gate {
                tracing::warn!(
                    order_id,
                    "fault injected: check held after its catalogue read"
                );
                let _ = gate.reached.send(order_id);
                let _ = tokio::time::timeout(Duration::from_secs(60), gate.release).await;
            }
        }

        pub(super) fn release_delay(&self) -> Option<Duration> {
            *self.release_delay.lock().ok()?
        }

        pub(super) fn take_crash_after_invoice(&self) -> bool {
            self.crash_after_invoice
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }

        pub(super) fn take_freeze(&self, point: InvoicePoint) -> Option<Duration> {
            self.freezes.lock().ok()?.remove(&point)
        }

        pub(super) fn should_fail(&self, kind: JobKind) -> bool {
            self.failing
                .lock()
                .map(|set| set.contains(&kind))
                .unwrap_or(false)
        }
    }

    #[cfg(debug_assertions)]
    pub(super) fn sigstop_if_asked(order_id: i64, point: InvoicePoint) {
        use std::sync::OnceLock;
        static PENDING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        let pending = PENDING.get_or_init(|| {
            Mutex::new(
                std::env::var("FF_TEST_SIGSTOP_AT")
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )
        });
        let hit = pending
            .lock()
            .map(|mut set| set.remove(point.name()))
            .unwrap_or(false);
        if !hit {
            return;
        }
        tracing::warn!(
            order_id,
            point = point.name(),
            "FF_TEST_SIGSTOP_AT: stopping this process (SIGSTOP); SIGCONT resumes it"
        );
        let pid = std::process::id().to_string();
        if let Err(error) = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
        {
            tracing::error!(%error, "FF_TEST_SIGSTOP_AT: could not stop the process");
        }
    }
}
