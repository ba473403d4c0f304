//! The `helsenett` binary as a user meets it: its errors, the server on both backends, and the
//! demo. Each test runs the real executable.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
};

use helsenett_store::testing::{fresh_schema, postgres_url};
use serde_json::Value;

mod support;
use support::{Node, helsenett, synth};

/// Runs a command that must fail, and returns its one-line error.
fn fails(command: &mut Command) -> (Output, String) {
    let output = command.output().expect("run helsenett");
    assert!(!output.status.success(), "{command:?} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected in {stderr}");
    (output, errors[0].to_owned())
}

#[test]
fn bad_arguments_are_one_line_errors_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (output, error) = fails(helsenett().args(["synth", "--size", "huge"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(error.contains("'huge'"), "{error}");

    let (_, error) = fails(helsenett().args(["synth", "--as-of", "2026-13-01"]));
    assert!(
        error.contains("'2026-13-01'") && error.contains("--as-of"),
        "{error}"
    );
    let (_, error) = fails(
        helsenett()
            .arg("synth")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--as-of", "2045-01-01"]),
    );
    assert!(
        error.contains("2045-01-01 is outside 2000-01-01 to 2039-12-31"),
        "{error}"
    );

    let config = dir.path().join("helsenett.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_backlog = 5\n").unwrap();
    let (output, error) = fails(helsenett().arg("--config").arg(&config).arg("serve"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        error.contains("listen_backlog") && error.contains("line 2"),
        "{error}"
    );

    let (_, error) = fails(
        helsenett()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("HELSENETT_MAX_REQUEST_BYTES", "lots"),
    );
    assert!(error.contains("HELSENETT_MAX_REQUEST_BYTES"), "{error}");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let url = "postgres://helsenett:sesame@127.0.0.1:1/nowhere";
    let (output, error) = fails(helsenett().args(["serve", "--database-url", url]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        error.contains("cannot open PostgreSQL at 127.0.0.1:1/nowhere"),
        "{error}"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("sesame"));

    let (_, error) = fails(helsenett().args(["synth", "--database-url", "mysql://x"]));
    assert!(error.contains("database URL is not valid"), "{error}");
}

#[test]
fn a_data_dir_that_is_not_usable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("occupied");
    std::fs::write(&file, "not a directory").unwrap();
    let (_, error) = fails(helsenett().arg("synth").arg("--data-dir").arg(&file));
    assert!(
        error.contains(&format!("data dir {} is not usable", file.display())),
        "{error}"
    );
}

fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::blocking::get(url).unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// Health, metrics, errors, limits and a clean stop, against one store.
fn check_server(store: &[&str], backend: &str) {
    // The population register's daily changes, the day after the country's date.
    let events = succeeds(
        helsenett()
            .args(["synth", "events", "--days", "5"])
            .args(store),
    );
    assert!(events.starts_with("5 days from 2026-11-23: "), "{events}");
    let (_, error) = fails(
        helsenett()
            .args(["synth", "events", "--days", "0"])
            .args(store),
    );
    assert!(error.contains("--days"), "{error}");

    let node = Node::start(store, &[("HELSENETT_MAX_REQUEST_BYTES", "1024")]);
    let (status, health) = get_json(&format!("{}/health", node.base));
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["store"],
        serde_json::json!({"backend": backend, "ready": true})
    );
    assert_eq!(health["country"]["seed"], 9);
    assert_eq!(health["country"]["size"], "small");

    let client = reqwest::blocking::Client::new();
    let missing = client
        .get(format!("{}/no/such/thing", node.base))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = missing.json().unwrap();
    assert_eq!(problem["status"], 404);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("/no/such/thing")
    );

    let too_big = client
        .post(format!("{}/health", node.base))
        .body(vec![b'x'; 4096])
        .send()
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        too_big.headers()["content-type"],
        "application/problem+json"
    );

    let metrics = client
        .get(format!("{}/metrics", node.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            r#"helsenett_http_requests_total{method="GET",route="/health",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("helsenett_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("helsenett_build_info"), "{metrics}");
    assert!(metrics.contains("helsenett_store_ready 1"), "{metrics}");

    let (status, log) = node.stop();
    assert!(status.success(), "{status} {log}");
    assert!(log.contains("helsenett stopped"), "{log}");
    for line in log.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn the_server_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    synth(&["--data-dir", data_dir]);
    assert!(Path::new(data_dir).join("helsenett.db").is_file());
    check_server(&["--data-dir", data_dir], "sqlite");
}

#[test]
fn the_server_on_postgresql_and_two_nodes_over_one_database() {
    let Some(url) = postgres_url() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (admin, schema) = runtime.block_on(fresh_schema(&url));
    let separator = if url.contains('?') { '&' } else { '?' };
    let node_url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    // The clients' keys go to the data dir even when the country is in PostgreSQL.
    let keys = tempfile::tempdir().unwrap();
    synth(&[
        "--database-url",
        &node_url,
        "--data-dir",
        keys.path().to_str().unwrap(),
    ]);
    assert!(keys.path().join("helseid-clients.jsonl").exists());
    check_server(&["--database-url", &node_url], "postgres");

    // The database URL may also come from the environment, as on a real node.
    let a = Node::start(&[], &[("HELSENETT_DATABASE_URL", &node_url)]);
    let b = Node::start(&["--database-url", &node_url], &[]);
    let (_, from_a) = get_json(&format!("{}/health", a.base));
    let (_, from_b) = get_json(&format!("{}/health", b.base));
    assert_eq!(from_a["store"]["backend"], "postgres");
    assert_eq!(from_a["country"], from_b["country"]);
    assert!(a.stop().0.success() && b.stop().0.success());
    runtime.block_on(async {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    });
}

#[test]
fn the_demo_generates_once_and_prints_a_guide() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let start = || {
        helsenett()
            .arg("demo")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The test stops reading after the guide, as `helsenett demo | head` would: the demo must
    // keep serving.
    for run in ["first", "second"] {
        let mut child = start();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut guide = String::new();
        let mut base = None;
        for line in stdout.lines().map_while(Result::ok) {
            guide.push_str(&line);
            guide.push('\n');
            if let Some(url) = line.trim().strip_prefix("Health:") {
                base = Some(url.trim().trim_end_matches("/health").to_owned());
            }
            if line.contains("Stop with Ctrl-C") {
                break;
            }
        }
        assert_eq!(
            guide.contains("First run: generating"),
            run == "first",
            "{guide}"
        );
        assert!(guide.contains("HER-id"), "{guide}");
        let (status, health) = get_json(&format!("{}/health", base.expect("a health URL")));
        assert_eq!(
            (status, health["store"]["backend"].as_str()),
            (200, Some("sqlite"))
        );
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

fn succeeds(command: &mut Command) -> String {
    let output = command.output().expect("run helsenett");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn helseid_keys_and_clients_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let store = ["--data-dir", data];
    // The first key is made when the network first needs one; rotation adds a PS256 key.
    let rotated = succeeds(
        helsenett()
            .args([
                "helseid",
                "rotate-keys",
                "--alg",
                "PS256",
                "--activate-in",
                "0",
            ])
            .args(store),
    );
    assert!(rotated.contains("new PS256 signing key"), "{rotated}");
    let keys = succeeds(helsenett().args(["helseid", "keys"]).args(store));
    assert_eq!(
        keys.lines().filter(|l| l.contains(" PS256 ")).count(),
        1,
        "{keys}"
    );
    assert_eq!(
        keys.lines().filter(|l| l.contains(" yes ")).count(),
        1,
        "one key signs: {keys}"
    );

    let public = dir.path().join("client.jwk");
    std::fs::write(
        &public,
        r#"{"kty":"EC","crv":"P-256","x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis","y":"y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE","kid":"k1"}"#,
    )
    .unwrap();
    let add = |extra: &[&str]| {
        let mut c = helsenett();
        c.args([
            "helseid",
            "client",
            "add",
            "--name",
            "Test EPJ",
            "--orgnr-parent",
            "300000010",
            "--jwks",
        ])
        .arg(&public)
        .args(store)
        .args(extra);
        c
    };
    let id = succeeds(&mut add(&[
        "--scope",
        "nhn:msh/api",
        "--client-id",
        "epj-1",
    ]));
    assert_eq!(id.trim(), "epj-1");
    let (_, error) = fails(&mut add(&[
        "--scope",
        "nhn:msh/api",
        "--client-id",
        "epj-1",
    ]));
    assert!(error.contains("exists already"), "{error}");
    let (_, error) = fails(&mut add(&["--scope", "nhn:unknown/api"]));
    assert!(error.contains("not known to HelseID"), "{error}");
    let (_, error) = fails(&mut add(&[
        "--scope",
        "openid",
        "--grant-type",
        "authorization_code",
    ]));
    assert!(error.contains("redirect URI"), "{error}");
    let (_, error) = fails(
        helsenett()
            .args([
                "helseid",
                "client",
                "add",
                "--name",
                "x",
                "--orgnr-parent",
                "123456789",
                "--scope",
                "nhn:msh/api",
                "--jwks",
            ])
            .arg(&public)
            .args(store),
    );
    assert!(error.contains("123456789"), "{error}");

    let list = succeeds(helsenett().args(["helseid", "client", "list"]).args(store));
    let row = list
        .lines()
        .find(|l| l.starts_with("epj-1"))
        .expect("listed");
    assert!(row.contains("300000010") && row.contains(" yes "), "{row}");
    succeeds(
        helsenett()
            .args(["helseid", "client", "disable", "epj-1"])
            .args(store),
    );
    let list = succeeds(helsenett().args(["helseid", "client", "list"]).args(store));
    let row = list.lines().find(|l| l.starts_with("epj-1")).unwrap();
    assert!(row.contains(" no "), "{row}");
    let (_, error) = fails(
        helsenett()
            .args(["helseid", "client", "disable", "nobody"])
            .args(store),
    );
    assert!(error.contains("no client"), "{error}");
}

#[test]
fn the_register_is_searched_shown_exported_and_imported_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a");
    let store = ["--data-dir", data.to_str().unwrap()];
    synth(&store);
    let found = succeeds(
        helsenett()
            .args([
                "register", "search", "--name", "legevakt", "--type", "Service",
            ])
            .args(store),
    );
    assert!(
        found.ends_with("8 found\n"),
        "one Legevakt per municipality: {found}"
    );
    let her_id = found.split_whitespace().next().unwrap().to_owned();
    let shown: Value = serde_json::from_str(&succeeds(
        helsenett().args(["register", "show", &her_id]).args(store),
    ))
    .unwrap();
    assert_eq!(shown["herId"], her_id.as_str());
    assert_eq!(shown["kind"], "Service");

    let export = dir.path().join("register.ndjson");
    succeeds(
        helsenett()
            .args(["register", "export", "--out"])
            .arg(&export)
            .args(store),
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["asOfEventId"], 0);
    assert_eq!(
        header["parties"].as_u64().unwrap() as usize,
        text.lines().count() - 1
    );

    // Into an empty store: every party is written; again: nothing changes.
    let other_dir = dir.path().join("b");
    let other = ["--data-dir", other_dir.to_str().unwrap()];
    let import = || {
        let output = helsenett()
            .args(["register", "import"])
            .arg(&export)
            .args(other)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(import().contains(&format!("{} parties written", header["parties"])));
    assert!(import().contains(" 0 parties written"));
    let copy = dir.path().join("copy.ndjson");
    succeeds(
        helsenett()
            .args(["register", "export", "--out"])
            .arg(&copy)
            .args(other),
    );
    let parties = |text: &str| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        parties(&std::fs::read_to_string(&copy).unwrap()),
        parties(&text)
    );

    // A truncated export and an unknown HER-id are one-line errors.
    let truncated = dir.path().join("truncated.ndjson");
    std::fs::write(
        &truncated,
        text.lines().take(5).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let (_, error) = fails(
        helsenett()
            .args(["register", "import"])
            .arg(&truncated)
            .args(other),
    );
    assert!(error.contains("truncated"), "{error}");
    let (_, error) = fails(
        helsenett()
            .args(["register", "show", "999999999"])
            .args(store),
    );
    assert!(error.contains("HER-id 999999999"), "{error}");
}

#[test]
fn documents_are_validated_from_the_command_line() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samsvar/tests/corpus");
    let valid = corpus.join("valid-apprec11-ok.xml");
    let invalid = corpus.join("invalid-apprec10-missing-status.xml");
    let out = succeeds(helsenett().arg("validate").arg(&valid));
    assert!(out.contains("valid AppRec v1.1"), "{out}");
    let output = helsenett()
        .arg("validate")
        .arg(&valid)
        .arg(&invalid)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("/AppRec: required element Status is missing"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 of 2 document(s) are not valid"),
        "{stderr}"
    );
}

#[test]
fn a_member_sends_receives_and_answers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let store = ["--data-dir", data_dir];
    synth(&store);
    let node = Node::start(&store, &[("HELSENETT_MAX_REQUEST_BYTES", "65536")]);
    let args = |command: &[&str]| {
        let mut c = helsenett();
        c.arg("msg")
            .args(command)
            .args(["--server", &node.base])
            .args(store);
        c
    };
    // A GP and a home-care department of the seed-9 country that agree on dialogue messages.
    let pair = |kind: &str| {
        let out = succeeds(helsenett().args([
            "register",
            "search",
            "--type",
            kind,
            "--message-type",
            "DIALOG_HELSEFAGLIG",
            "--limit",
            "1",
            "--data-dir",
            data_dir,
        ]));
        out.split_whitespace().next().unwrap().to_owned()
    };
    let (gp, department) = (pair("Person"), pair("Department"));
    let payload = dir.path().join("dialog.xml");
    std::fs::write(&payload, "<Dialogmelding>SYNTETISK</Dialogmelding>").unwrap();
    let payload = payload.to_str().unwrap();
    let out = succeeds(&mut args(&[
        "send",
        "--from",
        &gp,
        "--to",
        &department,
        "--payload",
        payload,
    ]));
    let id = out.split_whitespace().next().unwrap().to_owned();
    assert!(out.contains("sent DIALOG_HELSEFAGLIG"), "{out}");

    let inbox = dir.path().join("inbox");
    let out = succeeds(&mut args(&[
        "receive",
        "--as",
        &department,
        "--out",
        inbox.to_str().unwrap(),
    ]));
    assert!(
        out.contains(&id) && out.contains("signature verified"),
        "{out}"
    );
    let opened = std::fs::read_to_string(inbox.join(format!("{id}.xml"))).unwrap();
    assert_eq!(opened, "<Dialogmelding>SYNTETISK</Dialogmelding>");

    let out = succeeds(&mut args(&[
        "ack",
        &id,
        "--as",
        &department,
        "--status",
        "Rejected",
        "--error",
        "E35:Ukjent pasient",
    ]));
    assert!(out.contains("AppRec Rejected"), "{out}");
    let out = succeeds(&mut args(&["status", &id, "--as", &gp]));
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["status"][0]["transportDeliveryState"],
        "Acknowledged"
    );
    assert_eq!(
        status["apprec"][0]["appRecErrorList"][0]["errorCode"],
        "E35"
    );

    // An oversized document is refused before it is read, with a problem saying why.
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/msh/Messages", node.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 70_000])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // Only a receiver marks a message read and answers it.
    let (_, error) = fails(&mut args(&["ack", &id, "--as", &gp]));
    assert!(error.contains("has no receiver with HER-id"), "{error}");
}
