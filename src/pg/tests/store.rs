//! The shared chunk-store suite, run against the table-backed store.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::spi::with_spi;
    use crate::pg::store::PgStore;
    use crate::store::{testsuite, ChunkStore};
    use pgrx::prelude::*;

    #[pg_test]
    fn pg_store_passes_the_chunk_store_suite() {
        with_spi(|| {
            testsuite::run_all(&mut PgStore::new);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}", e.message));
    }

    #[pg_test]
    fn flushed_chunks_are_in_the_table_and_verified() {
        with_spi(|| {
            let mut s = PgStore::new();
            let h = s.put(b"hello chunk".to_vec()).unwrap();
            s.flush().unwrap();
            let fresh = PgStore::new();
            assert_eq!(&*fresh.get(&h).unwrap(), b"hello chunk");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM vc.chunks WHERE data = 'hello chunk'::bytea")
                .unwrap(),
            Some(1)
        );
    }
}
