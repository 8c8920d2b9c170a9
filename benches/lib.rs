//! The load generator behind `ingot-engine bench` ([`load`]). The criterion
//! benchmarks' shared fixtures live beside them in `benches/fixtures`: they use the
//! engine's internals (its `testing` feature), which the binary, depending on this
//! crate for the load generator, must not build.

pub mod load;
