//! Reports: the merged JUnit file, the end-of-run summary and the timeline.

pub mod summary;
