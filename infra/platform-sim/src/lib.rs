//! The platform simulator (being written).
