//! Where findings and counts go besides the terminal and the report: a Prometheus endpoint
//! and an audit log tagged with the platform.

pub mod audit;
pub mod metrics;
pub mod platform;
