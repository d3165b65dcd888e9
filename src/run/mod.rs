//! Running a plan: queue shards onto hosts' free slots, retry what infrastructure broke,
//! enforce timeouts, and always remove what was created.
