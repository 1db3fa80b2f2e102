//! The backends every meta test runs on: SQLite in a temporary directory, and PostgreSQL when
//! `DISKSNAP_TEST_PG_URL` names a server (scripts/test.sh starts a throwaway one with
//! scripts/pg.sh; `DISKSNAP_TEST_PG=skip` runs without). Each PostgreSQL test gets a database
//! of its own on that server, so tests run in parallel as on SQLite.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::chunk_index::ChunkIndexRows;
use crate::filter::SnapshotFilter;
use crate::{MetaStore, PgMeta, SqliteMeta};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Pg,
}

// A few of these per test: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Concrete {
    Sqlite(Arc<SqliteMeta>, Arc<tempfile::TempDir>),
    Pg(Arc<PgMeta>, PgConnectOptions),
}

pub(crate) struct TestMeta {
    pub kind: Kind,
    concrete: Concrete,
}

impl std::ops::Deref for TestMeta {
    type Target = dyn MetaStore;
    fn deref(&self) -> &Self::Target {
        match &self.concrete {
            Concrete::Sqlite(m, _) => m.as_ref(),
            Concrete::Pg(m, _) => m.as_ref(),
        }
    }
}

impl TestMeta {
    pub fn arc(&self) -> Arc<dyn MetaStore> {
        match &self.concrete {
            Concrete::Sqlite(m, _) => m.clone(),
            Concrete::Pg(m, _) => m.clone(),
        }
    }

    pub fn chunks(&self) -> Arc<dyn ChunkIndexRows> {
        match &self.concrete {
            Concrete::Sqlite(m, _) => m.clone(),
            Concrete::Pg(m, _) => m.clone(),
        }
    }

    /// The same database opened again, as a restarted server opens it (a new pool; SQLite's
    /// file, PostgreSQL's database, both already migrated).
    pub async fn reopen(&self) -> TestMeta {
        match &self.concrete {
            Concrete::Sqlite(_, dir) => {
                let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
                TestMeta { kind: Kind::Sqlite, concrete: Concrete::Sqlite(Arc::new(m), dir.clone()) }
            }
            Concrete::Pg(_, opts) => {
                let m = PgMeta::connect_with(opts.clone()).await.unwrap();
                TestMeta { kind: Kind::Pg, concrete: Concrete::Pg(Arc::new(m), opts.clone()) }
            }
        }
    }

    /// A fresh `COUNT(*)` of the filter's matches, past every count helper.
    pub async fn fresh_count(&self, f: &SnapshotFilter) -> i64 {
        match &self.concrete {
            Concrete::Sqlite(m, _) => {
                let mut q = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM snapshots");
                crate::sqlite::snapshots::snapshot_where(&mut q, f);
                q.build_query_scalar().fetch_one(&m.pool).await.unwrap()
            }
            Concrete::Pg(m, _) => {
                let mut q = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM snapshots");
                crate::postgres::snapshot_where(&mut q, f, false);
                q.build_query_scalar().fetch_one(&m.pool).await.unwrap()
            }
        }
    }
}

/// The server tests run on PostgreSQL against, if any.
pub(crate) fn pg_url() -> Option<String> {
    if std::env::var("DISKSNAP_TEST_PG").as_deref() == Ok("skip") {
        return None;
    }
    std::env::var("DISKSNAP_TEST_PG_URL").ok().filter(|u| !u.is_empty())
}

/// A new, empty database on the test server, its schema migrated, and how to reach it.
pub(crate) async fn fresh_pg(url: &str) -> (PgMeta, PgConnectOptions) {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "dsmeta_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000
    );
    let admin: PgConnectOptions = url.parse().expect("DISKSNAP_TEST_PG_URL is a postgres:// URL");
    let mut conn: sqlx::PgConnection =
        sqlx::Connection::connect_with(&admin).await.expect("connect to DISKSNAP_TEST_PG_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    sqlx::Connection::close(conn).await.ok();
    let opts = admin.database(&name);
    (PgMeta::connect_with(opts.clone()).await.expect("migrate a fresh PostgreSQL database"), opts)
}

/// SQLite, then PostgreSQL when a server is configured (else a SKIP line).
pub(crate) async fn backends() -> Vec<TestMeta> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteMeta::open(&dir.path().join("m.db")).await.unwrap());
    let mut all = vec![TestMeta { kind: Kind::Sqlite, concrete: Concrete::Sqlite(sqlite, Arc::new(dir)) }];
    match pg_url() {
        Some(url) => {
            let (m, opts) = fresh_pg(&url).await;
            all.push(TestMeta { kind: Kind::Pg, concrete: Concrete::Pg(Arc::new(m), opts) })
        }
        None => eprintln!(
            "SKIP PostgreSQL: DISKSNAP_TEST_PG_URL is not set (scripts/pg.sh start; eval \"$(scripts/pg.sh env)\")"
        ),
    }
    all
}
