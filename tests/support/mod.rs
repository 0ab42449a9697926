//! Helpers shared by the integration test binaries; each binary includes them with `mod support;`.

pub mod slack_emulator;
