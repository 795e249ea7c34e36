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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let bin = moto_server();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
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
