//! Tags: key/value labels bound to volumes and snapshots, filterable in every list.

use disksnap_meta::{Batch, TagRow};

use crate::error::{Result, ServiceError};
use crate::ids;
use crate::model::{now_ms, Kind, Tag};
use crate::service::{Caller, Service};

impl Service {
    pub async fn create_tag(&self, caller: &Caller, key: &str, value: &str) -> Result<Tag> {
        self.check_account(caller)?;
        if key.trim().is_empty() || key.len() > 128 || value.len() > 128 {
            return Err(ServiceError::invalid("tag", "a tag key is 1 to 128 characters, its value at most 128"));
        }
        let row = TagRow {
            id: ids::new_id(),
            account: caller.account.clone(),
            key: key.to_string(),
            value: value.to_string(),
            create_time: now_ms(),
        };
        self.meta().commit(Batch { put_tags: vec![row.clone()], ..Default::default() }).await?;
        Ok(row.into())
    }

    pub async fn tags(&self, caller: &Caller) -> Result<Vec<Tag>> {
        self.check_account(caller)?;
        Ok(self.meta().tags(&caller.account).await?.into_iter().map(Tag::from).collect())
    }

    async fn tag_row(&self, caller: &Caller, id: &str) -> Result<TagRow> {
        let bare = self.parse_id(Kind::Tag, id)?;
        self.meta().tag(&caller.account, &bare).await?.ok_or_else(|| ServiceError::not_found(Kind::Tag, id))
    }

    /// The bare id of a volume or snapshot the caller owns.
    async fn taggable(&self, caller: &Caller, id: &str) -> Result<String> {
        if let Ok(s) = self.snapshot_row(caller, id).await {
            return Ok(s.id);
        }
        self.volume_row(caller, id).await.map(|v| v.id).map_err(|_| ServiceError::not_found(Kind::Snapshot, id))
    }

    /// Bind (tag id, resource id) pairs.
    pub async fn attach_tags(&self, caller: &Caller, pairs: &[(String, String)]) -> Result<()> {
        self.retag(caller, &[], pairs).await
    }

    pub async fn detach_tags(&self, caller: &Caller, pairs: &[(String, String)]) -> Result<()> {
        self.retag(caller, pairs, &[]).await
    }

    /// Detach some (tag, resource) pairs and attach others in one commit: replacing a key's
    /// value on several resources is all done or not at all, whatever instant a crash hits.
    pub async fn retag(&self, caller: &Caller, detach: &[(String, String)], attach: &[(String, String)]) -> Result<()> {
        self.check_account(caller)?;
        let mut batch = Batch::default();
        for (t, r) in detach {
            batch.unbind_tags.push((self.tag_row(caller, t).await?.id, self.taggable(caller, r).await?));
        }
        for (t, r) in attach {
            batch.bind_tags.push((self.tag_row(caller, t).await?.id, self.taggable(caller, r).await?));
        }
        Ok(self.meta().commit(batch).await?)
    }

    pub async fn delete_tags(&self, caller: &Caller, ids_: &[String]) -> Result<()> {
        self.check_account(caller)?;
        let mut batch = Batch::default();
        for t in ids_ {
            batch.delete_tags.push(self.tag_row(caller, t).await?.id);
        }
        Ok(self.meta().commit(batch).await?)
    }
}
