//! netrunbook
