//! Reports: the merged JUnit file, live progress, the end-of-run summary, the HTML timeline
//! and the JSON event stream.

pub mod events;
pub mod jobs;
pub mod junit;
pub mod progress;
#[cfg(test)]
mod sample;
pub mod stats;
pub mod style;
pub mod summary;
pub mod timeline;
