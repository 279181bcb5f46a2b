//! Webhook signatures (filled in below).
