//! TODO
pub async fn run(_a: super::HostsArgs) -> u8 {
    super::fail(crate::exit::BAD_INPUT, "hosts: not implemented yet")
}
