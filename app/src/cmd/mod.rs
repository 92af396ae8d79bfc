//! One module per subcommand.

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
