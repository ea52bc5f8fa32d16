//! One module per subcommand: its arguments and what it does.

pub mod bench;
pub mod check;
pub mod demo;
pub mod serve;
pub mod sim;
pub mod sync;
pub mod webhook;
pub mod worker;
