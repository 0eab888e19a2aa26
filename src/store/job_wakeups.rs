//! Wake-ups for the job workers, so queued work starts within milliseconds instead of at the
//! workers' next poll: every push of a task (once its transaction has committed) wakes the
//! queue's workers in this process, at once or, for a task that runs later, at its time;
//! on PostgreSQL apalis' insert trigger (`NOTIFY apalis::job::insert`) wakes the workers of
//! every other process too. Polling stays, stretched while a queue is idle, as the safety
//! net for what no wake-up announces (another process's delayed task, a missed NOTIFY).
//!
//! Process-wide, because tasks are pushed from the store, the services and the jobs alike;
//! several apps in one process (the tests) each subscribe and all wake, which costs them
//! one empty fetch each.
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

static QUEUES: LazyLock<Mutex<HashMap<String, watch::Sender<u64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn sender(queue: &str) -> watch::Sender<u64> {
    // A poisoned map is still whole (one insert at a time).
    let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    queues
        .entry(queue.to_owned())
        .or_insert_with(|| watch::channel(0).0)
        .clone()
}

/// Wakes the queue's workers now.
pub fn wake(queue: &str) {
    sender(queue).send_modify(|n| *n = n.wrapping_add(1));
}

/// Wakes the queue's workers when a task pushed now with `delay` becomes due. Call it after
/// the push has committed, or the workers may look before the task is there.
pub fn task_queued(queue: &str, delay: Option<Duration>) {
    match delay {
        Some(delay) if !delay.is_zero() => {
            let queue = queue.to_owned();
            // Outside a runtime (never in the service) the poll picks it up instead.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    // A little after the due time: apalis compares run_at in whole seconds.
                    tokio::time::sleep(delay + Duration::from_millis(20)).await;
                    wake(&queue);
                });
            }
        }
        _ => wake(queue),
    }
}

/// The wake-ups of one queue, as the stream apalis' poll strategy takes.
pub struct Wakeups {
    // Behind a mutex only to be `Sync`, which apalis asks of a strategy's stream; it is
    // never contended (`get_mut`).
    inner: Mutex<WatchStream<u64>>,
}

impl Wakeups {
    pub fn of(queue: &str) -> Wakeups {
        Wakeups {
            inner: Mutex::new(WatchStream::from_changes(sender(queue).subscribe())),
        }
    }
}

impl Stream for Wakeups {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let stream = self
            .get_mut()
            .inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        Pin::new(stream)
            .poll_next(cx)
            .map(|woken| woken.map(|_| ()))
    }
}

/// PostgreSQL: wakes this process's workers for the tasks other processes queue, from the
/// NOTIFY that apalis' insert trigger sends for every task due at once. Runs until
/// `shutdown`; reconnects when the connection drops.
pub async fn listen_postgres(pool: sqlx::PgPool, mut shutdown: watch::Receiver<bool>) {
    #[derive(serde::Deserialize)]
    struct Inserted {
        job_type: String,
    }
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen("apalis::job::insert").await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for queued jobs; polling only, retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(notification) => {
                        if let Ok(inserted) = serde_json::from_str::<Inserted>(notification.payload()) {
                            wake(&inserted.job_type);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the queued-jobs listener lost its connection; reconnecting");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_wake_before_the_worker_waits_is_not_lost() {
        let mut wakeups = Wakeups::of("test-queue-a");
        wake("test-queue-a");
        wake("test-queue-a");
        // Both wakes are seen as one, and not missed for having come early.
        let woken = tokio::time::timeout(Duration::from_secs(1), wakeups.next()).await;
        assert_eq!(woken.ok().flatten(), Some(()));
        let again = tokio::time::timeout(Duration::from_millis(100), wakeups.next()).await;
        assert!(again.is_err(), "no second wake-up for one burst");
    }

    #[tokio::test]
    async fn a_delayed_task_wakes_its_queue_when_due() {
        let mut wakeups = Wakeups::of("test-queue-b");
        task_queued("test-queue-b", Some(Duration::from_millis(200)));
        let early = tokio::time::timeout(Duration::from_millis(100), wakeups.next()).await;
        assert!(early.is_err(), "not before it is due");
        let due = tokio::time::timeout(Duration::from_secs(2), wakeups.next()).await;
        assert_eq!(due.ok().flatten(), Some(()));
    }

    #[tokio::test]
    async fn other_queues_are_not_woken() {
        let mut wakeups = Wakeups::of("test-queue-c");
        wake("test-queue-d");
        let woken = tokio::time::timeout(Duration::from_millis(100), wakeups.next()).await;
        assert!(woken.is_err());
    }
}
