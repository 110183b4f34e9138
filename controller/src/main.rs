//! `languard`: the controller. Its service arrives with the "Controller core" issue.

fn main() {
    println!("languard {}", env!("CARGO_PKG_VERSION"));
}
