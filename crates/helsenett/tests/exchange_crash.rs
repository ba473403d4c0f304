//! The exchange's delivery guarantee under SIGKILL: senders and receivers work against a real
//! `helsenett serve` that is killed again and again mid-load and started on the same store.
//! Every message the hub answered 201 for must be there after the restarts; no message is
//! stored twice for its MsgId (a sender retries what it got no answer for); and a message the
//! hub answered 204 for marking read never comes back to the receiver's mailbox.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use helsenett_client::{Msh, Tokens, client_of};
use helsenett_core::HerId;
use helsenett_exchange::{
    apprec::Named,
    cms,
    envelope::Outgoing,
    named,
    synthetic::{Credentials, DIALOG, dialogue_pairs},
};
use helsenett_register::Register;
use helsenett_store::{Store, with_pool};
use url::Url;

mod support;
use support::{Node, synth};

/// Kill-restart cycles.
const CYCLES: usize = 6;
const PAIRS: usize = 4;

struct Pair {
    receiver: HerId,
    sender_org: String,
    receiver_org: String,
    sender_named: Named,
    receiver_named: Named,
    version: helsenett_register::model::Version,
    sealed: Vec<u8>,
}

/// What the clients were told, shared by all tasks.
#[derive(Default)]
struct Ledger {
    /// MsgId → the document as first sent, so a retry sends the very same bytes.
    documents: HashMap<String, String>,
    /// MsgId → message id, for every 201.
    accepted: HashMap<String, String>,
    /// Message ids answered 204 to a read mark.
    read: HashSet<String>,
    /// A read message seen in a mailbox again.
    resurrected: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn pairs(dir: &str) -> Vec<Pair> {
    let store = Store::open_sqlite(std::path::Path::new(dir)).await.unwrap();
    let register = Register::open(store.clone()).await.unwrap();
    let snapshot = register.snapshot();
    let mut pairs = Vec::new();
    for (sender, receiver) in dialogue_pairs(&store, &snapshot, PAIRS).await.unwrap() {
        let keys = Credentials::of(&store, &snapshot, sender).await.unwrap();
        let theirs = Credentials::of(&store, &snapshot, receiver).await.unwrap();
        let sealed = cms::seal(
            b"<Dialogmelding>SYNTETISK</Dialogmelding>",
            (&keys.signing.certificate, &keys.signing.key),
            std::slice::from_ref(&theirs.encryption.certificate),
        )
        .unwrap();
        let org = |h| snapshot.party(h).unwrap().orgnr.to_string();
        pairs.push(Pair {
            receiver,
            sender_org: org(sender),
            receiver_org: org(receiver),
            sender_named: named(&snapshot, sender).unwrap(),
            receiver_named: named(&snapshot, receiver).unwrap(),
            version: snapshot
                .agreement(sender, receiver)
                .unwrap()
                .version_of(DIALOG)
                .unwrap(),
            sealed,
        });
    }
    assert_eq!(pairs.len(), PAIRS);
    store.close().await;
    pairs
}

async fn msh(base: &str, clients: &std::path::Path, orgnr: &str) -> Msh {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let tokens = Tokens::discover(
        http.clone(),
        &format!("{base}/helseid"),
        client_of(clients, orgnr).unwrap(),
        "nhn:msh/api",
    )
    .await
    .unwrap();
    Msh::new(
        http,
        Url::parse(&format!("{base}/msh/")).unwrap(),
        tokens,
        "crash-test",
    )
}

/// Sends new messages, and first again every message of this sender that got no answer.
async fn sender(pair: Arc<Pair>, msh: Msh, ledger: Arc<Mutex<Ledger>>, index: usize) {
    let mut k = 0;
    loop {
        let unanswered: Vec<(String, String)> = {
            let ledger = ledger.lock().unwrap();
            ledger
                .documents
                .iter()
                .filter(|(id, _)| id.starts_with(&format!("crash-{index}-")))
                .filter(|(id, _)| !ledger.accepted.contains_key(*id))
                .map(|(id, doc)| (id.clone(), doc.clone()))
                .collect()
        };
        let (msg_id, document) = match unanswered.into_iter().next() {
            Some(retry) => retry,
            None => {
                k += 1;
                let msg_id = format!("crash-{index}-{k}-{}", uuid::Uuid::new_v4());
                let document = Outgoing {
                    message_type: DIALOG,
                    version: pair.version,
                    msg_id: &msg_id,
                    gen_date: Utc::now(),
                    sender: &pair.sender_named,
                    receiver: &pair.receiver_named,
                    copies: &[],
                    sealed: &pair.sealed,
                }
                .to_xml();
                ledger
                    .lock()
                    .unwrap()
                    .documents
                    .insert(msg_id.clone(), document.clone());
                (msg_id, document)
            }
        };
        match msh.send(document.as_bytes()).await {
            Ok(id) => {
                let mut ledger = ledger.lock().unwrap();
                if let Some(earlier) = ledger.accepted.insert(msg_id.clone(), id.clone()) {
                    assert_eq!(earlier, id, "{msg_id} was given two ids");
                }
            }
            // The node is down: wait for the test to restart it.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn receiver(pair: Arc<Pair>, msh: Msh, ledger: Arc<Mutex<Ledger>>) {
    loop {
        let Ok(listed) = msh.unread(&[pair.receiver.get()], 20).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        for message in listed {
            {
                let mut ledger = ledger.lock().unwrap();
                if ledger.read.contains(&message.id) {
                    ledger.resurrected.push(message.id.clone());
                }
            }
            if msh.business_document(&message.id).await.is_err() {
                break;
            }
            if msh
                .mark_read(&message.id, pair.receiver.get())
                .await
                .is_ok()
            {
                ledger.lock().unwrap().read.insert(message.id);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn acknowledged_messages_survive_sigkill_and_read_ones_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let store_args = ["--data-dir", data_dir.as_str()];
    synth(&store_args);
    let clients = dir.path().join("helseid-clients.jsonl");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pairs: Vec<Arc<Pair>> = runtime
        .block_on(pairs(&data_dir))
        .into_iter()
        .map(Arc::new)
        .collect();
    let listen = format!("127.0.0.1:{}", free_port());
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    for cycle in 0..CYCLES {
        let node = Node::start_at(&listen, &store_args, &[]);
        let tasks = runtime.block_on(async {
            let mut tasks = Vec::new();
            for (i, pair) in pairs.iter().enumerate() {
                let sending = msh(&node.base, &clients, &pair.sender_org).await;
                let receiving = msh(&node.base, &clients, &pair.receiver_org).await;
                tasks.push(tokio::spawn(sender(
                    pair.clone(),
                    sending,
                    ledger.clone(),
                    i,
                )));
                tasks.push(tokio::spawn(receiver(
                    pair.clone(),
                    receiving,
                    ledger.clone(),
                )));
            }
            // Kill at a different moment of the load each cycle.
            tokio::time::sleep(Duration::from_millis(400 + 170 * cycle as u64)).await;
            tasks
        });
        node.kill();
        for task in tasks {
            task.abort();
        }
    }

    // One last start: every answered message is stored once, read or waiting to be read.
    let node = Node::start_at(&listen, &store_args, &[]);
    let waiting: HashSet<String> = runtime.block_on(async {
        let mut waiting = HashSet::new();
        for pair in &pairs {
            let msh = msh(&node.base, &clients, &pair.receiver_org).await;
            loop {
                let listed = msh.unread(&[pair.receiver.get()], 100).await.unwrap();
                if listed.is_empty() {
                    break;
                }
                for message in listed {
                    msh.mark_read(&message.id, pair.receiver.get())
                        .await
                        .unwrap();
                    waiting.insert(message.id);
                }
            }
        }
        waiting
    });
    node.stop();
    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.accepted.len() > 20,
        "too little load to mean anything: {} messages",
        ledger.accepted.len()
    );
    assert!(
        ledger.resurrected.is_empty(),
        "read messages came back: {:?}",
        ledger.resurrected
    );
    // Each message: its MsgId, id, and whether its receiver marked it read (a read mark whose
    // 204 was lost to a kill is in the store, not in the ledger).
    let stored: Vec<(String, String, bool)> = runtime.block_on(async {
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let rows = with_pool!(&store, pool => {
            sqlx::query_as(
                "SELECT m.document_id, m.id, d.read_at IS NOT NULL FROM message m \
                 JOIN delivery d ON d.message_id = m.id WHERE m.is_apprec = FALSE",
            )
            .fetch_all(pool)
            .await
            .unwrap()
        });
        store.close().await;
        rows
    });
    let by_msg_id: HashMap<&str, &str> = stored
        .iter()
        .map(|(m, i, _)| (m.as_str(), i.as_str()))
        .collect();
    let read_in_store: HashSet<&str> = stored
        .iter()
        .filter(|(_, _, read)| *read)
        .map(|(_, i, _)| i.as_str())
        .collect();
    assert_eq!(by_msg_id.len(), stored.len(), "a MsgId is stored twice");
    for (msg_id, id) in &ledger.accepted {
        assert_eq!(
            by_msg_id.get(msg_id.as_str()),
            Some(&id.as_str()),
            "message {msg_id} was acknowledged as {id} and lost"
        );
        assert!(
            read_in_store.contains(id.as_str()),
            "acknowledged message {id} was never delivered and read"
        );
        assert!(
            !ledger.read.contains(id) || !waiting.contains(id),
            "{id} was read and came back"
        );
    }
    eprintln!(
        "{} messages acknowledged over {CYCLES} SIGKILLs; {} read before a kill, {} after the last",
        ledger.accepted.len(),
        ledger.read.len(),
        waiting.len()
    );
}
