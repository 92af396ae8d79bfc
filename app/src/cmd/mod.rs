//! One module per subcommand, each with a `run` that `main` calls; `pipeline` (`list --pipeline`) and
//! `zerocopy` (`check --zero-copy`) are parts of `list` and `check`. A command turns its options into what it
//! runs; no command calls another's `run`: the viewers (`view`, `kms-view`, `check --zero-copy`) each make a
//! `crate::show::Plan` and run it with `crate::show::run`.

pub mod check;
pub mod controls;
pub mod doctor;
pub mod dump;
pub mod kms;
pub mod list;
pub mod manual;
pub mod pipeline;
pub mod serve;
pub mod view;
pub mod zerocopy;
