//! What the binary's tests share: running `helsenett` as a user would, and a node to talk to.

#![allow(dead_code)] // Each test binary uses its own part of it.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::Value;

pub fn helsenett() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helsenett"));
    // Tests must not pick up the developer's own configuration.
    for (name, _) in std::env::vars() {
        if name.starts_with("HELSENETT_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running `helsenett serve`, stopped with SIGTERM when dropped.
pub struct Node {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    pub fn start(store: &[&str], env: &[(&str, &str)]) -> Node {
        Self::start_at("127.0.0.1:0", store, env)
    }

    /// A node listening on `listen` (a fixed port lets a client reach it again after a restart).
    pub fn start_at(listen: &str, store: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = helsenett()
            .args(["serve", "--listen", listen, "--log-format", "json"])
            .args(store)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start helsenett serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "helsenett is serving"
                {
                    let _ = addr_tx.send(entry["addr"].as_str().unwrap().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(addr) = addr_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("server did not start: {}", log.lock().unwrap());
        };
        Node {
            child,
            base: format!("http://{addr}"),
            log,
            reader: Some(reader),
        }
    }

    /// Sends SIGTERM, as an orchestrator does, and returns the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        // The reader ends with the process's stderr, after the last line.
        self.reader.take().unwrap().join().unwrap();
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Node {
    /// Kills the process with SIGKILL: no shutdown, no flush, as a power cut or an OOM kill.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Generates the small country (seed 9) into `store`.
pub fn synth(store: &[&str]) {
    let output = helsenett()
        .args([
            "synth",
            "--size",
            "small",
            "--seed",
            "9",
            "--as-of",
            "2026-11-22",
        ])
        .args(store)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("generated"), "{summary}");
}
