//! TODO
pub async fn nextest(_a: super::NextestRunArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "run: not implemented yet")
}
pub async fn go(_a: super::GoArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "go: not implemented yet")
}
pub async fn exec(_a: super::ExecArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "exec: not implemented yet")
}
