//! Local processes: the embedded default when no engine is reachable.
pub struct LocalEngine;
