//! Optional integrations, one module per feature.

#[cfg(feature = "rayon")]
mod rayon;
#[cfg(feature = "serde")]
mod serde;
#[cfg(feature = "zeroize")]
mod zeroize;
