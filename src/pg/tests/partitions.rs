//! Partitioned tables: writes through the parent or straight into any partition.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn partitioned_tables_log_writes_to_every_partition() {
        run("CREATE TABLE pt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
             CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (100);
             CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
             CREATE TABLE pt_2a PARTITION OF pt_2 FOR VALUES FROM (100) TO (200);
             INSERT INTO pt VALUES (1, 'a'), (150, 'b');
             SELECT vc.track('pt');
             SELECT vc.commit('one');");
        // Writes through the parent, a partition and a sub-partition are all seen.
        run(
            "INSERT INTO pt VALUES (2, 'c'); INSERT INTO pt_1 VALUES (3, 'd');
             UPDATE pt_2a SET v = 'B'; DELETE FROM pt_1 WHERE id = 1;",
        );
        assert_eq!(
            text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status()").unwrap(),
            "2/1/1"
        );
        run("SELECT vc.commit('two')");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        // TRUNCATE of one partition is seen too.
        run("TRUNCATE pt_2a");
        assert_eq!(int("SELECT deleted FROM vc.status()"), 1);
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT count(*) FROM pt"), 3);
        // A partition created later gets its triggers at the next commit; until then
        // the table is compared in full, so nothing is missed.
        run(
            "CREATE TABLE pt_3 PARTITION OF pt FOR VALUES FROM (200) TO (300);
             INSERT INTO pt_3 VALUES (250, 'late');",
        );
        assert_eq!(int("SELECT inserted FROM vc.status()"), 1);
        run("SELECT vc.commit('three')");
        run("INSERT INTO pt_3 VALUES (251, 'later')");
        assert_eq!(int("SELECT inserted FROM vc.status()"), 1);
        run("SELECT vc.untrack('pt')");
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'vc_track_%'"),
            0
        );
    }
}
