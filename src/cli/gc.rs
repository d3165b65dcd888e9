//! TODO
pub async fn run(_a: super::GcArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "gc: not implemented yet")
}
