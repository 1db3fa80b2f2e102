//! Rows of the engine's chunk index (migrations/0008_chunk_index.sql). The engine owns the
//! interface and its rules (crates/engine/src/chunk_index.rs); this file only stores rows, in
//! statements that keep those rules: a dedup lookup touches what it finds in the same
//! transaction, and GC's delete is conditional on `used_at`, so SQLite's single writer orders
//! the two. The PostgreSQL backend's statements are in crate::postgres::chunk_index.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::sqlite::SqliteMeta;
use crate::Result;

pub type Digest = [u8; 32];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack: String,
    pub offset: u64,
    pub len: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRow {
    pub name: String,
    pub size: u64,
    pub doomed_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    pub digest: Digest,
    pub location: ChunkLocation,
    pub used_at: i64,
}

/// (digest, offset, len, raw len if known) of one chunk in a pack.
pub type PackChunk = (Digest, u64, u32, Option<u32>);

/// The index summed (see the engine's `ChunkTotals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkSums {
    pub chunks: u64,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    pub raw_unknown: u64,
}

/// Statements per IN list: far below SQLite's 32 766 bound variables, and small enough that
/// one statement never holds the write lock for long.
const PART: usize = 500;

#[async_trait]
pub trait ChunkIndexRows: Send + Sync {
    /// About `lookups` random lookups are coming (a capture's dedup queries): a store on a
    /// local file may read the file in ahead (sqlite/prefetch.rs). Best effort; returns at once.
    fn chunk_expect_lookups(&self, _lookups: usize) {}
    async fn chunk_find(&self, digests: &[Digest], touch_at: Option<i64>) -> Result<Vec<Option<ChunkLocation>>>;
    async fn chunk_add_pack(&self, pack: &str, size: u64, chunks: &[PackChunk], now: i64) -> Result<()>;
    async fn chunk_packs(&self) -> Result<Vec<PackRow>>;
    async fn chunk_no_packs(&self) -> Result<bool>;
    async fn chunk_all(&self) -> Result<Vec<ChunkRow>>;
    async fn chunk_sums(&self) -> Result<ChunkSums>;
    async fn chunk_remove_unused(&self, digests: &[Digest], cutoff: i64) -> Result<Vec<Digest>>;
    async fn chunk_remove(&self, digests: &[Digest]) -> Result<()>;
    async fn chunk_move(&self, from: &str, to: &str, chunks: &[PackChunk]) -> Result<()>;
    async fn pack_doom(&self, pack: &str, at: i64) -> Result<()>;
    async fn pack_forget(&self, pack: &str) -> Result<()>;
    async fn chunk_clear(&self) -> Result<()>;
}

fn digest_of(v: Vec<u8>) -> Digest {
    let mut d = [0u8; 32];
    if v.len() == 32 {
        d.copy_from_slice(&v);
    }
    d
}

fn in_list<'a>(qb: &mut QueryBuilder<'a, Sqlite>, digests: &'a [Digest]) {
    let mut sep = qb.separated(", ");
    for d in digests {
        sep.push_bind(&d[..]);
    }
    qb.push(")");
}

/// Add to `found` the location of each of `digests` the index has.
async fn select_locations<'c, E>(
    db: E,
    digests: &[Digest],
    found: &mut std::collections::HashMap<Digest, ChunkLocation>,
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT c.digest, p.name, c.offset, c.len FROM chunk_index c JOIN packs p ON p.id = c.pack_id \
         WHERE c.digest IN (",
    );
    in_list(&mut qb, digests);
    for row in qb.build().fetch_all(db).await? {
        let loc =
            ChunkLocation { pack: row.get(1), offset: row.get::<i64, _>(2) as u64, len: row.get::<i64, _>(3) as u32 };
        found.insert(digest_of(row.get(0)), loc);
    }
    Ok(())
}

#[async_trait]
impl ChunkIndexRows for SqliteMeta {
    fn chunk_expect_lookups(&self, lookups: usize) {
        crate::sqlite::prefetch::read_ahead_for(&self.path, lookups);
    }

    async fn chunk_find(&self, digests: &[Digest], touch_at: Option<i64>) -> Result<Vec<Option<ChunkLocation>>> {
        // Read first, without the write lock: most of a capture's lookups are for chunks the
        // store does not have yet, and a miss needs no touch (the capture writes its own copy).
        // Before, every lookup opened with the touch's UPDATE and so queued at SQLite's write
        // lock behind the capture's own pack commits, whose busy handler sleeps up to 100 ms
        // a try: 0.14-0.75 s of a 4 GiB scattered incremental went to 64 such lookups.
        let mut found = std::collections::HashMap::with_capacity(digests.len());
        for part in digests.chunks(PART) {
            select_locations(&self.pool, part, &mut found).await?;
        }
        let Some(at) = touch_at else {
            return Ok(digests.iter().map(|d| found.get(d).cloned()).collect());
        };
        if found.is_empty() {
            return Ok(vec![None; digests.len()]);
        }
        // Touch what was found and read it again in the same transaction, whose first
        // statement takes the write lock: an entry GC deleted since the read above is missing
        // from this answer, so the capture writes a new copy instead of referencing it.
        let hits: Vec<Digest> = found.into_keys().collect();
        let mut touched = std::collections::HashMap::with_capacity(hits.len());
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        for part in hits.chunks(PART) {
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE chunk_index SET used_at = ");
            qb.push_bind(at).push(" WHERE digest IN (");
            in_list(&mut qb, part);
            qb.build().execute(&mut *tx).await?;
            select_locations(&mut *tx, part, &mut touched).await?;
        }
        tx.commit().await?;
        Ok(digests.iter().map(|d| touched.get(d).cloned()).collect())
    }

    async fn chunk_add_pack(&self, pack: &str, size: u64, chunks: &[PackChunk], now: i64) -> Result<()> {
        // In this process's writer queue (SqliteMeta::writer), not at SQLite's busy handler.
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO packs (name, size) VALUES (?1, ?2) RETURNING id")
            .bind(pack)
            .bind(size as i64)
            .fetch_one(&mut *tx)
            .await?;
        for part in chunks.chunks(PART / 6) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO chunk_index (digest, pack_id, offset, len, used_at, raw_len) ",
            );
            qb.push_values(part, |mut b, (d, offset, len, raw)| {
                b.push_bind(&d[..])
                    .push_bind(id)
                    .push_bind(*offset as i64)
                    .push_bind(*len as i64)
                    .push_bind(now)
                    .push_bind(raw.map(|r| r as i64));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chunk_packs(&self) -> Result<Vec<PackRow>> {
        let rows = sqlx::query("SELECT name, size, doomed_at FROM packs").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| PackRow { name: r.get(0), size: r.get::<i64, _>(1) as u64, doomed_at: r.get(2) })
            .collect())
    }

    async fn chunk_no_packs(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM packs)").fetch_one(&self.pool).await?;
        Ok(!any)
    }

    async fn chunk_all(&self) -> Result<Vec<ChunkRow>> {
        let rows = sqlx::query(
            "SELECT c.digest, p.name, c.offset, c.len, c.used_at FROM chunk_index c JOIN packs p ON p.id = c.pack_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ChunkRow {
                digest: digest_of(r.get(0)),
                location: ChunkLocation {
                    pack: r.get(1),
                    offset: r.get::<i64, _>(2) as u64,
                    len: r.get::<i64, _>(3) as u32,
                },
                used_at: r.get(4),
            })
            .collect())
    }

    async fn chunk_sums(&self) -> Result<ChunkSums> {
        let r = sqlx::query("SELECT COUNT(*), COALESCE(SUM(len), 0), COALESCE(SUM(raw_len), 0), COUNT(*) - COUNT(raw_len) FROM chunk_index").fetch_one(&self.pool).await?;
        Ok(ChunkSums {
            chunks: r.get::<i64, _>(0) as u64,
            stored_bytes: r.get::<i64, _>(1) as u64,
            raw_bytes: r.get::<i64, _>(2) as u64,
            raw_unknown: r.get::<i64, _>(3) as u64,
        })
    }

    async fn chunk_remove_unused(&self, digests: &[Digest], cutoff: i64) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for part in digests.chunks(PART) {
            // One statement: the condition and the delete are atomic against a touch.
            let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM chunk_index WHERE used_at < ");
            qb.push_bind(cutoff).push(" AND digest IN (");
            in_list(&mut qb, part);
            qb.push(" RETURNING digest");
            for row in qb.build().fetch_all(&self.pool).await? {
                out.push(digest_of(row.get(0)));
            }
        }
        Ok(out)
    }

    async fn chunk_remove(&self, digests: &[Digest]) -> Result<()> {
        for part in digests.chunks(PART) {
            let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM chunk_index WHERE digest IN (");
            in_list(&mut qb, part);
            qb.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn chunk_move(&self, from: &str, to: &str, chunks: &[PackChunk]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (d, offset, len, raw) in chunks {
            sqlx::query(
                "UPDATE chunk_index SET pack_id = (SELECT id FROM packs WHERE name = ?1), offset = ?2, len = ?3, \
                 raw_len = COALESCE(?6, raw_len) WHERE digest = ?4 AND pack_id = (SELECT id FROM packs WHERE name = ?5)",
            )
            .bind(to)
            .bind(*offset as i64)
            .bind(*len as i64)
            .bind(&d[..])
            .bind(from)
            .bind(raw.map(|r| r as i64))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pack_doom(&self, pack: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE packs SET doomed_at = COALESCE(doomed_at, ?1) WHERE name = ?2")
            .bind(at)
            .bind(pack)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pack_forget(&self, pack: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Entries still naming it would break the foreign key; GC only forgets empty packs,
        // so this removes nothing in practice.
        sqlx::query("DELETE FROM chunk_index WHERE pack_id = (SELECT id FROM packs WHERE name = ?1)")
            .bind(pack)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM packs WHERE name = ?1").bind(pack).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn chunk_clear(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chunk_index").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM packs").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn touch_add_find_conditional_remove_move() {
        for tm in crate::testing::backends().await {
            eprintln!("backend: {:?}", tm.kind);
            let m = tm.chunks();
            let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
            // a's raw length unknown (a chunk of an old v1 pack)
            m.chunk_add_pack("p1", 100, &[(a, 0, 10, None), (b, 10, 20, Some(4096))], 1000).await.unwrap();
            // a second copy of b in another pack: the first one wins
            m.chunk_add_pack("p2", 50, &[(b, 0, 20, Some(4096)), (c, 20, 5, Some(100))], 1000).await.unwrap();
            let sums = m.chunk_sums().await.unwrap();
            assert_eq!(sums, ChunkSums { chunks: 3, stored_bytes: 35, raw_bytes: 4196, raw_unknown: 1 });
            let got = m.chunk_find(&[a, b, c, [9; 32]], None).await.unwrap();
            assert_eq!(got[1], Some(ChunkLocation { pack: "p1".into(), offset: 10, len: 20 }));
            assert_eq!(got[2].as_ref().unwrap().pack, "p2");
            assert_eq!(got[3], None);
            // a touched entry survives a delete whose cutoff is older than the touch
            m.chunk_find(&[a], Some(5000)).await.unwrap();
            let gone = m.chunk_remove_unused(&[a, b], 2000).await.unwrap();
            assert_eq!(gone, vec![b]);
            assert_eq!(m.chunk_find(&[b], None).await.unwrap()[0], None);
            // a repack learns a's raw length from its frame header
            m.chunk_move("p1", "p2", &[(a, 40, 10, Some(50))]).await.unwrap();
            assert_eq!(m.chunk_find(&[a], None).await.unwrap()[0].as_ref().unwrap().pack, "p2");
            let sums = m.chunk_sums().await.unwrap();
            assert_eq!(sums, ChunkSums { chunks: 2, stored_bytes: 15, raw_bytes: 150, raw_unknown: 0 });
            m.pack_doom("p1", 7).await.unwrap();
            m.pack_doom("p1", 9).await.unwrap();
            assert!(!m.chunk_no_packs().await.unwrap());
            let packs = m.chunk_packs().await.unwrap();
            assert_eq!(packs.iter().find(|p| p.name == "p1").unwrap().doomed_at, Some(7));
            m.pack_forget("p1").await.unwrap();
            assert_eq!(m.chunk_packs().await.unwrap().len(), 1);
            assert_eq!(m.chunk_all().await.unwrap().len(), 2);
            m.chunk_clear().await.unwrap();
            assert!(m.chunk_all().await.unwrap().is_empty());
            assert!(m.chunk_no_packs().await.unwrap());
        }
    }

    /// A touching lookup answers hits and misses in the caller's order and touches only the
    /// hits (it reads before it writes: a miss takes no write lock).
    #[tokio::test]
    async fn a_touching_lookup_touches_just_what_it_finds() {
        for tm in crate::testing::backends().await {
            let m = tm.chunks();
            let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
            m.chunk_add_pack("p1", 100, &[(a, 0, 10, None), (b, 10, 20, None)], 1000).await.unwrap();
            let got = m.chunk_find(&[c, b, c, a], Some(5000)).await.unwrap();
            assert_eq!(got[0], None);
            assert_eq!(got[1], Some(ChunkLocation { pack: "p1".into(), offset: 10, len: 20 }));
            assert_eq!(got[2], None);
            assert_eq!(got[3].as_ref().unwrap().offset, 0);
            let mut used: Vec<(Digest, i64)> =
                m.chunk_all().await.unwrap().into_iter().map(|r| (r.digest, r.used_at)).collect();
            used.sort();
            assert_eq!(used, vec![(a, 5000), (b, 5000)], "{:?}", tm.kind);
            assert_eq!(m.chunk_find(&[c], Some(6000)).await.unwrap(), vec![None]);
        }
    }

    /// GC's conditional delete racing a touching lookup of the same entry: either the lookup
    /// finds it and it survives, or GC removes it and the lookup reports it missing. Never
    /// found and removed (the capture would reference a chunk that is gone): the read that
    /// runs before the touch is not trusted, the touch's own transaction reads again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lookup_racing_gc_never_returns_what_gc_removed() {
        for tm in crate::testing::backends().await {
            let m = tm.chunks();
            let (mut found, mut removed) = (0, 0);
            for round in 0..200u8 {
                let d = [round.wrapping_add(100); 32];
                m.chunk_add_pack(&format!("r{round}"), 10, &[(d, 0, 10, None)], 1000).await.unwrap();
                let (lookup, gc) = (m.clone(), m.clone());
                let lookup = tokio::spawn(async move { lookup.chunk_find(&[d], Some(5000)).await.unwrap() });
                let gc = tokio::spawn(async move { gc.chunk_remove_unused(&[d], 2000).await.unwrap() });
                let (got, gone) = (lookup.await.unwrap(), gc.await.unwrap());
                assert!(got[0].is_none() || gone.is_empty(), "round {round}: found {got:?} and GC removed {gone:?}");
                let still = m.chunk_find(&[d], None).await.unwrap()[0].is_some();
                assert_eq!(still, gone.is_empty(), "round {round}");
                found += got[0].is_some() as u32;
                removed += !gone.is_empty() as u32;
            }
            eprintln!("{:?}: lookup first {found} times, GC first {removed} times", tm.kind);
        }
    }
}
