//! The `keel` binary: the `ops` library's [`ops::App`] with Keel's built-in
//! strategy kinds, the same code path a user's own binary runs.

fn main() -> std::process::ExitCode {
    ops::App::new().main()
}
