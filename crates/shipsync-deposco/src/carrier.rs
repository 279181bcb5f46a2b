//! Carrier names (filled in below).
