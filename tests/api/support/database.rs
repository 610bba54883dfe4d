//! A database per test: a fresh SQLite file or PostgreSQL database for each test, on the local
//! PostgreSQL server or a throwaway cluster, and `backend_tests!`, which runs a test on both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crowsnest::store::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::free_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::database::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::database::Backend::Postgres).await
                }
            }
        )*
    };
}

/// A database that exists for one test and is dropped afterwards.
pub struct TestDb {
    pub url: DatabaseUrl,
    raw_url: String,
    cleanup: DbCleanup,
}

enum DbCleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        tokio::task::spawn_blocking(move || Self::create(backend))
            .await
            .unwrap()
    }

    fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let raw_url = dir.path().join("crowsnest.db").to_str().unwrap().to_owned();
                Self {
                    url: DatabaseUrl::parse(&raw_url).unwrap(),
                    raw_url,
                    cleanup: DbCleanup::Sqlite(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url().to_owned();
                let name = format!("crowsnest_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url).unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let raw_url = with_database(&admin_url, &name);
                Self {
                    url: DatabaseUrl::parse(&raw_url).unwrap(),
                    raw_url,
                    cleanup: DbCleanup::Postgres { admin_url, name },
                }
            }
        }
    }

    pub fn raw_url(&self) -> &str {
        &self.raw_url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let DbCleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn with_database(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A PostgreSQL server to create test databases on: `CROWSNEST_TEST_POSTGRES_URL`, else the local
/// server on 127.0.0.1:5432, else a throwaway cluster started from the installed binaries. When none
/// can be had the tests fail, saying why; they never pass by skipping.
pub fn postgres_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("CROWSNEST_TEST_POSTGRES_URL") {
            if let Err(e) = PgConnection::establish(&url) {
                panic!("CROWSNEST_TEST_POSTGRES_URL={url} does not answer: {e}");
            }
            return url;
        }
        let local = "postgres://postgres@127.0.0.1:5432/postgres?connect_timeout=3";
        if PgConnection::establish(local).is_ok() {
            return local.to_owned();
        }
        match start_throwaway_cluster() {
            Ok(url) => url,
            Err(e) => panic!("no PostgreSQL for the tests: nothing answers on 127.0.0.1:5432 and a throwaway cluster could not be started: {e}"),
        }
    })
}

fn start_throwaway_cluster() -> Result<String, String> {
    let bindir = postgres_bindir()?;
    remove_stale_clusters();
    let dir = std::env::temp_dir().join(format!("crowsnest-test-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let as_root = is_root();
    if as_root {
        // initdb refuses to run as root; the cluster belongs to the postgres user.
        run(Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir))?;
    }
    let data = dir.join("data");
    let mut initdb = as_user(as_root, &bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
    run(&mut initdb)?;
    let port = free_port();
    let mut postgres = as_user(as_root, &bindir.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The parent-death signal fires when the spawning *thread* ends, so spawn from a thread that
    // lives as long as the test process: the server stops when the tests end, however they end.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spawned = postgres.spawn().map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send(spawned);
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgConnection::establish(&url) {
            Ok(_) => return Ok(url),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("the throwaway cluster did not start: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn as_user(as_root: bool, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if as_root {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.args(["--pdeathsig", "TERM", "--"]).arg(program);
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn postgres_bindir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL's server binaries are not installed (apt-get install postgresql)".to_owned()
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("crowsnest-test-pg-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
