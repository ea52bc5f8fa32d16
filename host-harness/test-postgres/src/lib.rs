//! A throwaway PostgreSQL server for tests.
//!
//! [`TestPostgres::start`] creates a cluster in a temporary folder (`initdb`), starts it on a free
//! loopback port with its socket in that folder (`pg_ctl start`), and stops it and removes the
//! folder when dropped (`pg_ctl stop -m immediate`). Each test gets its own server, so tests never
//! see each other's rows and a failing test leaves nothing behind.
//!
//! The server comes from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`).
//! `.ci/run` installs it; on a machine without it, the first start installs it when it runs as
//! root with `apt-get`, and otherwise fails saying what to install.
//!
//! PostgreSQL refuses to run as root. Run as root (as CI is), the cluster belongs to the
//! `postgres` user the Debian package creates, and its programs run through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A running throwaway server. Dropping it stops the server and removes its files.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    owner: Option<String>,
}

/// Where the server's programs are, found (or installed) once per process.
fn bin_dir() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(found) = find_bin_dir() {
            return Ok(found);
        }
        install()?;
        find_bin_dir().ok_or_else(|| "postgresql was installed but initdb is not found".into())
    })
    .clone()
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Installs Debian's `postgresql` package, when this process may.
fn install() -> Result<(), String> {
    let missing = "PostgreSQL's server is not installed: install Debian's `postgresql` package \
                   (`apt-get install postgresql`), as .ci/run does";
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(missing.into());
    }
    eprintln!("bbdc-test-postgres: installing Debian's postgresql package for the tests");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "postgresql",
    ];
    if apt(&install) || (apt(&["update", "-q"]) && apt(&install)) {
        Ok(())
    } else {
        Err(format!("{missing} (apt-get install failed)"))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A free loopback port (free when asked; the server binds it a moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl TestPostgres {
    /// Creates and starts a server, or says why it could not.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("bbdc-pg-")
            .tempdir()
            .map_err(|e| format!("temporary folder: {e}"))?;
        let owner = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &owner {
            let chown = Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            check("chown", &chown)?;
        }
        let mut server = Self {
            dir,
            bin,
            port: 0,
            owner,
        };
        let data = server.data_dir();
        let initdb = server
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "bbdc",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        check("initdb", &initdb)?;
        // A port taken between asking and binding makes the start fail; try a few.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(why) => last = why,
            }
        }
        Err(format!("pg_ctl start failed: {last}"))
    }

    /// Starts the cluster on its port.
    fn launch(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let started = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("start")
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if started.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}; log: {}",
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            ))
        }
    }

    /// Stops the server as a crash would (`immediate`: connections cut, nothing flushed that
    /// was not committed); [`TestPostgres::resume`] starts it again on the same port, with
    /// everything committed before.
    pub fn halt(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Starts again a server [`TestPostgres::halt`] stopped.
    pub fn resume(&self) -> Result<(), String> {
        self.launch()
    }

    /// Starts a server, panicking with the reason when it cannot (for tests).
    pub fn start_or_panic() -> Self {
        match Self::start() {
            Ok(server) => server,
            Err(why) => panic!("throwaway PostgreSQL: {why}"),
        }
    }

    /// The connection URL of database `postgres` as user `bbdc` (no password: trust on
    /// loopback).
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The connection URL of database `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://bbdc@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL: one server can hold several isolated
    /// databases (one per tenant in a test, say).
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_of(name))
    }

    /// Runs `sql` with `psql` in database `db` and returns what it printed (unaligned, tuples
    /// only): lets a test look at rows without a client crate of its own.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(self.url_of(db))
            .args(["-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        check("psql", &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command running server program `name`, as the cluster's owner.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match &self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.halt();
    }
}

fn check(what: &str, out: &Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_answers_and_stops_when_dropped() {
        let pg = TestPostgres::start_or_panic();
        let url = pg.create_database("one").expect("creates a database");
        assert!(url.ends_with("/one"));
        assert_eq!(pg.psql("one", "SELECT 40 + 2").expect("answers"), "42");
        pg.halt();
        assert!(pg.psql("one", "SELECT 1").is_err(), "halted");
        pg.resume().expect("starts again");
        assert_eq!(
            pg.psql("one", "SELECT 40 + 2").expect("kept its data"),
            "42"
        );
        let port = pg.port();
        drop(pg);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server stopped with its handle"
        );
    }
}
