//! Reports: the merged JUnit file, live progress, the end-of-run summary, the HTML timeline
//! and the JSON event stream.

#![warn(missing_docs)]

pub mod ci;
pub mod events;
pub mod jobs;
pub mod junit;
pub mod meta;
pub mod progress;
#[cfg(test)]
pub(crate) mod sample;
pub mod stats;
pub mod style;
pub mod summary;
pub mod timeline;
