//! `sandflow ui`: serves the web console (issue 14) over the execution store, on loopback
//! unless told otherwise. A non-loopback address needs `--token` (or `--insecure-public`,
//! which says what it means): the console shows every recorded input, output and log.

use super::console::{router, Access};
use super::store::open_existing_store;
use anyhow::Context;
use clap::Args;
use sandflow_host::store::StoreRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
/// Serve the web console: recorded executions, their trees and logs, in a browser
pub struct UiArgs {
    /// The execution store: a file or postgres://USER[:PASSWORD]@HOST[:PORT]/DB (default: $SANDFLOW_DB, else ~/.local/share/sandflow/sandflow.db)
    #[arg(long)]
    db: Option<PathBuf>,
    /// Where to listen; port 0 takes a free one (the URL printed names it)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A token every request must carry (`Authorization: Bearer <token>` or `?token=`)
    #[arg(long)]
    token: Option<String>,
    /// Serve a non-loopback address without a token: anyone who reaches it reads everything
    #[arg(long)]
    insecure_public: bool,
}

pub fn ui(args: UiArgs) -> anyhow::Result<u8> {
    let token = args.token.filter(|t| !t.is_empty());
    let loopback = args.addr.ip().is_loopback();
    if !loopback && token.is_none() && !args.insecure_public {
        anyhow::bail!(
            "refusing to serve the console on {}, which is not a loopback address, without a \
             token: anyone who reaches it could read every recorded input, output and log \
             (pass --token <secret>, or --insecure-public if that is what you want)",
            args.addr
        );
    }
    if !loopback && token.is_none() {
        eprintln!(
            "sandflow: warning: serving the console on {} without a token (--insecure-public): \
             anyone who reaches it can read every recorded execution",
            args.addr
        );
    }
    let store = Arc::new(open_existing_store(args.db)?);
    // The actions start runs with this very binary.
    let exe = std::env::current_exe().context("finding the sandflow binary to start runs with")?;
    let access = Access {
        token: token.clone(),
        loopback_only: loopback && token.is_none(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the console's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let bound = listener
            .local_addr()
            .with_context(|| format!("reading the address bound for {}", args.addr))?;
        let query = token.map(|_| "?token=<token>").unwrap_or("");
        super::print_stdout(&format!(
            "sandflow console on http://{bound}/{query} (store {}); Ctrl-C stops it",
            store.location()
        ));
        axum::serve(listener, router(store, access, exe))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .with_context(|| format!("serving the console on {bound}"))
    })?;
    Ok(0)
}
