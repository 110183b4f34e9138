//! `languard-agent`: the per-host agent. Supervision and the controller link arrive
//! with the "Agent" and "Fleet link" issues.

fn main() {
    println!("languard-agent {}", env!("CARGO_PKG_VERSION"));
}
