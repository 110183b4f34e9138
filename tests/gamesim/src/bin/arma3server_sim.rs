//! `arma3server-sim`: a stand-in for arma3server (see the crate docs).

fn main() {}
