//! A real S3-compatible server for tests: `moto` in server mode (PyPI `moto[server]`,
//! installed by `scripts/setup.sh` into `/opt/pgvc-moto`). Started on a free loopback
//! port, killed when dropped. Compiled unconditionally so the cluster tests can use
//! it too (it only runs a program; nothing in pgvc's own paths calls it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
}

/// Where `moto_server` is: `$PGVC_MOTO_SERVER`, the venv `scripts/setup.sh` makes, or
/// the PATH.
pub fn moto_server() -> String {
    if let Ok(p) = std::env::var("PGVC_MOTO_SERVER") {
        return p;
    }
    let venv = "/opt/pgvc-moto/bin/moto_server";
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "moto_server".to_string()
}

impl Moto {
    /// Starts a server and waits until it answers. Panics (a test fixture) when it
    /// cannot: tests that need S3 must not pass without it.
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// A server that checks credentials after its first `free` requests (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT`): it knows no access key, so every signed
    /// request after those is refused (403, `InvalidAccessKeyId`).
    pub fn start_checking_credentials(free: u32) -> Moto {
        Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free.to_string())])
    }

    fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let bin = moto_server();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (the S3 test server; scripts/setup.sh installs it): {e}")
            });
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{bin} did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.raw("PUT", &format!("/{bucket}"), b"");
        assert!(status == 200, "creating bucket {bucket}: HTTP {status}");
    }

    /// One plain HTTP request; returns the status code.
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).expect("request");
        s.write_all(body).expect("request body");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Stops the server (as a crash would: no goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a server (moto), to fail it on cue without losing what it
/// holds (moto keeps its data in memory): `stall` holds every byte in both
/// directions until released (a slow server), `cut` drops every connection and
/// refuses new ones (a dead server), `cut_after` does so once that many request
/// bytes went through (a server dying in the middle of an upload).
pub struct Proxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    target: u16,
    stalled: std::sync::atomic::AtomicBool,
    down: std::sync::atomic::AtomicBool,
    closed: std::sync::atomic::AtomicBool,
    strip_conditions: std::sync::atomic::AtomicBool,
    cut_after: std::sync::atomic::AtomicU64,
    upstream: std::sync::atomic::AtomicU64,
    conns: std::sync::Mutex<Vec<TcpStream>>,
}

impl ProxyState {
    fn cut(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.down.store(true, SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Copies `from` to `to` until either side closes or the proxy is cut.
    fn pump(&self, mut from: TcpStream, mut to: TcpStream, request: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while self.stalled.load(SeqCst) && !self.down.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.down.load(SeqCst) {
                break;
            }
            if request && self.strip_conditions.load(SeqCst) {
                hide_conditions(&mut buf[..n]);
            }
            if request {
                let total = self.upstream.fetch_add(n as u64, SeqCst) + n as u64;
                if total > self.cut_after.load(SeqCst) {
                    self.cut();
                    break;
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Both);
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let state = std::sync::Arc::new(ProxyState {
            target,
            stalled: AtomicBool::new(false),
            down: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            strip_conditions: AtomicBool::new(false),
            cut_after: AtomicU64::new(u64::MAX),
            upstream: AtomicU64::new(0),
            conns: std::sync::Mutex::new(Vec::new()),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering::SeqCst;
            for c in listener.incoming() {
                if s.closed.load(SeqCst) {
                    break;
                }
                let Ok(client) = c else { continue };
                if s.down.load(SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", s.target)) else {
                    continue;
                };
                let clones = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
                    continue;
                };
                s.conns.lock().unwrap().extend([c3, s3]);
                let (a, b) = (s.clone(), s.clone());
                std::thread::spawn(move || a.pump(client, server, true));
                std::thread::spawn(move || b.pump(s2, c2, false));
            }
        });
        Proxy { port, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Holds (true) or releases (false) all traffic.
    pub fn stall(&self, on: bool) {
        self.state
            .stalled
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// From now on the server behind ignores conditional writes, as some
    /// S3-compatible stores do: `If-Match` and `If-None-Match` are renamed in every
    /// request on the way (to headers of the same length, so nothing else moves;
    /// moto does not check signatures).
    pub fn ignore_conditional_writes(&self) {
        self.state
            .strip_conditions
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The server "dies": every connection is dropped, new ones are refused.
    pub fn cut(&self) {
        self.state.cut();
    }

    /// Cuts once `bytes` more request bytes have gone through.
    pub fn cut_after(&self, bytes: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let sent = self.state.upstream.load(SeqCst);
        self.state.cut_after.store(sent + bytes, SeqCst);
    }

    /// The server is back (with whatever it held).
    pub fn restore(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.cut_after.store(u64::MAX, SeqCst);
        self.state.down.store(false, SeqCst);
    }

    /// Request bytes forwarded so far.
    pub fn request_bytes(&self) -> u64 {
        self.state
            .upstream
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.closed.store(true, SeqCst);
        self.state.cut();
        // Wake the accept loop so that it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Renames the conditional-write headers in a request's bytes (same lengths).
fn hide_conditions(buf: &mut [u8]) {
    for (from, to) in [
        (&b"\r\nif-none-match:"[..], &b"\r\nx-ignored-abc:"[..]),
        (&b"\r\nif-match:"[..], &b"\r\nx-ignore:"[..]),
    ] {
        let mut i = 0;
        while i + from.len() <= buf.len() {
            if buf[i..i + from.len()].eq_ignore_ascii_case(from) {
                buf[i..i + from.len()].copy_from_slice(to);
                i += from.len();
            } else {
                i += 1;
            }
        }
    }
}
