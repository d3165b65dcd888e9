//! JUnit XML as a format: a reader that takes every flavour we meet (nextest, gotestsum,
//! go-junit-report, Surefire) and a writer that always produces schema-valid output.
