//! History: what each test took in earlier runs, kept in `target/shard/history.json` and
//! seeded from JUnit files, and the estimates for tests never seen.
