//! The page generation read on the caller's thread (issue 16): a cached list page costs this
//! one read, and through the pool it was a hand-off to a connection's worker thread and back
//! (a wake-up each way, on 2 cores as much as the rest of the request). One connection of its
//! own, one statement prepared once, read under a mutex: microseconds, no thread switch.
//!
//! It reads the same file as the pool, in WAL mode, so it sees every commit made before the
//! read by any connection of any process, as the pool's connections do; it never writes.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::Mutex;

use libsqlite3_sys as ffi;

use crate::{MetaError, Result};

pub(crate) struct GenerationReader(Mutex<Conn>);

struct Conn {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
}

// SAFETY: the connection is opened in SQLite's multi-thread (NOMUTEX) mode and only ever
// used under the Mutex, by one thread at a time, which SQLite allows from any thread.
unsafe impl Send for Conn {}

fn error(db: *mut ffi::sqlite3, what: &str) -> MetaError {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by the connection.
    let msg = if db.is_null() {
        "out of memory".to_string()
    } else {
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }.to_string_lossy().into_owned()
    };
    MetaError::Db(sqlx::Error::Protocol(format!("page generation: {what}: {msg}")))
}

impl GenerationReader {
    /// Open `path` (after the migrations made the generation's table) and prepare `sql`, a
    /// read of one generation (one row, one integer column).
    pub(crate) fn open(path: &Path, sql: &CStr) -> Result<Self> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| MetaError::Db(sqlx::Error::Protocol("database path holds a NUL".into())))?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX;
        // SAFETY: valid C string and out-pointer; the handle is closed on every error path.
        let rc = unsafe { ffi::sqlite3_open_v2(cpath.as_ptr(), &mut db, flags, ptr::null()) };
        let mut conn = Conn { db, stmt: ptr::null_mut() };
        if rc != ffi::SQLITE_OK {
            return Err(error(conn.db, "open"));
        }
        // A reader in WAL mode waits only on a checkpoint's or recovery's brief locks.
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_busy_timeout(conn.db, 30_000) };
        // SAFETY: open handle, NUL-terminated SQL, out-pointer for the statement.
        let rc = unsafe { ffi::sqlite3_prepare_v2(conn.db, sql.as_ptr(), -1, &mut conn.stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(error(conn.db, "prepare"));
        }
        Ok(GenerationReader(Mutex::new(conn)))
    }

    /// The generation now.
    pub(crate) fn read(&self) -> Result<i64> {
        let conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the prepared statement of this open connection, used by this thread alone
        // (the lock); reset after the row so it holds no read transaction between calls.
        unsafe {
            let rc = ffi::sqlite3_step(conn.stmt);
            let out = match rc {
                ffi::SQLITE_ROW => Ok(ffi::sqlite3_column_int64(conn.stmt, 0)),
                _ => Err(error(conn.db, "step")),
            };
            ffi::sqlite3_reset(conn.stmt);
            out
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: finalize accepts null; the handle is closed once, after its statement.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
            ffi::sqlite3_close(self.db);
        }
    }
}
