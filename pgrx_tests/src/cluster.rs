//! One throwaway PostgreSQL 15 server, run as the `postgres` OS user.

use crate::dirs::TestRemote;
use crate::query::error_detail;
use postgres::{Client, Config, NoTls};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Debian's PostgreSQL 15 binaries; `PGVC_PG_BIN` overrides for other layouts.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The server refuses to run as root, so when the tests run as root every server
/// command goes through this user (which the postgresql-15 package creates).
const PG_OS_USER: &str = "postgres";
/// How often a start is retried after a port collision or a not-yet-gone old server.
const START_ATTEMPTS: u32 = 8;
/// Set to keep the cluster directories after the test (for post-mortem reading).
const KEEP_ENV: &str = "PGVC_KEEP_CLUSTERS";

pub struct Cluster {
    /// The temp dir: holds `data/`, the server `log` and the unix socket.
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// The PostgreSQL bin directory this cluster runs (None: `PGVC_PG_BIN` or Debian's).
    bin: Option<PathBuf>,
}

impl Cluster {
    /// A new cluster with `shared_preload_libraries = 'pgvc'`.
    pub fn start() -> Cluster {
        Self::launch(true, &[])
    }

    /// Like [`Cluster::start`], with extra `postgresql.conf` lines appended last (so
    /// they win), e.g. `TimeZone = 'Asia/Tokyo'`.
    pub fn start_with(conf: &[&str]) -> Cluster {
        Self::launch(true, conf)
    }

    /// Like [`Cluster::start_with`], after the lines every server using `remote`
    /// needs (its credentials, for a bucket).
    pub fn start_for(remote: &dyn TestRemote, conf: &[&str]) -> Cluster {
        let mut all = remote.conf();
        all.extend(conf.iter().map(|s| s.to_string()));
        Self::launch(true, &all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A cluster that does not preload pgvc: tests of the harness itself, which must
    /// work before the extension is installed.
    pub fn start_without_pgvc() -> Cluster {
        Self::launch(false, &[])
    }

    /// The general form of the constructors above.
    pub fn launch(preload_pgvc: bool, extra_conf: &[&str]) -> Cluster {
        Self::launch_with_bin(None, preload_pgvc, extra_conf)
    }

    /// A cluster run by the PostgreSQL installation in `bin` (another copy of
    /// PostgreSQL 15, with another build of pgvc: the upgrade test).
    pub fn launch_with_bin(
        bin: Option<PathBuf>,
        preload_pgvc: bool,
        extra_conf: &[&str],
    ) -> Cluster {
        let dir = make_temp_dir();
        // From here on Drop removes the directory, whatever fails below.
        let mut cluster = Cluster {
            data: dir.join("data"),
            log: dir.join("log"),
            dir,
            port: 0,
            bin,
        };
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                // Only skips flushing initdb's own output; the server keeps fsync on.
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", describe(&out));
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", cluster.dir.display()),
        ];
        if preload_pgvc {
            conf.push("shared_preload_libraries = 'pgvc'".to_string());
        }
        conf.extend(extra_conf.iter().map(|s| s.to_string()));
        cluster.append_conf(&conf);
        cluster.start_server();
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A connection to database `postgres` as user `postgres`.
    pub fn connect(&self) -> Client {
        self.connect_db("postgres")
    }

    pub fn connect_db(&self, db: &str) -> Client {
        self.connect_to(db, "postgres")
    }

    /// After `kill -9` of a backend: if the kill caused a crash restart (the process
    /// was alive, not already exiting), the postmaster ends `survivor` (a session
    /// opened before) at once; then this waits for the server and connects again.
    /// Connecting before the postmaster noticed the death would give a session the
    /// restart ends too. If `survivor` lives on for 5 seconds, there was no crash
    /// (the backend had ended by itself) and it is returned.
    pub fn reconnect_after_crash(&self, mut survivor: Client) -> Client {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if survivor.simple_query("SELECT 1").is_err() {
                drop(survivor);
                return self.connect_when_ready(Duration::from_secs(60));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        survivor
    }

    /// Connects once the server accepts connections again (after a crash of one of its
    /// backends the postmaster reinitialises and refuses connections for a while).
    pub fn connect_when_ready(&self, timeout: Duration) -> Client {
        let deadline = Instant::now() + timeout;
        loop {
            let r = Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user("postgres")
                .dbname("postgres")
                .connect(NoTls);
            match r {
                Ok(c) => return c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!(
                    "server on port {} not ready: {e}\n{}",
                    self.port,
                    self.log_tail()
                ),
            }
        }
    }

    /// Connects to database `postgres` as `user` (trust authentication).
    pub fn connect_as(&self, user: &str) -> Client {
        self.connect_to("postgres", user)
    }

    /// A connection to `postgres` whose NOTICE and WARNING messages are collected in
    /// the returned list, as they arrive.
    pub fn connect_collecting_notices(
        &self,
    ) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let client = Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(30))
            .notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()))
            .connect(NoTls)
            .unwrap_or_else(|e| {
                panic!("cannot connect on port {}: {}", self.port, error_detail(&e))
            });
        (client, seen)
    }

    fn connect_to(&self, db: &str, user: &str) -> Client {
        Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(30))
            .connect(NoTls)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to {db} on port {}: {}\n{}",
                    self.port,
                    error_detail(&e),
                    self.log_tail()
                )
            })
    }

    /// SIGKILLs the postmaster (a crash, for recovery tests) and waits until it is gone.
    /// Its backends notice and exit by themselves; [`Cluster::restart`] waits for that.
    pub fn kill_postmaster(&self) {
        let pid = self.postmaster_pid().expect("the server is not running");
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
        // Wait until it is reaped, not only dead: pg_ctl takes a zombie for a live
        // server. Its parent is init, so reaping is prompt; a zombie that lingers
        // anyway is accepted after a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match process_state(pid) {
                None => return,
                Some('Z') if Instant::now() > deadline => return,
                Some(s) if s != 'Z' => {
                    assert!(
                        Instant::now() < deadline,
                        "postmaster {pid} survived SIGKILL"
                    )
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server if it runs (fast shutdown) and starts it again, also after
    /// [`Cluster::kill_postmaster`] (then it goes through crash recovery). The port
    /// stays the same unless it was taken meanwhile; reconnect via [`Cluster::connect`].
    pub fn restart(&mut self) {
        if self.postmaster_pid().is_some() {
            let out = self.pg_ctl(&["-w", "-m", "fast", "stop"]);
            assert!(out.status.success(), "stop failed: {}", describe(&out));
        }
        self.start_server();
    }

    /// Stops the server and starts it again with the installation in `bin` (None:
    /// the default one): the same data directory under another build.
    pub fn restart_with_bin(&mut self, bin: Option<PathBuf>) {
        if self.postmaster_pid().is_some() {
            let out = self.pg_ctl(&["-w", "-m", "fast", "stop"]);
            assert!(out.status.success(), "stop failed: {}", describe(&out));
        }
        self.bin = bin;
        self.start_server();
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!("--- server log {} (tail) ---\n{tail}", self.log.display())
    }

    /// The pid of a live postmaster, from `postmaster.pid` (left behind by a crash).
    fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        matches!(process_state(pid), Some(s) if s != 'Z').then_some(pid)
    }

    /// Starts the postmaster, retrying on what concurrent tests or a just-killed
    /// server can cause: another process grabbing our port between choosing and
    /// binding it, or backends of a killed postmaster still holding shared memory.
    fn start_server(&mut self) {
        for attempt in 1..=START_ATTEMPTS {
            if self.port == 0 {
                self.port = free_port();
                // Appended: the last `port` line in postgresql.conf wins.
                self.append_conf(&[format!("port = {}", self.port)]);
            }
            let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            let log = self.log.to_str().unwrap().to_string();
            let out = self.pg_ctl(&["-w", "-t", "120", "-l", &log, "start"]);
            if out.status.success() {
                return;
            }
            let new_log = fs::read(&self.log).unwrap_or_default();
            let new_log = String::from_utf8_lossy(&new_log[log_start as usize..]);
            let port_taken = new_log.contains("Address already in use");
            let old_server_lingers = new_log.contains("pre-existing shared memory block")
                || new_log.contains("lock file");
            if attempt == START_ATTEMPTS || !(port_taken || old_server_lingers) {
                panic!(
                    "cannot start PostgreSQL in {}: {}\n{}",
                    self.dir.display(),
                    describe(&out),
                    self.log_tail()
                );
            }
            if port_taken {
                self.port = 0;
            }
            std::thread::sleep(Duration::from_millis(200 * attempt as u64));
        }
    }

    /// Appends lines to `postgresql.conf` (read at the next start or reload).
    pub fn append_conf(&self, lines: &[String]) {
        use std::io::Write;
        let path = self.data.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        writeln!(f, "\n# added by pgvc-cluster-tests").unwrap();
        for line in lines {
            writeln!(f, "{line}").unwrap();
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["-D", self.data_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Our paths are ASCII (see `make_temp_dir`), so `&str` is safe and simpler.
    fn data_str(&self) -> &str {
        self.data.to_str().expect("ASCII path")
    }

    /// Runs a PostgreSQL binary as the server's OS user, in the cluster dir (the
    /// caller's working directory may not be readable by that user).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let bin = match &self.bin {
            Some(b) => b.join(program),
            None => Path::new(&pg_bin()).join(program),
        };
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", PG_OS_USER, "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway, and a fast shutdown could hang
        // on a backend a failed test left busy.
        let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("{KEEP_ENV}: kept {}", self.dir.display());
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn pg_bin() -> String {
    std::env::var("PGVC_PG_BIN").unwrap_or_else(|_| DEFAULT_PG_BIN.to_string())
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user; avoids a libc dependency for geteuid().
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A fresh directory `/tmp/pgvc-test-<pid>-<n>`, owned by the server's OS user.
/// Kept short: the unix socket path inside it must fit in 107 bytes.
fn make_temp_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/pgvc-test-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // Left over by an earlier, killed process with the same pid.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .arg(format!("{PG_OS_USER}:{PG_OS_USER}"))
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {} failed", dir.display());
        }
        return dir;
    }
}

/// A port that was free a moment ago (the kernel's pick for port 0). Another process
/// may take it before the server binds it; `start_server` retries then.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// The state letter of a process (`Z` for a zombie), `None` when there is none.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}
