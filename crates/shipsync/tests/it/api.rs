//! The JSON API (placeholder).
