//! How a SQLite connection waits for the write lock. SQLite's own busy handler (what
//! `busy_timeout` installs) sleeps in growing steps, 1, 2, 5, 10 ... up to 100 ms, so under
//! a stream of short writes, the job queue's and ours, a waiter sleeps far longer than the
//! lock is held and throughput falls while the cores idle. This handler tries again every
//! 200 µs, up to the same 30 s. It runs on the connection's own worker thread (sqlx gives
//! each SQLite connection one), so its sleep holds up nothing else. Written by hand: sqlx
//! offers only `busy_timeout`.
use std::os::raw::{c_int, c_void};
use std::time::Duration;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

const RETRY_EVERY: Duration = Duration::from_micros(200);
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// SQLite calls this with the number of times it already did for this lock; 0 tells it to
/// give up with SQLITE_BUSY.
unsafe extern "C" fn wait_briefly(_: *mut c_void, tries: c_int) -> c_int {
    let waited = RETRY_EVERY * tries.max(0) as u32;
    if waited >= GIVE_UP_AFTER {
        return 0;
    }
    std::thread::sleep(RETRY_EVERY);
    1
}

/// Replaces the connection's busy handler (and with it `busy_timeout`) by `wait_briefly`.
pub async fn install(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's open handle, taken out of its worker thread for the
    // call by `lock_handle`; the handler is a plain function that keeps no state.
    let code = unsafe { ffi::sqlite3_busy_handler(db, Some(wait_briefly), std::ptr::null_mut()) };
    if code != ffi::SQLITE_OK {
        return Err(sqlx::Error::Configuration(
            format!("could not set SQLite's busy handler (code {code})").into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_waits_and_then_gives_up_after_thirty_seconds() {
        // SAFETY: the handler reads neither argument but the count.
        unsafe {
            assert_eq!(wait_briefly(std::ptr::null_mut(), 0), 1);
            let last = (GIVE_UP_AFTER.as_micros() / RETRY_EVERY.as_micros()) as c_int;
            assert_eq!(wait_briefly(std::ptr::null_mut(), last - 1), 1);
            assert_eq!(wait_briefly(std::ptr::null_mut(), last), 0);
        }
    }
}
