//! `arma3server-sim`: a stand-in for arma3server (see the crate docs, or `--help`).

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let code = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(languard_gamesim::arma::server::run(argv, env)),
        Err(e) => {
            eprintln!("arma3server-sim: cannot start the runtime: {e}");
            1
        }
    };
    std::process::exit(code);
}
