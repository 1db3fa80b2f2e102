//! `disksnap group …`: snapshot groups (several volumes at one snapshot time, one object).

use super::*;

fn group_json(g: &SnapshotGroup) -> Value {
    json!({
        "id": display(Kind::SnapshotGroup, &g.id),
        "name": g.name,
        "description": g.description,
        "zone": g.zone,
        "instance": g.instance_id.as_deref().map(|i| display(Kind::Instance, i)),
        "status": g.status.as_str(),
        "transition": g.transition,
        "progress": g.progress,
        "create_time": time(&g.create_time),
        "volumes": g.volume_ids.iter().map(|v| display(Kind::Volume, v)).collect::<Vec<_>>(),
        "snapshots": g.snapshots.iter().map(|s| display(Kind::Snapshot, &s.id)).collect::<Vec<_>>(),
    })
}

impl Cmd {
    pub(super) async fn group(&self, c: GroupCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        let listing = matches!(c, GroupCmd::List);
        let shown = match c {
            GroupCmd::Create { volumes, instance, exclude, name, description } => {
                let req = CreateSnapshotGroup { volumes, instance, exclude, name, description };
                let (job, g) = svc.create_snapshot_group(who, req).await.map_err(se)?;
                wait(svc, who, &job, "snapshotting").await?;
                vec![svc.snapshot_group(who, &g.id).await.map_err(se)?]
            }
            GroupCmd::List => svc.snapshot_groups(who).await.map_err(se)?,
            GroupCmd::Show { id } => vec![svc.snapshot_group(who, &id).await.map_err(se)?],
            GroupCmd::Modify { id, name, description } => {
                vec![svc.modify_snapshot_group(who, &id, name.as_deref(), description.as_deref()).await.map_err(se)?]
            }
            GroupCmd::Delete { id } => {
                let (job, kept) = svc.delete_snapshot_group(who, &id).await.map_err(se)?;
                let job = wait(svc, who, &job, "deleting").await?;
                let kept: Vec<String> = kept.iter().map(|s| display(Kind::Snapshot, s)).collect();
                if self.json {
                    print_json(&json!({"job": job_json(&job), "kept": kept}));
                } else {
                    println!("group {id} deleted with its snapshots (job {})", display(Kind::Job, &job.id));
                    if !kept.is_empty() {
                        println!("kept {} (an image was made from each; delete the image first)", kept.join(" "));
                    }
                }
                return Ok(0);
            }
            GroupCmd::Rollback { id } => {
                let job = svc.rollback_snapshot_group(who, &id).await.map_err(se)?;
                let job = wait(svc, who, &job, "rolling back").await?;
                let g = svc.snapshot_group(who, &id).await.map_err(se)?;
                let vols: Vec<String> = g.volume_ids.iter().map(|v| display(Kind::Volume, v)).collect();
                self.done(&job, &format!("volumes {} rolled back to group {id}", vols.join(" ")));
                return Ok(0);
            }
        };
        if self.json {
            let out: Vec<Value> = shown.iter().map(group_json).collect();
            print_json(&if listing { Value::Array(out) } else { out[0].clone() });
        } else {
            let mut t = Table::new(&["ID", "NAME", "STATUS", "CREATED", "VOLUMES", "SNAPSHOTS"]);
            for g in &shown {
                let j = group_json(g);
                let list = |k: &str| {
                    j[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "))
                };
                let status = if g.transition.is_empty() { g.status.as_str().to_string() } else { g.transition.clone() };
                t.row(vec![
                    display(Kind::SnapshotGroup, &g.id),
                    g.name.clone(),
                    status,
                    time(&g.create_time),
                    list("volumes").unwrap_or_default(),
                    list("snapshots").unwrap_or_default(),
                ]);
            }
            t.print();
        }
        Ok(0)
    }
}
