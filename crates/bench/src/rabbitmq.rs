//! The exchange benchmark's workload against RabbitMQ (AMQP 0-9-1), its peer for the ratio the
//! issue asks for: the same pairs, payload size and concurrency, with durable queues, persistent
//! messages, publisher confirms and manual acks. Each sender publishes to its receiver's queue
//! and waits for the confirm before the next message (the broker has made it durable, as the
//! hub's 201 says); each receiver consumes, publishes a persistent receipt (the AppRec) to its
//! sender's receipts queue, waits for that confirm and then acks the delivery. A message counts
//! when it is acked.
//!
//! Receipts are not drained: the exchange benchmark leaves its AppRecs unread in the senders'
//! mailboxes, so on both sides a receipt is stored durably and no more. Every round starts from
//! purged queues instead.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
    },
    types::FieldTable,
};
use serde_json::json;

use crate::helseid_tokens::{Latency, Stats, cpu_seconds, emit_json, loader_runtime};

/// Deliveries a receiver may hold unacked: as many as a receiver of the exchange lists per poll.
const PREFETCH: u16 = 100;
/// An AppRec's size, roughly: the receipt a receiver sends back for each message.
const RECEIPT_BYTES: usize = 1_024;
/// AMQP's delivery mode for messages the broker writes to disk.
const PERSISTENT: u8 = 2;
/// How long a receiver waits for its next delivery before it gives up (a lost message or a
/// failed sender would otherwise hang the run).
const IDLE_LIMIT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct Args {
    /// The broker, e.g. amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long)]
    url: String,
    /// Sender-receiver pairs: each pair is one sender and one receiver in flight.
    #[arg(long, default_value_t = 32)]
    pairs: usize,
    /// Timed messages in all.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Untimed messages first.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Size of each message body.
    #[arg(long, default_value_t = 4_096)]
    payload_bytes: usize,
    /// Publish at this total rate (messages a second) instead of as fast as the broker confirms.
    #[arg(long)]
    rate: Option<f64>,
    /// Threads of the loader.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The broker's process ids (beam.smp), to report its CPU time per message.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// A label for the result.
    #[arg(long, default_value = "rabbitmq")]
    label: String,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The queue pair `index`'s receiver consumes.
fn inbox(index: usize) -> String {
    format!("bench.in.{index}")
}

/// The queue pair `index`'s receipts go to.
fn receipts(index: usize) -> String {
    format!("bench.receipts.{index}")
}

/// A connection of its own with one channel in confirm mode.
async fn connect(url: &str) -> Result<(Connection, Channel)> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// Declares every pair's queues durable and empties them.
async fn reset_queues(url: &str, pairs: usize) -> Result<()> {
    let (connection, channel) = connect(url).await?;
    for index in 0..pairs {
        for queue in [inbox(index), receipts(index)] {
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await
                .with_context(|| format!("declaring {queue}"))?;
            channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await
                .with_context(|| format!("purging {queue}"))?;
        }
    }
    connection.close(200, "OK".into()).await?;
    Ok(())
}

/// Publishes to `queue` through the default exchange and waits for the broker's confirm.
async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .map_err(|e| format!("publish: {e}"))?;
    match confirm.await {
        Ok(confirmation) if confirmation.is_ack() => Ok(()),
        Ok(_) => Err("publish nacked".to_owned()),
        Err(e) => Err(format!("confirm: {e}")),
    }
}

/// Publishes `count` messages to pair `index`'s receiver, paced at `interval` when given;
/// publish-to-confirm latencies.
async fn send(
    channel: Channel,
    payload: Arc<Vec<u8>>,
    index: usize,
    round: String,
    count: usize,
    interval: Option<Duration>,
) -> Stats {
    let mut stats = Stats {
        latencies: Vec::with_capacity(count),
        ..Stats::default()
    };
    let queue = inbox(index);
    let started = Instant::now();
    for k in 0..count {
        if let Some(interval) = interval {
            let due = started + interval.mul_f64(k as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(format!("bench-{round}-{index}-{k}").into());
        let sent = Instant::now();
        match publish_confirmed(&channel, &queue, &payload, properties).await {
            Ok(()) => {
                stats.ok += 1;
                let micros = sent.elapsed().as_micros();
                stats
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(what) => stats.error(what),
        }
    }
    stats
}

/// Receives `count` messages of pair `index`: each answered with a confirmed receipt, then
/// acked. `ok` counts acks.
async fn receive(channel: Channel, mut consumer: Consumer, index: usize, count: usize) -> Stats {
    let mut stats = Stats::default();
    let queue = receipts(index);
    let receipt = vec![b'R'; RECEIPT_BYTES];
    while (stats.ok as usize) < count {
        let delivery = match tokio::time::timeout(IDLE_LIMIT, consumer.next()).await {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(e))) => {
                stats.error(format!("consume: {e}"));
                break;
            }
            Ok(None) => {
                stats.error("the consumer was cancelled".to_owned());
                break;
            }
            Err(_) => {
                stats.error(format!("no delivery for {}s", IDLE_LIMIT.as_secs()));
                break;
            }
        };
        let mut properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
        if let Some(id) = delivery.properties.message_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        if let Err(what) = publish_confirmed(&channel, &queue, &receipt, properties).await {
            stats.error(format!("receipt {what}"));
            continue;
        }
        match delivery.ack(BasicAckOptions::default()).await {
            Ok(_) => stats.ok += 1,
            Err(e) => stats.error(format!("ack: {e}")),
        }
    }
    stats
}

/// One round of `count` messages over every pair: its wall time, the time until the last
/// publish was confirmed, and the senders' and receivers' stats.
async fn round(
    args: &Args,
    payload: &Arc<Vec<u8>>,
    name: String,
    count: usize,
) -> Result<(Duration, f64, Stats, Stats)> {
    reset_queues(&args.url, args.pairs).await?;
    let per = count.div_ceil(args.pairs);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.pairs as f64 / r));
    // Every connection is open and every consumer registered before the clock starts.
    let mut connections = Vec::with_capacity(2 * args.pairs);
    let mut opened = Vec::with_capacity(args.pairs);
    for index in 0..args.pairs {
        let (sender, sending) = connect(&args.url).await?;
        let (receiver, receiving) = connect(&args.url).await?;
        receiving
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        let consumer = receiving
            .basic_consume(
                inbox(index).as_str().into(),
                format!("bench-receiver-{index}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        connections.extend([sender, receiver]);
        opened.push((sending, receiving, consumer));
    }
    let started = Instant::now();
    let mut senders = Vec::with_capacity(args.pairs);
    let mut receivers = Vec::with_capacity(args.pairs);
    for (index, (sending, receiving, consumer)) in opened.into_iter().enumerate() {
        let payload = payload.clone();
        senders.push(tokio::spawn(send(
            sending,
            payload,
            index,
            name.clone(),
            per,
            interval,
        )));
        receivers.push(tokio::spawn(receive(receiving, consumer, index, per)));
    }
    let mut published = Stats::default();
    let mut answered = Stats::default();
    for task in senders {
        published.merge(task.await?);
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    for task in receivers {
        answered.merge(task.await?);
    }
    let elapsed = started.elapsed();
    for connection in connections {
        connection.close(200, "OK".into()).await?;
    }
    Ok((elapsed, publish_seconds, published, answered))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.pairs == 0 || args.messages == 0 || args.threads == 0 {
        bail!("--pairs, --messages and --threads must be at least 1");
    }
    let runtime = loader_runtime(args.threads)?;
    runtime.block_on(async {
        let payload: Arc<Vec<u8>> = Arc::new(
            (0..args.payload_bytes)
                .map(|i| b'A' + (i % 26) as u8)
                .collect(),
        );
        let run_id = format!("{:08x}", rand::random::<u32>());
        let (_, _, warm_sent, warm_answered) = round(
            &args,
            &payload,
            format!("{run_id}-warmup"),
            args.warmup.max(args.pairs),
        )
        .await?;
        if warm_sent.errors + warm_answered.errors > 0 {
            for (what, n) in warm_sent.samples.iter().chain(&warm_answered.samples) {
                eprintln!("helsenett-bench: rabbitmq: warm-up error ({n}x): {what}");
            }
            bail!("the warm-up failed");
        }
        let cpu_before = cpu_seconds(&args.server_pids)?;
        let (elapsed, publish_seconds, mut sent, answered) =
            round(&args, &payload, run_id, args.messages).await?;
        let server_cpu = cpu_seconds(&args.server_pids)? - cpu_before;
        for (what, n) in sent.samples.iter().chain(&answered.samples) {
            eprintln!("helsenett-bench: rabbitmq: error ({n}x): {what}");
        }
        let Latency {
            per_second: published_per_second,
            p50,
            p90,
            p99,
            max,
        } = sent.latency(publish_seconds);
        let end_to_end = answered.ok as f64 / elapsed.as_secs_f64();
        let cpu_us = (!args.server_pids.is_empty() && answered.ok > 0)
            .then(|| 1e6 * server_cpu / answered.ok as f64);
        let cpu_note = cpu_us.map_or(String::new(), |us| {
            format!("  server CPU {us:.0} µs/message")
        });
        let mode = args.rate.map_or("as fast as confirmed".to_owned(), |r| {
            format!("paced at {r:.0}/s")
        });
        let errors = sent.errors + answered.errors;
        println!(
            "{}: {end_to_end:.0} messages/s end to end (publish confirmed, consumed, receipt \
             confirmed, acked); publish {published_per_second:.0}/s p50 {p50:.2} ms p99 {p99:.2} \
             ms{cpu_note}  (n={}, pairs={}, {mode}, {} B payloads, errors={errors})",
            args.label, answered.ok, args.pairs, args.payload_bytes,
        );
        // The exchange benchmark's field names, so that its summary reads both alike.
        emit_json(
            args.json.as_deref(),
            &json!({
                "label": args.label,
                "messages": answered.ok,
                "errors": errors,
                "pairs": args.pairs,
                "payload_bytes": args.payload_bytes,
                "rate": args.rate,
                "seconds": elapsed.as_secs_f64(),
                "messages_per_second": end_to_end,
                "submitted_per_second": published_per_second,
                "submit_p50_ms": p50, "submit_p90_ms": p90, "submit_p99_ms": p99, "submit_max_ms": max,
                "server_cpu_us_per_message": cpu_us,
            }),
        )?;
        Ok(
            if errors > 0 || (answered.ok as usize) < args.messages.div_ceil(args.pairs) * args.pairs
            {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            },
        )
    })
}
