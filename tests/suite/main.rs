//! The VM suite: runs inside the test-bed VM (tests/vm/suite) against real drivers. One module per area.
//! Every test starts with `require_vm()`, so this binary fails, never passes, outside the VM.

mod capture;
mod demo;
mod examples;
mod faults;
mod kms;
mod mjpeg;
mod pattern;
mod pipewire;
mod pipewire_serve;
mod render;
mod share;
mod smoke;
mod soak;
mod user;
mod validation;
mod view;
