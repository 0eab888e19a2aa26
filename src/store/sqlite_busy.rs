//! How a SQLite connection waits for the write lock another connection holds.
//!
//! SQLite's own busy handler (what `busy_timeout` installs) sleeps 1, 2, 5, 10, 15, 20,
//! 25, 25, 25, 50, 50, then 100 ms between tries, while our write transactions hold the
//! lock for well under a millisecond. With many merchants the job workers' connections
//! queue for the lock all the time, so each waiter slept for milliseconds after the lock
//! was free: at 100 merchants the drain used half of the two cores and the connections'
//! threads spent about 1.8 s asleep in every second (strace: 6,300 sleeps of 5.8 ms in 20 s).
//!
//! This handler tries again after 20 us and doubles the pause up to 1 ms, giving up after
//! the same total wait as before. Written by hand because neither sqlx nor SQLite offer a
//! finer-grained busy wait; it is the one place where the store calls SQLite's C API.
use std::os::raw::{c_int, c_void};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// The longest a statement waits for the lock before it fails with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const FIRST_PAUSE: Duration = Duration::from_micros(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(1);

/// The pause before try `attempt + 1` (SQLite counts the tries of one wait from 0).
pub fn pause(attempt: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1u32 << attempt.min(16))
        .min(LONGEST_PAUSE)
}

/// Whether a wait that has made `attempt` tries so far may try again: the pauses so far
/// add up to less than `BUSY_TIMEOUT`.
pub fn may_wait_more(attempt: u32) -> bool {
    // The doubling pauses add up to at most 2 x LONGEST_PAUSE before the pause reaches
    // LONGEST_PAUSE, then each adds LONGEST_PAUSE: a bound that needs no state.
    let doubling = 2 * LONGEST_PAUSE;
    LONGEST_PAUSE.saturating_mul(attempt) < BUSY_TIMEOUT.saturating_sub(doubling)
}

/// Tries made after finding the lock held, since the process started (read by the tests).
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// SQLite calls this on the connection's own thread (sqlx runs each SQLite connection on
/// a thread of its own), so sleeping blocks no async task.
extern "C" fn wait_for_lock(_: *mut c_void, attempt: c_int) -> c_int {
    let attempt = u32::try_from(attempt).unwrap_or(0);
    if !may_wait_more(attempt) {
        return 0;
    }
    std::thread::sleep(pause(attempt));
    RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    1
}

/// Installs the handler on a freshly opened connection (replacing the `busy_timeout` one).
pub async fn install(connection: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is the open connection the locked handle guards for this call; the
    // handler is a plain function that keeps no pointer and touches no connection.
    let code = unsafe { ffi::sqlite3_busy_handler(raw, Some(wait_for_lock), std::ptr::null_mut()) };
    if code == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!("SQLite refused the busy handler (code {code})").into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that finds the lock held waits in this handler and goes through once the
    /// holder commits.
    #[tokio::test]
    async fn a_writer_finding_the_lock_held_retries_until_it_is_free() {
        let (_dir, store, pool) = crate::store::temp_sqlite_store(2).await;
        let pool = &pool;
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(pool)
            .await
            .expect("create");
        let mut lock = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .expect("take the lock");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *lock)
            .await
            .expect("write while holding");
        let before = RETRIES.load(std::sync::atomic::Ordering::Relaxed);
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(
                async move { sqlx::query("INSERT INTO t VALUES (2)").execute(&pool).await },
            )
        };
        // Long enough for the waiter to find the lock held a few times.
        tokio::time::sleep(Duration::from_millis(50)).await;
        lock.commit().await.expect("release the lock");
        waiter
            .await
            .expect("the waiter ran")
            .expect("the write went through");
        assert!(RETRIES.load(std::sync::atomic::Ordering::Relaxed) > before);
        store.close().await;
    }

    #[test]
    fn pauses_double_from_twenty_microseconds_up_to_a_millisecond() {
        let pauses: Vec<u64> = (0..8).map(|a| pause(a).as_micros() as u64).collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(pause(u32::MAX), LONGEST_PAUSE);
    }

    #[test]
    fn the_wait_gives_up_after_about_the_busy_timeout() {
        let total = |attempts: u32| (0..attempts).map(pause).sum::<Duration>();
        let last = (0..u32::MAX).find(|a| !may_wait_more(*a)).expect("a limit");
        assert!(total(last) <= BUSY_TIMEOUT, "{:?}", total(last));
        assert!(
            total(last) >= BUSY_TIMEOUT - Duration::from_millis(10),
            "{:?}",
            total(last)
        );
    }
}
