//! The shared chunk-store suite, run against the table-backed store.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::spi::with_spi;
    use crate::pg::store::PgStore;
    use crate::store::{hash_of, testsuite, ChunkStore, StoreError};
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

    #[pg_test]
    fn get_many_reads_the_table_in_one_batch_and_verifies() {
        with_spi(|| {
            let mut s = PgStore::new();
            let hs: Vec<_> = (0..600u32)
                .map(|i| s.put(format!("bulk chunk {i}").into_bytes()).unwrap())
                .collect();
            s.flush().unwrap();
            crate::pg::store::clear_cache();
            let fresh = PgStore::new();
            let mut asked = hs.clone();
            asked.reverse();
            asked.push(hash_of(b"absent"));
            let got = fresh.get_many(&asked).unwrap();
            assert!(got[600].is_none(), "an absent chunk is None");
            for (i, c) in got[..600].iter().enumerate() {
                let want = format!("bulk chunk {}", 599 - i);
                assert_eq!(
                    c.as_deref(),
                    Some(want.as_bytes()),
                    "chunk {i} in input order"
                );
            }
            // A row whose bytes no longer hash to its name is refused, not returned.
            crate::pg::spi::exec(
                "UPDATE vc.chunks SET data = 'tampered'::bytea WHERE data = 'bulk chunk 7'::bytea",
                vec![],
            )
            .unwrap();
            crate::pg::store::clear_cache();
            match fresh.get_many(&hs) {
                Err(StoreError::Corrupt { hash, .. }) => assert_eq!(hash, hs[7]),
                other => panic!("expected Corrupt, got {:?}", other.map(|v| v.len())),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}", e.message));
    }
}
