//! `arma3server_x64`: the Arma 3 simulator under the real executable name, for
//! end-to-end tests that start it through the agent's allow-list.

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
            eprintln!("arma3server_x64 (simulator): cannot start the runtime: {e}");
            1
        }
    };
    std::process::exit(code);
}
