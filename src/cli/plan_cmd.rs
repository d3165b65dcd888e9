//! TODO
pub async fn run(_a: super::PlanArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "plan: not implemented yet")
}
