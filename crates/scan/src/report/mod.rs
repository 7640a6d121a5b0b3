//! Audit report (placeholder).
