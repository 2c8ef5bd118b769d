//! Where findings and counts go besides the terminal and the report: a Prometheus endpoint.

pub mod metrics;
