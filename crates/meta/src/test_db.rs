//! Test support for every crate that tests on PostgreSQL (this crate's backends, the service,
//! the dialects through `disksnap_service::testing`): a fresh database on the test server.

/// A new, empty database on the PostgreSQL test server named by `DISKSNAP_TEST_PG_URL`
/// (scripts/pg.sh starts one), as a URL (the service's `database_url`); None, with a
/// SKIP line naming `test`, when no server is configured or `DISKSNAP_TEST_PG=skip`.
pub async fn fresh_pg_database(test: &str) -> Option<String> {
    let url = std::env::var("DISKSNAP_TEST_PG_URL").ok().filter(|v| !v.is_empty());
    let Some(url) = url.filter(|_| std::env::var("DISKSNAP_TEST_PG").as_deref() != Ok("skip")) else {
        eprintln!("SKIP {test} on PostgreSQL: DISKSNAP_TEST_PG_URL is not set");
        return None;
    };
    let admin: sqlx::postgres::PgConnectOptions = url.parse().expect("DISKSNAP_TEST_PG_URL is a postgres:// URL");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.subsec_nanos();
    let prefix: String = test.chars().filter(|c| c.is_ascii_alphanumeric()).take(24).collect();
    // (The counter: two tests of one process may ask within the same nanosecond.)
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{}_{}_{n}_{nanos}", prefix.to_ascii_lowercase(), std::process::id());
    let mut c: sqlx::PgConnection =
        sqlx::Connection::connect_with(&admin).await.expect("connect to DISKSNAP_TEST_PG_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("create a test database");
    sqlx::Connection::close(c).await.ok();
    Some(sqlx::ConnectOptions::to_url_lossy(&admin.database(&name)).to_string())
}
