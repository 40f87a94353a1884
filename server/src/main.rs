//! The `furrow-server` command: serve the sync API, and the operator commands that manage
//! villages and assistants. The commands are stable because scripts depend on them: wrong
//! arguments print a clear error and exit with status 2.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use furrow_server::auth::PasswordCost;
use furrow_server::blobs::FileBlobStore;
use furrow_server::platform::{self, ServerClock};
use furrow_server::store::{self, Database};
use furrow_server::{open_database, sync, AppState, Error, Settings, Storage};

/// Furrow's sync server and its operator commands.
#[derive(Parser, Debug)]
#[command(name = "furrow-server", version, about = "Furrow (田垄) sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the sync API.
    Serve(ServeArgs),
    /// Manage villages.
    Village {
        #[command(subcommand)]
        command: VillageCommand,
    },
    /// Manage assistants' accounts.
    Assistant {
        #[command(subcommand)]
        command: AssistantCommand,
    },
    /// Manage the accounts of the platform's admins, who sign in like assistants and whose
    /// tokens open the /admin/v1 endpoints.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Purge tombstoned rows and their change history older than a horizon of at least 180
    /// days; devices whose pull cursor is older then re-snapshot (reset: history_pruned).
    Prune(PruneArgs),
    /// Give the history a fresh random epoch. Run it after restoring the database from a
    /// backup, before serving it: every device then re-snapshots (reset: server_restored) and
    /// re-sends what the restored database lacks.
    NewEpoch(NewEpochArgs),
}

#[derive(Args, Debug)]
struct NewEpochArgs {
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args, Debug)]
struct PruneArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Purge rows deleted more than this many days ago (at least 180, the longest time a device
    /// is expected to work offline).
    #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
    older_than_days: i64,
}

/// Where the data lives: a data directory (SQLite and blobs) or a PostgreSQL URL.
#[derive(Args, Debug, Clone)]
struct StorageArgs {
    /// The data directory (SQLite database and blobs). Defaults to $FURROW_DATA_DIR, then
    /// $XDG_DATA_HOME/furrow-server, then ~/.local/share/furrow-server.
    #[arg(long, env = "FURROW_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user@host/db); the data directory then holds only blobs.
    #[arg(long, env = "FURROW_DATABASE_URL")]
    database_url: Option<String>,
}

impl StorageArgs {
    fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(base) = std::env::var_os("XDG_DATA_HOME").filter(|value| !value.is_empty()) {
            return PathBuf::from(base).join("furrow-server");
        }
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local/share/furrow-server"),
            None => PathBuf::from("furrow-server-data"),
        }
    }

    fn storage(&self) -> Storage {
        match &self.database_url {
            Some(url) => Storage::Postgres { url: url.clone(), schema: None },
            None => Storage::Sqlite { data_dir: self.data_dir() },
        }
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: std::net::SocketAddr,
    /// A file holding the bootstrap token of the /admin/v1 endpoints (at least 32 characters;
    /// FURROW_ADMIN_TOKEN also works). Admins otherwise sign in with their own accounts.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible to every user of the machine.
    #[arg(long, hide = true)]
    admin_token: Option<String>,
    /// Behind a reverse proxy: count failed sign-ins by the address in X-Forwarded-For.
    #[arg(long)]
    trust_forwarded_for: bool,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an admin's account.
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        /// The login name: 3 to 64 letters, digits, '.', '_', '-' or '@'.
        #[arg(long)]
        username: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum VillageCommand {
    /// Add a village (or rename an existing one).
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        /// The 12-digit administrative division code.
        #[arg(long)]
        code: String,
        /// The village's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum AssistantCommand {
    /// Create an assistant's account.
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        /// The login name: 3 to 64 letters, digits, '.', '_', '-' or '@'.
        #[arg(long)]
        username: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Villages to assign (codes); repeat or list several.
        #[arg(long = "village", num_args = 1..)]
        villages: Vec<String>,
    },
    /// Assign more villages to an assistant.
    Assign {
        #[command(flatten)]
        storage: StorageArgs,
        /// The login name.
        #[arg(long)]
        username: String,
        /// Villages to assign (codes).
        #[arg(long = "village", num_args = 1.., required = true)]
        villages: Vec<String>,
        /// Remove these villages instead of adding them.
        #[arg(long)]
        remove: bool,
    },
    /// Disable an assistant's account and revoke its tokens.
    Disable {
        #[command(flatten)]
        storage: StorageArgs,
        /// The login name.
        #[arg(long)]
        username: String,
        /// Enable the account again instead.
        #[arg(long)]
        enable: bool,
    },
    /// Set a new password (read from standard input) and revoke the account's tokens.
    ResetPassword {
        #[command(flatten)]
        storage: StorageArgs,
        /// The login name.
        #[arg(long)]
        username: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// Exit status for wrong arguments or input, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FURROW_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let usage = matches!(&error, Error::Api { status, .. } if status.is_client_error()) || matches!(error, Error::Duplicate(_));
            match &error {
                Error::Api { message, .. } => eprintln!("error: {message}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(if usage { USAGE } else { 1 })
        }
    }
}

fn read_password(username: &str) -> Result<String, Error> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    platform::check_password(username, &password)?;
    Ok(password)
}

fn open(storage: &StorageArgs) -> Result<Arc<dyn Database>, Error> {
    open_database(&storage.storage())
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Village { command: VillageCommand::Add { storage, code, name } } => {
            platform::check_village(&code, &name)?;
            let database = open(&storage)?;
            let clock = ServerClock::new();
            let new = store::write(database.as_ref(), |tx| platform::add_village(tx, &clock, &code, &name))?;
            println!("{} village {code} ({name})", if new { "added" } else { "renamed" });
            Ok(())
        }
        Command::Assistant { command } => assistant(command),
        Command::Admin { command: AdminCommand::Add { storage, username, .. } } => {
            platform::check_username(&username)?;
            let password = read_password(&username)?;
            let database = open(&storage)?;
            let hash = platform::new_password_hash(&username, &password, PasswordCost::STANDARD)?;
            store::write(database.as_ref(), |tx| {
                let id = platform::add_admin(tx, &username, &hash)?;
                operator_audit(tx, &username, "admin account created")?;
                Ok(id)
            })?;
            println!("added admin {username}");
            Ok(())
        }
        Command::Prune(args) => prune(args),
        Command::NewEpoch(args) => new_epoch(args),
    }
}

/// Records an operator command that changed an account or its villages in the audit log.
fn operator_audit(tx: &mut store::Tx<'_>, username: &str, detail: &str) -> Result<(), Error> {
    tx.audit(&store::AuditEntry {
        id: 0,
        at: furrow_contract::hlc::wall_ms(),
        kind: "scope_change".into(),
        actor: "operator".into(),
        address: "-".into(),
        subject: username.to_owned(),
        detail: detail.to_owned(),
    })
}

fn new_epoch(args: NewEpochArgs) -> Result<(), Error> {
    let database = open(&args.storage)?;
    let now = furrow_contract::hlc::wall_ms();
    let epoch = store::write(database.as_ref(), |tx| sync::new_epoch(tx, now))?;
    println!(
        "the history now has epoch {epoch}; every device will take a fresh snapshot at its next pull \
         (server_restored) and re-send what this database lacks"
    );
    Ok(())
}

fn prune(args: PruneArgs) -> Result<(), Error> {
    // Refused before the database is opened: a short horizon is a usage error.
    sync::check_history_days(args.older_than_days)?;
    let database = open(&args.storage)?;
    let now = furrow_contract::hlc::wall_ms();
    let done = store::write(database.as_ref(), |tx| sync::prune_history(tx, args.older_than_days, now))?;
    println!(
        "pruned {} deleted rows and {} change-log entries older than {} days (history before sequence {}); \
         devices with an older cursor will re-snapshot (history_pruned)",
        done.rows_purged, done.changes_purged, args.older_than_days, done.horizon_seq
    );
    Ok(())
}

fn assistant(command: AssistantCommand) -> Result<(), Error> {
    match command {
        AssistantCommand::Add { storage, username, villages, .. } => {
            platform::check_username(&username)?;
            let password = read_password(&username)?;
            let database = open(&storage)?;
            store::read(database.as_ref(), |tx| platform::require_villages(tx, &villages))?;
            let hash = platform::new_password_hash(&username, &password, PasswordCost::STANDARD)?;
            let detail = format!("account created with villages [{}]", villages.join(", "));
            let id = store::write(database.as_ref(), |tx| {
                let id = platform::add_assistant(tx, &username, &hash, &villages)?;
                operator_audit(tx, &username, &detail)?;
                Ok(id)
            })?;
            println!("added assistant {username} (id {id})");
            Ok(())
        }
        AssistantCommand::Assign { storage, username, villages, remove } => {
            let database = open(&storage)?;
            store::write(database.as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                if !remove {
                    platform::require_villages(tx, &villages)?;
                }
                for code in &villages {
                    if remove {
                        tx.unassign(id, code)?;
                    } else {
                        tx.assign(id, code)?;
                    }
                }
                operator_audit(tx, &username, &format!("{} villages [{}]", if remove { "removed" } else { "assigned" }, villages.join(", ")))
            })?;
            println!("{} {} for {username}", if remove { "removed" } else { "assigned" }, villages.join(", "));
            Ok(())
        }
        AssistantCommand::Disable { storage, username, enable } => {
            let database = open(&storage)?;
            store::write(database.as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                tx.set_disabled(id, !enable)?;
                if !enable {
                    tx.delete_user_tokens(id)?;
                }
                operator_audit(tx, &username, if enable { "account enabled" } else { "account disabled, its sessions revoked" })
            })?;
            println!("{} {username}", if enable { "enabled" } else { "disabled" });
            Ok(())
        }
        AssistantCommand::ResetPassword { storage, username, .. } => {
            let password = read_password(&username)?;
            let database = open(&storage)?;
            let hash = platform::new_password_hash(&username, &password, PasswordCost::STANDARD)?;
            store::write(database.as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                tx.set_password(id, &hash)?;
                tx.delete_user_tokens(id)?;
                operator_audit(tx, &username, "password reset, its sessions revoked")
            })?;
            println!("reset the password of {username}");
            Ok(())
        }
    }
}

/// The bootstrap admin token: from the file given, or from FURROW_ADMIN_TOKEN, never from the
/// command line, where every user of the machine sees it in the process list.
fn admin_token(args: &ServeArgs) -> Result<Option<String>, Error> {
    if args.admin_token.is_some() {
        return Err(Error::bad_request(
            "invalid_argument",
            "--admin-token is no longer accepted: a token on the command line is visible in the process list; \
             put it in a file and pass --admin-token-file, or set FURROW_ADMIN_TOKEN",
        ));
    }
    let token = match &args.admin_token_file {
        Some(path) => Some(std::fs::read_to_string(path)?.trim().to_owned()),
        None => std::env::var("FURROW_ADMIN_TOKEN").ok().map(|token| token.trim().to_owned()),
    };
    let token = token.filter(|token| !token.is_empty());
    if let Some(token) = &token {
        furrow_server::auth::check_admin_token(token)?;
    }
    Ok(token)
}

fn serve(args: ServeArgs) -> Result<(), Error> {
    let admin_token = admin_token(&args)?;
    let database = open(&args.storage)?;
    let blobs = Arc::new(FileBlobStore::new(&args.storage.data_dir().join("blobs"))?);
    let settings = Settings {
        admin_token,
        trust_forwarded_for: args.trust_forwarded_for,
        ..Settings::default()
    };
    let state = AppState::new(database, blobs, settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        tracing::info!(address = %listener.local_addr()?, backend = state.database().name(), "serving");
        let housekeeper = state.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                interval.tick().await;
                let state = housekeeper.clone();
                match tokio::task::spawn_blocking(move || state.housekeeping()).await {
                    Ok(Ok(done)) => tracing::info!(tokens = done.tokens, batches = done.batches, uploads = done.uploads.len(), "housekeeping"),
                    Ok(Err(error)) => tracing::warn!(%error, "housekeeping failed"),
                    Err(error) => tracing::warn!(%error, "housekeeping task failed"),
                }
            }
        });
        furrow_server::http::serve_until(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok::<(), Error>(())
    })?;
    // Storage work still running on blocking threads gets a moment to finish; the process does
    // not wait on it for ever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM, so requests in flight finish before the process exits.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
