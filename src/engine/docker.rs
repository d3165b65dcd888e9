//! Docker engines through bollard.
pub struct DockerEngine;
