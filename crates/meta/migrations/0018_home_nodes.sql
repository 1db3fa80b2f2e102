-- A cluster's volumes live on one node each (their files are on its disk): `home_node` is that
-- node's name, and a job that moves a volume's bytes carries it in `node`, so only that node
-- runs it (README "Cluster"). NULL on both: no home (one machine, or a volume made by a command
-- that is not a node), any process on the data dir may run the job, as before.
ALTER TABLE volumes ADD COLUMN home_node TEXT;
ALTER TABLE jobs ADD COLUMN node TEXT;
