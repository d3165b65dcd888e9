//! Reports: the merged JUnit file, the end-of-run summary and the timeline.

pub mod events;
pub mod progress;
pub mod summary;
pub mod timeline;
