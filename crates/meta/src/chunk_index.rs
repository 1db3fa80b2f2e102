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

#[async_trait]
impl ChunkIndexRows for SqliteMeta {
    async fn chunk_find(&self, digests: &[Digest], touch_at: Option<i64>) -> Result<Vec<Option<ChunkLocation>>> {
        let mut found = std::collections::HashMap::with_capacity(digests.len());
        let mut tx = self.pool.begin().await?;
        for part in digests.chunks(PART) {
            if let Some(at) = touch_at {
                // First statement of the transaction: it takes the write lock at once, so the
                // read below sees exactly the entries this touch kept alive.
                let mut qb = QueryBuilder::<Sqlite>::new("UPDATE chunk_index SET used_at = ");
                qb.push_bind(at).push(" WHERE digest IN (");
                in_list(&mut qb, part);
                qb.build().execute(&mut *tx).await?;
            }
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT c.digest, p.name, c.offset, c.len FROM chunk_index c JOIN packs p ON p.id = c.pack_id \
                 WHERE c.digest IN (",
            );
            in_list(&mut qb, part);
            for row in qb.build().fetch_all(&mut *tx).await? {
                let d = digest_of(row.get(0));
                let loc = ChunkLocation {
                    pack: row.get(1),
                    offset: row.get::<i64, _>(2) as u64,
                    len: row.get::<i64, _>(3) as u32,
                };
                found.insert(d, loc);
            }
        }
        tx.commit().await?;
        Ok(digests.iter().map(|d| found.get(d).cloned()).collect())
    }

    async fn chunk_add_pack(&self, pack: &str, size: u64, chunks: &[PackChunk], now: i64) -> Result<()> {
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
}
