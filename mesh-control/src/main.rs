//! The `mesh-control` command line.

fn main() {
    eprintln!("mesh-control: work in progress");
}
